"""Phrasing: how the validation and test prompts relate to the training prompts.

A test split whose prompts are worded like training's measures recall of those wordings; one whose
prompts use new wordings measures generalisation, and then which training run (seed) and which
checkpoint come out best depends on a validation split that is worded like the test, not like training.

The unit is the user text: every user message before the final answer, lower-cased, split into words,
every word with a digit in it written as ``0`` (order numbers, dates and times are values, not
phrasing). Per validation or test prompt, two measurements against the training prompts:

- **near duplicate**: some training prompt's user text has an estimated Jaccard similarity of at least
  ``threshold`` (MinHash signatures and LSH buckets of ``minhash.py``, the duplicates check's machinery;
  up to ``CANDIDATES`` training prompts per bucket are verified);
- **seen share**: the share of the prompt's distinct word 3-grams that occur in some training prompt,
  leaving out the 3-grams that more than half of the training prompts contain (a shared instruction or
  boilerplate, which says nothing about phrasing). A prompt is **novel** when its seen share is below
  ``novel_below`` (0.5): most of its wording never occurs in training. Prompts with no 3-gram left are
  not judged.

Bounded memory: about ``TRAIN_CAP`` training prompts are indexed (an even 1-in-stride sample of a
larger file's lines, each line picked by its number alone: see ``picked``), their 3-grams up to
``NGRAM_CAP`` hashes (8 bytes each; then no more are added), and about ``EVAL_CAP`` prompts per
validation or test file are measured (again a 1-in-stride sample); per measured prompt only counters
and its seen share are kept. The summary says when a stride or the cap applied. numpy (and
``minhash``) load only once the check runs.
"""

from __future__ import annotations

import math
import re
from array import array
from typing import Any

from pydantic import Field

from ftp.data.checks import CheckSettings, DataCheck, Record, check_hooks
from ftp.types import CheckContext, DatasetRef, Finding

NGRAM = 3
BOILERPLATE = 0.5  # 3-grams in more than this share of training prompts are not phrasing
TRAIN_CAP = 100_000
EVAL_CAP = 50_000
NGRAM_CAP = 4_000_000
CANDIDATES = 4  # training prompts verified per LSH bucket hit
BATCH = 256

_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / the golden ratio
_DIGITS = re.compile(r"\w*\d[\w']*")  # a word with a digit in it is a value: 12345, 3pm, 21st, A12
_WORD = re.compile(r"\w+(?:'\w+)*")


class PhrasingSettings(CheckSettings):
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity for a near duplicate in training")
    novel_below: float = Field(0.5, gt=0, le=1, description="a prompt whose seen share of 3-grams is below this "
                               "is novel in phrasing")
    mostly_novel: float = Field(0.5, gt=0, le=1, description="this share of novel test prompts or more: the "
                                "test split measures new phrasings (info)")
    validation_novel_max: float = Field(0.25, ge=0, le=1, description="with a mostly novel test split, a validation "
                                        "split with at most this share of novel prompts is a warning")


def user_text(example: Any) -> str | None:
    """Every user message's text before the final answer (or a completion-style prompt)."""
    if not isinstance(example, dict):
        return None
    messages = example.get("messages")
    if not isinstance(messages, list):
        prompt = example.get("prompt")
        return prompt if isinstance(prompt, str) else None
    end = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"),
              default=len(messages))
    parts: list[str] = []
    for m in messages[:end]:
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return "\n".join(parts)


_WORD_HASHES: dict[str, int] = {}
_MASK = 0xFFFFFFFFFFFFFFFF


def _word_hash(word: str) -> int:
    """A word's 64-bit hash, the same in every process (``hash`` is salted per process, and a file read in
    ranges hashes its training prompts in other processes); remembered, as vocabularies are small."""
    h = _WORD_HASHES.get(word)
    if h is None:
        import hashlib

        if len(_WORD_HASHES) >= 1 << 20:
            _WORD_HASHES.clear()
        h = _WORD_HASHES[word] = int.from_bytes(hashlib.blake2b(word.encode("utf-8", "surrogatepass"),
                                                                digest_size=8).digest(), "little")
    return h


def ngrams(text: str) -> set[int]:
    """Hashes of the distinct word 3-grams of ``text`` (lower case, digits as 0), as signed 64-bit ints."""
    h = [_word_hash(w) for w in _WORD.findall(_DIGITS.sub("0", text.lower()))]
    out = set()
    for i in range(len(h) - NGRAM + 1):
        x = (h[i] * 0x9FB21C651E98DF25 + h[i + 1] * 0xD6E8FEB86659FD93 + h[i + 2]) & _MASK
        x = ((x ^ (x >> 31)) * 0xBF58476D1CE4E5B9) & _MASK
        out.add(x - (1 << 64) if x >> 63 else x)
    return out


