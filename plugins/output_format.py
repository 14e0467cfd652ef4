"""Consistent output format: every final answer should have the shape most answers have.

A fine-tuned model learns the format of its answers from the data; a few answers in another shape
(free text among JSON objects, a JSON object missing a key, a label outside the label set) teach it
to break the format now and then. Each final assistant answer is given a shape:

- a JSON object with its (sorted) top-level keys, a JSON array, another JSON value, invalid JSON;
- a fenced code block, a numbered list, a bulleted list;
- a label: a short answer (at most three words) from a small set of values each seen several times;
- free text, with its length in words; an empty answer.

Per example only a few integers are kept (file, line, shape, words, short-answer value), in typed
arrays, so a million examples cost a few tens of MB. When one shape covers ``min_share`` of the
answers, every answer in another shape is a ``format-outlier`` warning naming its file and line;
when free text dominates, answers far longer or shorter than the median are ``length-outlier`` info.
"""

from __future__ import annotations

import json
from array import array
from collections import Counter
from typing import Any

from pydantic import Field

from ftp.data.checks import MAX_FINDINGS_PER_CODE, CheckSettings, DataCheck, Record, check_hooks
from ftp.types import DatasetRef, Finding

from .answer_shapes import LABEL, OTHER_OBJECT, TEXT, Shape, classify, describe, final_answer, show_keys

__all__ = ["OutputFormatCheck", "OutputFormatSettings", "classify", "describe", "final_answer"]

MAX_SHAPES = 2000  # distinct shapes kept; further key sets are pooled
MAX_VALUES = 10_000  # distinct short answers counted; further ones cannot be labels
MEMO = 4096  # answers whose classification is remembered (classification answers repeat)


class OutputFormatSettings(CheckSettings):
    min_share: float = Field(0.8, gt=0, le=1, description="the dominant shape must cover this share to be enforced")
    min_examples: int = Field(10, ge=1, description="fewer answers are not judged")
    max_outliers_listed: int = Field(50, ge=0, description="outliers listed one by one (per code)")
    max_labels: int = Field(20, ge=1, description="a label set has at most this many distinct values")
    min_label_count: int = Field(3, ge=1, description="a short answer is a label once seen this often")
    length_ratio: float = Field(4.0, gt=1, description="free text this many times longer or shorter than "
                                                      "the median length (in words) is flagged")


