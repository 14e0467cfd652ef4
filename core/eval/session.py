"""One evaluation: every candidate answers the same test examples, every evaluator scores them, the
comparison plugins pair them, and the report files are written. The pipeline's evaluate step and
``ftp eval`` both call ``evaluate``, so a model scored on the command line is scored exactly as in a run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftp import __version__
from ftp.config.settings import EvaluateSettings
from ftp.data.files import reference_answer
from ftp.errors import NotEvaluable
from ftp.eval.answers import auto_max_new_tokens, batch_size_for, eval_report, generate_batched
from ftp.eval.files import answers_table, example_rows, metric_entries, write_report
from ftp.eval.formats import answer_format, choose_metrics, same_answer
from ftp.hooks import Hooks
from ftp.registry.lineage import library_versions
from ftp.types import AnswerFormat, EvalReport, EvalRequest, Example, Metric, ModelRef, Predictor, ScoredTable

# label -> (what the model is, a loader giving its predictor or None and the reason it cannot answer)
Loader = Callable[[], tuple[Predictor | None, str]]
LIBRARIES = ("scipy", "numpy", "sacrebleu", "jsonschema", "openai", "transformers", "peft", "torch")
CANDIDATE = "fine-tuned"


@dataclass
class EvalSpec:
    """Everything about an evaluation that is not the examples or the models."""

    settings: EvaluateSettings
    pipeline: dict[str, Any]  # the pipeline file as a dict, for evaluators that read their own keys
    seed: int
    confidence: float
    gated: list[str] = field(default_factory=list)
    training_answers: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # path, sha256, examples
    run_dir: Path | None = None  # loss curves for eval.html
    overfitting: str | None = None


@dataclass
class EvalOutcome:
    report: EvalReport
    metrics: list[Metric]
    payload: dict[str, Any]
    skipped: dict[str, str]


def answering(label: str, load: Callable[[], Predictor], reporter: Any) -> tuple[Predictor | None, str]:
    """The candidate's predictor, or None and the backend's reason (shown) when it cannot answer prompts:
    a run and ``ftp eval`` go on without that candidate."""
    try:
        return load(), ""
    except NotEvaluable as exc:
        reporter.event("warning", message=f"{label}: not evaluated: {exc}")
        return None, str(exc)


def pick_metrics(spec: EvalSpec, fmt: AnswerFormat, hooks: Hooks, with_loss: bool) -> tuple[list[str], str, bool]:
    """``evaluate.metrics`` as given, or the metrics that fit the answers (and the gated ones)."""
    ev = spec.settings
    if ev.metrics is not None:
        return list(ev.metrics), "as listed in evaluate.metrics", False
    judge = ev.judge.mode if ev.judge else None
    names, reason = choose_metrics(fmt, with_loss=with_loss, gated=spec.gated, json_schema=ev.json_schema is not None,
                                   judge_mode=judge, known=hooks.metrics())
    return names, reason, True


def answer_groups(candidates: Mapping[str, tuple[ModelRef, Loader]], skipped: dict[str, str],
                  lap: Callable[[str], None]) -> Iterator[tuple[list[str], Any, dict[str, tuple[ModelRef, Predictor]]]]:
    """The candidates in the order given, each loaded only when the one before has answered, so one model
    is in memory (and on Azure one endpoint made) at a time and an interrupted evaluation has made nothing
    it did not use. A predictor offering ``joint`` (the fine-tuned model and its base on the same weights
    in memory), and saying by ``can_join`` that it may find partners, has the later candidates loaded to
    answer with it in one batch: one group and the joint predictor, whose answers are one tuple per
    prompt. Candidates that cannot answer go to ``skipped``."""
    pending = [(label, model, loader) for label, (model, loader) in candidates.items()]
    ready: dict[str, tuple[ModelRef, Predictor]] = {}

    def load(label: str, model: ModelRef, loader: Loader) -> None:
        predictor, why = loader()
        lap("load")
        if predictor is None:
            skipped[label] = why
        else:
            ready[label] = (model, predictor)

    while pending or ready:
        if not ready:
            load(*pending.pop(0))
            continue
        first = next(iter(ready))
        joint, can_join = (getattr(ready[first][1], name, None) for name in ("joint", "can_join"))
        if callable(joint) and callable(can_join) and can_join():
            while pending:
                load(*pending.pop(0))
        rest = [label for label in ready if label != first]
        found = joint([ready[label][1] for label in rest]) if callable(joint) and rest else None
        group = [first] if found is None else [first, *(rest[i] for i in found[1])]
        members = {label: ready.pop(label) for label in group}
        yield group, members[first][1] if found is None else found[0], members
        del members, found, joint  # freed before the next candidate loads


def identical_warning(predictions: dict[str, list[str]], share: float) -> str | None:
    """The fine-tuned model saying what the base model says on nearly every example: most often an
    adapter that was never applied (a wrong path, a merged copy of the base)."""
    ours, base = predictions.get(CANDIDATE), predictions.get("base")
    if not ours or not base or len(ours) != len(base):
        return None
    same = sum(same_answer(a, b) for a, b in zip(ours, base)) / len(ours)
    if same < share:
        return None
    return (f"fine-tuned answers equal the base model's on {same:.0%} of {len(ours)} test examples: check that "
            "the adapter is applied (the model path, adapter_config.json), or that training changed the model")


def evaluate(examples: list[Example], candidates: Mapping[str, tuple[ModelRef, Loader]], spec: EvalSpec, hooks: Hooks,
             reporter: Any, report_dir: Path, skipped: dict[str, str] | None = None) -> EvalOutcome:
    """Answer, score, compare and write ``eval.json``, ``eval/examples.jsonl`` and ``eval.html``."""
    ev = spec.settings
    skipped = dict(skipped or {})
    references = [reference_answer(ex) for ex in examples]
    conversations = [ex["messages"][:-1] for ex in examples]
    fmt = answer_format(references, spec.training_answers, ev.labels, ev.format_regex)
    metrics: list[Metric] = []
    predictions: dict[str, list[str]] = {}
    timing: dict[str, dict[str, Any]] = {}
    decoding: dict[str, Any] = {"greedy": True}
    names: list[str] = []
    reason, auto = "", False
    phases: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        phases[name] = round(phases.get(name, 0.0) + time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    for group, predictor, loaded in answer_groups(candidates, skipped, lap):
        if not names:
            names, reason, auto = pick_metrics(spec, fmt, hooks, with_loss=loaded[group[0]][0].kind != "cloud")
            reporter.event("metrics", message=f"metrics: {reason}")
        limit = ev.max_new_tokens if isinstance(ev.max_new_tokens, int) else auto_max_new_tokens(predictor, references)
        size = batch_size_for(predictor, ev.batch_size, len(examples), limit)
        decoding.update(max_new_tokens=limit, batch_size=size)
        who = " and ".join(group)
        together = " in the same batches" if len(group) > 1 else ""
        reporter.event("evaluating", candidate=who, examples=len(examples),
                       message=f"{who}: answering {len(examples)} test prompts (batches of {size}{together})")
        started = time.perf_counter()
        scoring = examples if {"loss", "perplexity"} & set(names) else None  # the loss from the same pass
        answers = generate_batched(predictor, conversations, limit, size, reporter, who, scoring)
        seconds = round(time.perf_counter() - started, 3)
        for k, label in enumerate(group):
            predictions[label] = [a[k] for a in answers] if len(group) > 1 else answers
            timing[label] = {"seconds": seconds, "answers": len(answers), **({"with": list(group)} if len(group) > 1 else {})}
        lap("generate")
        for label in group:
            ref, member = loaded[label]  # a joint predictor's members are these predictors themselves
            metrics += hooks.evaluate(EvalRequest(candidate=label, model=ref, examples=examples,
                                                  predictions=predictions[label], references=references, metrics=names,
                                                  predictor=member, settings=spec.pipeline, answer_format=fmt))
        del predictor, loaded, member  # one model in memory at a time
        lap("score")
    table = ScoredTable(n=len(examples), candidates=list(predictions), metrics=metrics, examples=examples,
                        references=references, predictions=predictions, resamples=ev.resamples,
                        confidence=spec.confidence, seed=spec.seed, settings=spec.pipeline)
    comparisons = hooks.compare(table) if len(predictions) > 1 else []
    lap("compare")
    report = eval_report(metrics, len(examples), comparisons)
    warnings = [w for w in [identical_warning(predictions, ev.identical_share)] if w]
    warnings += [str(c.details["warning"]) for c in comparisons if c.details.get("warning")]
    for w in warnings:
        reporter.event("warning", message=w)
    payload = {"n": len(examples), "candidates": list(predictions), "metrics": report.metrics,
               "higher_is_better": report.higher_is_better, "details": metric_entries(metrics),
               "comparisons": [c.model_dump(mode="json") for c in comparisons],
               "answer_format": fmt.model_dump(mode="json"),
               "metrics_chosen": {"names": names, "auto": auto, "reason": reason}, "decoding": decoding,
               "versions": {"ftp": __version__, **library_versions(LIBRARIES)}, "data": spec.data, "seed": spec.seed, "resamples": ev.resamples,
               "confidence": spec.confidence, "timing": timing, "phases": phases, "warnings": warnings,
               **({"not_evaluated": skipped} if skipped else {}),
               **({"overfitting": spec.overfitting} if spec.overfitting else {}),
               "examples": answers_table(examples, references, predictions)}
    rows = example_rows(examples, references, predictions, metrics)
    from ftp.eval.html_report import html_for

    html_for(report_dir, payload, rows, spec.run_dir)
    lap("report")  # payload["phases"] is this dict: eval.json, written last, holds every phase
    write_report(report_dir, payload, rows)
    return EvalOutcome(report=report, metrics=metrics, payload=payload, skipped=skipped)