def _stride(examples: int, cap: int) -> int:
    return max(1, -(-examples // cap))


def picked(line: int, stride: int) -> bool:
    """Whether a line is in the 1-in-``stride`` sample: the fractional part of its number times the golden
    ratio is below 1/stride (a Weyl sequence: evenly spread, with no period that blank or broken lines
    could fall in step with). Each line decides alone, so a file read in ranges samples the same lines."""
    return stride == 1 or (line * _GOLDEN) & 0xFFFFFFFFFFFFFFFF < (1 << 64) // stride


class SplitStats:
    """Counters for one validation or test split."""

    def __init__(self) -> None:
        self.measured = self.judged = self.near = self.novel = 0
        self.seen = array("d")  # each judged prompt's seen share (summed exactly: the same in any order)

    def add(self, other: "SplitStats") -> None:
        self.measured += other.measured
        self.judged += other.judged
        self.near += other.near
        self.novel += other.novel
        self.seen.extend(other.seen)

    def to_json(self) -> dict[str, Any]:
        judged = max(self.judged, 1)
        return {"measured": self.measured, "not_judged": self.measured - self.judged,
                "near_duplicate_share": round(self.near / max(self.measured, 1), 4),
                "novel_share": round(self.novel / judged, 4),
                "mean_seen_share": round(math.fsum(self.seen) / judged, 4)}


class PhrasingCheck(DataCheck):
    name = "phrasing"
    Settings = PhrasingSettings

    @classmethod
    def build(cls, context: CheckContext) -> "PhrasingCheck | None":
        data = context.data
        if data.validation is None and data.test is None:
            return None  # nothing to compare: spend no memory
        return cls(cls.settings_from(context), data.train.examples)

    def __init__(self, settings: PhrasingSettings, train_examples: int = 0) -> None:
        super().__init__()
        self.settings = settings
        self.train_stride = _stride(train_examples, TRAIN_CAP)
        self.stride = 1
        self.split: str | None = None
        self.texts: list[str] = []
        self.grams = array("q")
        self.gram_counts = array("I")  # 3-grams added per prompt, so a part's merge can stop where one process did
        self.gram_prompts = 0
        self.capped = False
        self.sigs: list[Any] = []
        self.index: Any = None  # built when the training file ends
        self.stats: dict[str, SplitStats] = {}
        self.files: dict[str, str] = {}

    @staticmethod
    def _is_train(split: str | None) -> bool:
        return split in (None, "train")

    def begin(self, ref: DatasetRef) -> None:
        self.split = ref.split
        self.texts = []
        if not self._is_train(ref.split):
            self.stride = _stride(ref.examples, EVAL_CAP)
            self.stats.setdefault(ref.split or "?", SplitStats())
            self.files[ref.split or "?"] = str(ref.path)

    def observe(self, record: Record) -> None:
        text = user_text(record.example)
        if text is None:
            return
        train = self._is_train(record.split)
        if not picked(record.line, self.train_stride if train else self.stride):
            return
        if train and not self.capped:
            grams = ngrams(text)
            self.grams.extend(grams)
            self.gram_counts.append(len(grams))
            self.gram_prompts += 1
            self.capped = len(self.grams) >= NGRAM_CAP
        self.texts.append(text)
        if len(self.texts) >= BATCH:
            self._flush(train)

    def end(self, ref: DatasetRef, lines: int) -> None:
        train = self._is_train(ref.split)
        self._flush(train)
        if train and self.index is None:
            self.index = TrainIndex(self.sigs, self.grams, self.gram_prompts, self.settings.threshold)
            self.sigs, self.grams, self.gram_counts = [], array("q"), array("I")

    def part(self) -> "PhrasingCheck":
        """A training range's part sketches and collects its prompts; another file's measures its prompts
        against the training index (which travels to the worker, not back)."""
        part = self.part_copy()
        part.texts, part.sigs, part.grams, part.gram_counts, part.gram_prompts = [], [], array("q"), array("I"), 0
        part.stats = {} if self._is_train(self.split) else {self.split or "?": SplitStats()}
        return part

    def end_part(self, last: bool) -> None:
        self._flush(self._is_train(self.split))
        self.index = None

    def merge(self, part: DataCheck) -> None:
        assert isinstance(part, PhrasingCheck)
        self.sigs += part.sigs
        start = 0
        for count in part.gram_counts:  # prompt by prompt, until the cap: where one process stops adding
            if self.capped:
                break
            self.grams.extend(part.grams[start:start + count])
            start += count
            self.gram_prompts += 1
            self.capped = len(self.grams) >= NGRAM_CAP
        for split, stats in part.stats.items():
            self.stats[split].add(stats)

    def _flush(self, train: bool) -> None:
        if not self.texts:
            return
        from .minhash import sketch

        _, sigs, counts = sketch(self.texts)
        if train:
            self.sigs.append(sigs[counts > 0])
        elif self.index is not None:
            self.index.measure(self.texts, sigs, counts > 0, self.settings.novel_below,
                               self.stats[self.split or "?"])
        self.texts = []

    # --- the whole picture ------------------------------------------------------------------------

    def finish(self) -> list[Finding]:
        s, out = self.settings, []
        test, validation = self.stats.get("test"), self.stats.get("validation")
        novel_test = test is not None and test.judged > 0 and test.novel / test.judged >= s.mostly_novel
        if test is not None and novel_test:
            t = test.to_json()
            out += self.finding("info", "novel-test-phrasing",
                                f"{t['novel_share']:.0%} of test prompts are phrased unlike the training prompts (most "
                                f"of their word 3-grams never occur in training; {t['near_duplicate_share']:.0%} have "
                                "a near duplicate there): the test split measures generalisation to new phrasings",
                                file=self.files.get("test"),
                                hint="results vary from run to run; `ftp advise TRAIN --validation V --test T` lists "
                                     "settings to try")
        if novel_test and validation is not None and validation.judged > 0 \
                and validation.novel / validation.judged <= s.validation_novel_max:
            v = validation.to_json()
            out += self.finding("warning", "validation-unlike-test",
                                f"validation prompts are phrased like training ({v['novel_share']:.0%} novel, "
                                f"{v['near_duplicate_share']:.0%} near duplicates of training) while the test prompts "
                                "are new: early stopping and the best checkpoint then select for recall of training "
                                "wordings, not for generalisation", file=self.files.get("validation"),
                                hint="make the validation split from phrasings held out of training, as the test is")
        return out

    def summary(self) -> dict[str, Any]:
        if not self.stats:
            return {}
        return {"ngram": NGRAM, "novel_below": self.settings.novel_below, "threshold": self.settings.threshold,
                "train_prompts_indexed": self.index.size if self.index is not None else 0,
                "train_stride": self.train_stride, "ngrams_capped": self.capped,
                "splits": {split: st.to_json() for split, st in self.stats.items()}}


class TrainIndex:
    """The training side: LSH buckets of the signatures, and the sorted 3-gram hashes (numpy)."""

    def __init__(self, sigs: list[Any], grams: array, prompts: int, threshold: float) -> None:
        import numpy as np

        from .minhash import BANDS, NUM_PERM, band_key, stable_argsort

        self.sigs = np.concatenate(sigs) if sigs else np.zeros((0, NUM_PERM), dtype=np.uint16)
        self.size = len(self.sigs)
        self.need = int(np.ceil(threshold * NUM_PERM - 1e-9))
        self.bands = []
        for band in range(BANDS):
            key = band_key(self.sigs, band)
            order = stable_argsort(key)
            self.bands.append((key[order], order))
        uniq, df = np.unique(np.frombuffer(grams, dtype=np.int64), return_counts=True)
        self.grams = uniq
        self.boiler = uniq[df > BOILERPLATE * max(prompts, 1)]

    def near(self, sigs: Any) -> Any:
        """For each signature: whether some indexed training signature verifies as a near duplicate."""
        import numpy as np

        from .minhash import band_key

        hit = np.zeros(len(sigs), dtype=bool)
        if self.size == 0:
            return hit
        for band, (keys, order) in enumerate(self.bands):
            key = band_key(sigs, band)
            pos = np.searchsorted(keys, key)
            for j in range(CANDIDATES):
                at = np.minimum(pos + j, self.size - 1)
                rows = np.flatnonzero(~hit & (pos + j < self.size) & (keys[at] == key))
                if not len(rows):
                    break
                same = (sigs[rows] == self.sigs[order[at[rows]]]).sum(axis=1) >= self.need
                hit[rows[same]] = True
        return hit

    def measure(self, texts: list[str], sigs: Any, has_words: Any, novel_below: float, stats: SplitStats) -> None:
        import numpy as np

        near = self.near(sigs) & has_words
        stats.measured += len(texts)
        stats.near += int(near.sum())
        for text in texts:
            grams = np.fromiter(ngrams(text), dtype=np.int64)
            if len(self.boiler):
                grams = grams[~np.isin(grams, self.boiler, assume_unique=True)]
            if not len(grams):
                continue
            pos = np.minimum(np.searchsorted(self.grams, grams), max(len(self.grams) - 1, 0))
            seen = float((self.grams[pos] == grams).mean()) if len(self.grams) else 0.0
            stats.judged += 1
            stats.seen.append(seen)
            stats.novel += seen < novel_below


ftp_config_sections, ftp_data_checks = check_hooks(PhrasingCheck)