def _digest(shape: Shape) -> bytes:
    """A key set's fingerprint: what a part keeps of the key sets past ``MAX_SHAPES``, for the merge."""
    import hashlib

    return hashlib.blake2b(repr(shape).encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _percent(share: float) -> str:
    return f"{share:.0%}" if share < 0.995 or share == 1 else ">99%"


def _quantiles(hist: Counter[int]) -> dict[str, int]:
    """min/median/p90/max of a histogram of word counts."""
    total = sum(hist.values())
    if not total:
        return {}
    values = sorted(hist)
    out = {"min": values[0], "max": values[-1]}
    marks = {"median": (total - 1) // 2, "p90": min(total - 1, int(0.9 * total))}
    seen = 0
    for v in values:
        nxt = seen + hist[v]
        for name, rank in marks.items():
            if seen <= rank < nxt:
                out[name] = v
        seen = nxt
    return {k: out[k] for k in ("min", "median", "p90", "max")}


class OutputFormatCheck(DataCheck):
    name = "output_format"
    Settings = OutputFormatSettings

    def __init__(self, settings: OutputFormatSettings) -> None:
        super().__init__()
        self.settings = settings
        self.files: list[str] = []
        self.shapes: list[Shape] = []
        self.shape_ids: dict[Shape, int] = {}
        self.values: list[str] = []
        self.value_ids: dict[str, int] = {}
        self.value_counts: list[int] = []
        self.words_hist: Counter[int] = Counter()
        # one entry per answer, in the order seen
        self.a_file = array("I")
        self.a_line = array("I")
        self.a_shape = array("I")
        self.a_words = array("I")
        self.a_value = array("i")  # -1: not a short answer; -2: a short answer past MAX_VALUES
        self.result: dict[str, Any] = {}
        self.memo: dict[str, tuple[Shape, int, str | None]] = {}
        self.in_part = False  # a part keeps every short answer, and key sets past the cap by digest

    def begin(self, ref: DatasetRef) -> None:
        self.files.append(str(ref.path))

    def _shape_id(self, shape: Shape) -> int:
        sid = self.shape_ids.get(shape)
        if sid is None:
            if len(self.shapes) >= MAX_SHAPES and shape[0] == "object":
                shape = ("digest", _digest(shape)) if self.in_part else OTHER_OBJECT
                sid = self.shape_ids.get(shape)
            if sid is None:
                sid = self.shape_ids[shape] = len(self.shapes)
                self.shapes.append(shape)
        return sid

    def _value_id(self, value: str | None) -> int:
        if value is None:
            return -1
        vid = self.value_ids.get(value)
        if vid is None:
            if len(self.values) >= MAX_VALUES and not self.in_part:
                return -2
            vid = self.value_ids[value] = len(self.values)
            self.values.append(value)
            self.value_counts.append(0)
        self.value_counts[vid] += 1
        return vid

    def observe(self, record: Record) -> None:
        text = final_answer(record.example)
        if text is None:
            return
        known = self.memo.get(text)
        if known is None:
            known = classify(text)
            if len(self.memo) < MEMO:
                self.memo[text] = known
        shape, words, value = known
        self.a_file.append(max(0, len(self.files) - 1))
        self.a_line.append(record.line)
        self.a_shape.append(self._shape_id(shape))
        self.a_words.append(words)
        self.a_value.append(self._value_id(value))
        self.words_hist[words] += 1

    # --- in parts -------------------------------------------------------------------------------------

    def part(self) -> "OutputFormatCheck":
        part = self.part_copy()
        part.shapes, part.shape_ids, part.values, part.value_ids, part.value_counts = [], {}, [], {}, []
        part.words_hist, part.memo, part.in_part, part.result = Counter(), {}, True, {}
        for name in ("a_file", "a_line", "a_shape", "a_words"):
            setattr(part, name, array("I"))
        part.a_value = array("i")
        return part

    def merge(self, part: DataCheck) -> None:
        """Shapes and short answers renumbered as one process numbers them: by first appearance, pooled
        past the caps (a part numbers them by its own first appearances, with no cap on short answers)."""
        import numpy as np

        assert isinstance(part, OutputFormatCheck)
        digests: dict[bytes, int] | None = None
        shape_map = []
        for shape in part.shapes:
            if shape[0] == "digest":  # a key set the part saw past the cap: known here, or pooled
                digests = self._digest_ids() if digests is None else digests
                sid = digests.get(shape[1])
                shape_map.append(self._shape_id(OTHER_OBJECT) if sid is None else sid)
            else:
                shape_map.append(self._shape_id(shape))
        value_map = [-1] * (len(part.values) + 1)  # the last entry maps -1 (not a short answer) to -1
        for local, (value, count) in enumerate(zip(part.values, part.value_counts)):
            vid = self.value_ids.get(value)
            if vid is None and len(self.values) < MAX_VALUES:
                vid = self.value_ids[value] = len(self.values)
                self.values.append(value)
                self.value_counts.append(0)
            if vid is not None:
                self.value_counts[vid] += count
            value_map[local] = -2 if vid is None else vid
        for name in ("a_file", "a_line", "a_words"):
            getattr(self, name).extend(getattr(part, name))
        for mine, theirs, ids in ((self.a_shape, part.a_shape, shape_map), (self.a_value, part.a_value, value_map)):
            lookup = np.array(ids or [0], dtype=np.int64)[np.frombuffer(theirs, dtype=theirs.typecode)]
            mine.frombytes(lookup.astype(theirs.typecode).tobytes())
        self.words_hist.update(part.words_hist)

    def _digest_ids(self) -> dict[bytes, int]:
        return {_digest(shape): sid for sid, shape in enumerate(self.shapes) if shape[0] == "object"}

    # --- the whole picture ------------------------------------------------------------------------

    def _labels(self) -> set[int]:
        """Ids of the short answers that form a label set, or an empty set when there is none."""
        s = self.settings
        frequent = [i for i, c in enumerate(self.value_counts) if c >= s.min_label_count]
        covered = sum(self.value_counts[i] for i in frequent)
        short = sum(self.value_counts) + self.a_value.count(-2)
        if not frequent or len(frequent) > s.max_labels:
            return set()
        # most short answers are among them, and they are a real part of the data
        if 2 * covered < short or 4 * covered < len(self.a_line):
            return set()
        return set(frequent)

    def _final_shapes(self, labels: set[int]) -> tuple[list[Shape], array]:
        shapes = list(self.shapes)
        label_id = len(shapes)
        shapes.append(LABEL)
        final = array("I", self.a_shape)
        if labels:
            for i, vid in enumerate(self.a_value):
                if vid in labels:
                    final[i] = label_id
        return shapes, final

    def finish(self) -> list[Finding]:
        s = self.settings
        n = len(self.a_line)
        label_ids = self._labels()
        labels = sorted(self.values[i] for i in label_ids)
        shapes, final = self._final_shapes(label_ids)
        counts = Counter(final)
        ranked = counts.most_common()
        self.result = {
            "answers": n, "format": None, "share": None, "enforced": False,
            "shapes": [{"shape": describe(shapes[sid], labels), "count": c} for sid, c in ranked[:10]],
            "words": _quantiles(self.words_hist), "outliers": 0, "length_outliers": 0,
        }
        if labels:
            self.result["labels"] = labels
        if n < s.min_examples or not ranked:
            return []
        dominant, top = ranked[0]
        share = top / n
        shape = shapes[dominant]
        self.result.update(format=describe(shape, labels), share=round(share, 4))
        if share < s.min_share:
            mix = ", ".join(f"{_percent(c / n)} {describe(shapes[sid], labels, plural=True)}"
                            for sid, c in ranked[:3])
            return self.finding("info", "no-consistent-format", f"the {n:,} answers have no consistent format: {mix}",
                                hint=f"a fine-tuned model copies the mix; settle on one format (the check enforces "
                                     f"one once it covers {s.min_share:.0%} of answers)")
        self.result["enforced"] = True
        out = self.finding("info", "output-format", f"answers are {describe(shape, labels, plural=True)} "
                           f"({_percent(share)} of {n:,})")
        ref = f"{_percent(share)} of answers are {describe(shape, labels, plural=True)}"
        outliers = n - top
        self.result["outliers"] = outliers
        out += self._list("format-outlier", "warning", outliers,
                          ((i, self._why(i, shapes[final[i]], shape, labels) + f"; {ref}")
                           for i in range(n) if final[i] != dominant),
                          hint="rewrite the answer in the common format, or drop the example")
        if shape == TEXT:
            out += self._length_outliers(final, dominant)
        return out

    def _why(self, i: int, got: Shape, want: Shape, labels: list[str]) -> str:
        if want[0] == "object" and got[0] == "object" and want[1] is not None and got[1] is not None:
            missing = [k for k in want[1] if k not in got[1]]
            extra = [k for k in got[1] if k not in want[1]]
            parts = []
            if missing:
                parts.append(f"missing key{'s' if len(missing) > 1 else ''} {show_keys(tuple(missing))}")
            if extra:
                parts.append(f"extra key{'s' if len(extra) > 1 else ''} {show_keys(tuple(extra))}")
            return "answer is a JSON object " + " and ".join(parts)
        vid = self.a_value[i]
        if want == LABEL and vid >= 0:
            return f"answer {json.dumps(self.values[vid], ensure_ascii=False)} is not one of the labels"
        return f"answer is {describe(got, labels)}"

    def _length_outliers(self, final: array, dominant: int) -> list[Finding]:
        ratio = self.settings.length_ratio
        hist: Counter[int] = Counter(w for w, sid in zip(self.a_words, final) if sid == dominant)
        median = _quantiles(hist)["median"]
        if median <= 0:
            return []
        hi, lo = median * ratio, median / ratio
        flagged = [i for i in range(len(final)) if final[i] == dominant and not lo <= self.a_words[i] <= hi]
        self.result["length_outliers"] = len(flagged)
        self.result["median_words"] = median

        def why(i: int) -> str:
            w = self.a_words[i]
            side = f"over {ratio:g}x" if w > hi else f"under 1/{ratio:g} of"
            return f"answer of {w:,} word{'s' if w != 1 else ''}, {side} the median of {median:,} words"

        return self._list("length-outlier", "info", len(flagged), ((i, why(i)) for i in flagged),
                          hint="check the answer is complete and in the same style as the others")

    def _list(self, code: str, severity: Any, total: int, items: Any, hint: str) -> list[Finding]:
        shown = min(total, self.settings.max_outliers_listed, MAX_FINDINGS_PER_CODE)
        out: list[Finding] = []
        for k, (i, message) in enumerate(items):
            if k >= shown:
                break
            out += self.finding(severity, code, message, file=self.files[self.a_file[i]] if self.files else None,
                                line=self.a_line[i], hint=hint)
        if total > shown:
            out += self.finding("info", f"{code}s-not-listed", f"{total - shown:,} more answers of this kind "
                                f"({code}) not listed; {total:,} in all")
        return out

    def summary(self) -> dict[str, Any]:
        if not self.result and self.a_line:
            self.finish()
        return self.result


ftp_config_sections, ftp_data_checks = check_hooks(OutputFormatCheck)
