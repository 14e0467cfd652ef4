"""The reference ``ftp monitor`` measures drift against: the training split a model version was trained
on (from the artifact store, byte-identical to what training read), profiled with the same feature
functions the server applies to each request (``ftp.monitor.features``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftp.monitor.features import (PROMPT_FEATURES, answer_checker, answer_of, content, oov_share, prompt_features,
                                  prompt_of, words)
from ftp.types import AnswerFormat, ModelVersion


@dataclass
class Reference:
    """Per-example values of each feature over the version's training examples."""

    version: int
    examples: int
    sha256: str
    numeric: dict[str, list[float]] = field(default_factory=dict)  # prompt features, answer_chars
    answer_format: AnswerFormat | None = None
    labels: list[str] = field(default_factory=list)  # label tasks: each training answer's label
    in_format: float | None = None  # the share of training answers in the format
    vocabulary: Counter[str] = field(default_factory=Counter)  # prompt words, for OOV and vocabulary drift

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "examples": self.examples, "sha256": self.sha256,
                "answer_format": self.answer_format.model_dump(mode="json") if self.answer_format else None,
                "in_format": self.in_format, "vocabulary": len(self.vocabulary)}


def answer_format_of(version: ModelVersion, evaluate: Any, artifacts: Path | None) -> AnswerFormat | None:
    """The format evaluation and the smoke test read off the version's test and training answers
    (``evaluate.labels`` and ``evaluate.format_regex`` count); None when its data is not in the store."""
    from ftp.deploy.smoke import data_file
    from ftp.data.files import read_jsonl, reference_answer
    from ftp.eval.formats import answer_format

    test, train = (data_file(version, part, artifacts, None) for part in ("test", "train"))
    if test is None and train is None:
        return None
    references = [reference_answer(ex) for ex in read_jsonl(test)] if test else []
    training = [reference_answer(ex) for ex in read_jsonl(train)] if train else []
    return answer_format(references, training, evaluate.labels, evaluate.format_regex)


def build_reference(version: ModelVersion, evaluate: Any, artifacts: Path | None) -> Reference | None:
    """The version's training split profiled; None when it is not in the artifact store (a version
    registered before ftp stored data), which the monitor reports as "no reference"."""
    from ftp.deploy.smoke import data_file
    from ftp.data.files import read_jsonl

    train = data_file(version, "train", artifacts, None)
    if train is None:
        return None
    examples = [ex for ex in read_jsonl(train) if isinstance(ex.get("messages"), list)]
    fmt = answer_format_of(version, evaluate, artifacts)
    check = answer_checker(fmt)
    ref = Reference(version=version.version, examples=len(examples), sha256=version.stored.get("train", ""),
                    numeric={name: [] for name in (*PROMPT_FEATURES, "answer_chars")}, answer_format=fmt)
    in_format = []
    prompt_words: list[list[str]] = []
    for ex in examples:
        prompt = prompt_of(ex["messages"])
        for name, value in prompt_features(prompt).items():
            ref.numeric[name].append(float(value))
        tokens = [w for message in prompt for w in words(content(message))]
        prompt_words.append(tokens)
        ref.vocabulary.update(tokens)
        answer = answer_of(ex["messages"]) or ""
        ref.numeric["answer_chars"].append(float(len(answer)))
        ok, label = check(answer)
        if ok is not None:
            in_format.append(ok)
        if label is not None:
            ref.labels.append(label)
    ref.in_format = sum(in_format) / len(in_format) if in_format else None
    ref.numeric["prompt_oov"] = [out_of_vocabulary(tokens, ref.vocabulary) for tokens in prompt_words]
    return ref


def out_of_vocabulary(tokens: list[str], vocabulary: Counter[str]) -> float:
    """One training prompt's share of words no *other* training prompt has (leave-one-out): measured
    against the whole vocabulary, every training prompt would score 0 and any served prompt look new."""
    own = Counter(tokens)
    return oov_share(tokens, lambda w: vocabulary[w] > own[w])


Checker = Callable[[str], tuple[bool | None, str | None]]


class Formats:
    """Each served version's answer check, made once per version: the server checks every answer for
    the log (reading the version's data costs, so it happens in a worker thread, then is cached)."""

    def __init__(self, evaluate: Any, artifacts: Path | None) -> None:
        self.evaluate, self.artifacts = evaluate, artifacts
        self._known: dict[tuple[str, int], Checker] = {}
        self._lock = threading.Lock()

    def checker(self, version: ModelVersion) -> Checker:
        key = (version.name, version.version)
        with self._lock:
            if key in self._known:
                return self._known[key]
        try:
            fmt = answer_format_of(version, self.evaluate, self.artifacts)
        except Exception:  # noqa: BLE001 (a version whose data cannot be read is served, its answers unchecked)
            fmt = None
        check = answer_checker(fmt)
        with self._lock:
            self._known[key] = check
        return check
