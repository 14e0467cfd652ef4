"""The evaluation session's own decisions: which metrics fit the answers, batching, the identical-answers
warning, and the phases it records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftp.eval.answers import batch_size_for, generate_batched, prompt_order
from ftp.eval.formats import answer_format, choose_metrics
from ftp.eval.session import identical_warning


def test_the_answers_say_what_kind_of_task_it_is() -> None:
    labels = answer_format(["refund", "billing", "refund", "shipping", "billing", "shipping"] * 3)
    assert labels.kind == "label" and labels.labels == ["billing", "refund", "shipping"]
    records = answer_format([json.dumps({"item": "hat", "size": s}) for s in "SMLSML"] + ['{"item": "cap"}'])
    assert records.kind == "json" and records.keys == ["item", "size"] and "JSON objects" in records.reason
    prose = answer_format([f"The meeting moved to day {i} because of the storm." for i in range(10)])
    assert prose.kind == "text"
    given = answer_format(["x", "y"], labels=["a", "b"])
    assert given.kind == "label" and given.labels == ["a", "b"] and "evaluate.labels" in given.reason
    # one-off short answers are free text, not a label set
    assert answer_format([f"id {i}" for i in range(20)]).kind == "text"


def test_the_metrics_chosen_fit_the_answers_and_missing_ones_are_said() -> None:
    fmt = answer_format(["a", "b", "a", "b"] * 3)
    names, reason = choose_metrics(fmt, with_loss=True, gated=["token_f1"])
    assert names == ["loss", "exact_match", "accuracy", "macro_f1", "format_compliance", "token_f1"]
    assert "labels" in reason
    names, reason = choose_metrics(fmt, with_loss=False, known={"exact_match", "accuracy"})
    assert names == ["exact_match", "accuracy"] and "left out" in reason and "macro_f1" in reason
    text = answer_format([f"free text number {i} here" for i in range(10)])
    assert choose_metrics(text, with_loss=False, judge_mode="pairwise")[0][-1] == "judge_preference"


class Echo:
    """A predictor that answers each prompt with its own text, recording the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def generate(self, conversations: Sequence[list[dict[str, Any]]], max_new_tokens: int) -> list[str]:
        self.batches.append(len(conversations))
        return [c[-1]["content"] for c in conversations]

    def loss(self, examples: Sequence[Any]) -> float | None:
        return None

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def suggest_batch_size(self, max_new_tokens: int) -> int:
        return 3


class Quiet:
    def progress(self, description: str, total: int) -> Any:
        class Task:
            def update(self, completed: int, **fields: Any) -> None: ...

            def close(self) -> None: ...

        return Task()

    def event(self, kind: str, **data: Any) -> None: ...


def test_answers_come_back_in_order_though_batched_longest_first() -> None:
    prompts = [[{"role": "user", "content": "x" * n}] for n in (3, 10, 1, 7, 5)]
    assert prompt_order(prompts) == [1, 3, 4, 0, 2]
    echo = Echo()
    size = batch_size_for(echo, "auto", len(prompts), 8)
    assert size == 3 and batch_size_for(echo, 2, 5, 8) == 2 and batch_size_for(echo, "auto", 2, 8) == 2
    answers = generate_batched(echo, prompts, 8, size, Quiet(), "fine-tuned")
    assert answers == [p[0]["content"] for p in prompts] and echo.batches == [3, 2]


def test_answers_equal_to_the_base_models_are_flagged() -> None:
    same = {"fine-tuned": ["A", "b ", "c"] * 10, "base": ["a", "b", "c"] * 10}
    warning = identical_warning(same, 0.9)
    assert warning is not None and "100% of 30" in warning and "adapter" in warning
    different = {"fine-tuned": ["a", "x", "y"] * 10, "base": ["a", "b", "c"] * 10}
    assert identical_warning(different, 0.9) is None
    assert identical_warning({"fine-tuned": ["a"]}, 0.9) is None  # no base model to compare with


def test_a_run_records_its_phases_and_the_identical_warning(project: Path) -> None:
    from conftest import invoke

    # zero epochs' worth of learning: a learning rate of 1e-12 leaves the adapter a no-op
    result = invoke("run", "pipeline.yaml", "--quiet", "--steps", "validate,split,train,evaluate",
                    "--set", "train.learning_rate=1e-12", "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output + result.stderr
    run_dir = next((project / "runs" / "tiny").iterdir())
    report = json.loads((run_dir / "eval.json").read_text())
    assert set(report["phases"]) == {"load", "generate", "score", "compare", "report"}
    assert any("equal the base model's" in w for w in report["warnings"])
