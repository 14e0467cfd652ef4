"""The smoke test a version passes before it takes traffic: a few of its own test prompts, answered
through the serving engine that will serve it (``ftp_serving_engine``), each without an error and in
the data's answer format.

Evaluation already scored the model; this checks the *serving path*: that the deployed artifact loads
where it will be served, that its adapter and chat template are applied (an adapter that silently fails
to load answers in the base model's free text, not the task's JSON), and that it answers at all. "In
format" is what format compliance means in evaluation (``ftp.eval.formats.answer_format`` reads the
format off the test and training answers; ``evaluate.format_regex`` and ``evaluate.labels`` count).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftp.errors import FtpError
from ftp.types import AnswerFormat, GenerationRequest, Message, ModelVersion, Provisioned, ServedModel, ServingEngine

MAX_TRAINING_ANSWERS = 5000  # as many as evaluation reads to decide the format
SHOWN = 60  # characters of a failing answer quoted in the summary


@dataclass(frozen=True)
class SmokeReport:
    """What the smoke test found: ``passed`` only when every prompt was answered, in format."""

    passed: bool
    checked: int
    errors: list[str] = field(default_factory=list)  # "prompt 2: RuntimeError: ..."
    format_failures: list[str] = field(default_factory=list)  # "prompt 1: 'free text' is not ..."
    answers: list[str] = field(default_factory=list)
    format: str = ""  # what "in format" meant, e.g. "a JSON object with exactly the keys colour"
    summary: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "checked": self.checked, "errors": self.errors,
                "format_failures": self.format_failures, "format": self.format, "summary": self.summary}


def format_test(fmt: AnswerFormat | None) -> tuple[Callable[[str], bool], str]:
    """The in-format test for one answer, as evaluation's format compliance has it (ftp.eval.formats)."""
    from ftp.eval.formats import in_format

    return in_format(fmt)


def _quoted(text: str) -> str:
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "...")


def smoke_test(model: ServedModel, prompts: list[list[Message]], answer_format: AnswerFormat | None,
               max_tokens: int) -> SmokeReport:
    """Ask ``model`` each prompt greedily; any exception or out-of-format answer fails the test."""
    check, described = format_test(answer_format)
    errors: list[str] = []
    failures: list[str] = []
    answers: list[str] = []
    for number, messages in enumerate(prompts, start=1):
        try:
            text = model.complete(GenerationRequest(messages=messages, max_tokens=max_tokens)).text
        except Exception as exc:  # any failure to answer is what the test is for; it is reported, not raised
            errors.append(f"prompt {number}: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
            answers.append("")
            continue
        answers.append(text)
        if not check(text):
            failures.append(f"prompt {number}: {_quoted(text)} is not {described}")
    return SmokeReport(passed=bool(prompts) and not errors and not failures, checked=len(prompts), errors=errors,
                       format_failures=failures, answers=answers, format=described,
                       summary=summary_of(len(prompts), errors, failures, described, model.label))


def summary_of(checked: int, errors: list[str], failures: list[str], described: str, label: str) -> str:
    """One line: how many prompts passed, else the first problem of each kind."""
    if not checked:
        return f"{label}: no test prompts to smoke-test with"
    if not errors and not failures:
        return f"{label}: {checked} of {checked} test prompts answered, each {described}"
    parts = []
    if errors:
        parts.append(f"{len(errors)} of {checked} prompts failed ({errors[0]})")
    if failures:
        parts.append(f"{len(failures)} of {checked} answers not in the data's format ({failures[0]})")
    return f"{label}: " + "; ".join(parts)


def failed_to_load(label: str, exc: Exception) -> SmokeReport:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return SmokeReport(passed=False, checked=0, errors=[f"load: {first}"], summary=f"{label} did not load: {first}")


def run_smoke(engine: ServingEngine, version: ModelVersion, endpoint: Provisioned | None, prompts: list[list[Message]],
              answer_format: AnswerFormat | None, max_tokens: int) -> SmokeReport:
    """Load ``version`` in ``engine`` and smoke-test it; the engine is closed afterwards either way."""
    label = f"{version.name}:{version.version}"
    try:
        try:
            model = engine.load(version, endpoint)
        except Exception as exc:  # a version that cannot be served fails its smoke test, with the reason
            return failed_to_load(label, exc)
        return smoke_test(model, prompts, answer_format, max_tokens)
    finally:
        engine.close()


# --- the prompts and the format ---------------------------------------------------------------------


@dataclass(frozen=True)
class SmokeData:
    prompts: list[list[Message]]
    answer_format: AnswerFormat
    max_tokens: int
    source: str  # where the prompts came from, for the log


def data_file(version: ModelVersion, part: str, artifacts: Path | None, fallback: Path | None) -> Path | None:
    """The version's ``part`` (test, train) from the artifact store, else ``fallback`` (the run's split)."""
    from ftp.registry.store import ArtifactStore

    digest = version.stored.get(part)
    if digest and artifacts is not None:
        store = ArtifactStore(Path(artifacts))
        if store.entry(digest).is_dir():
            return store.file(digest)
    return fallback if fallback is not None and Path(fallback).is_file() else None


def smoke_data(version: ModelVersion, count: int, evaluate: Any, artifacts: Path | None,
               test_file: Path | None = None, train_file: Path | None = None) -> SmokeData:
    """The first ``count`` prompts of the version's test split, the answer format evaluation would read
    off its answers (``evaluate``: the pipeline's ``EvaluateSettings``), and the tokens to allow."""
    from ftp.data.files import read_jsonl, reference_answer
    from ftp.eval.formats import answer_format

    label = f"{version.name}:{version.version}"
    test = data_file(version, "test", artifacts, test_file)
    if test is None:
        raise FtpError(f"{label}: no test split to smoke-test with (not in the artifact store {artifacts}, no run "
                       "split); point -p/--registry at its store, or skip the smoke test")
    examples = read_jsonl(test)
    train = data_file(version, "train", artifacts, train_file)
    training = [reference_answer(ex) for ex in read_jsonl(train)[:MAX_TRAINING_ANSWERS]] if train else []
    references = [reference_answer(ex) for ex in examples]
    fmt = answer_format(references, training, evaluate.labels, evaluate.format_regex)
    limit = evaluate.max_new_tokens if isinstance(evaluate.max_new_tokens, int) else _room(references)
    return SmokeData([ex["messages"][:-1] for ex in examples[:count]], fmt, limit, str(test))


def _room(references: list[str]) -> int:
    """Tokens enough for the longest reference answer (a token is rarely shorter than a character),
    with a margin, capped as evaluation caps it."""
    return min(1024, int(max((len(r) for r in references), default=32) * 1.25) + 16)


def before_traffic(make_engine: Callable[[], ServingEngine], version: ModelVersion, endpoint: Provisioned | None,
                   settings: Any, test_file: Path | None = None, train_file: Path | None = None) -> SmokeReport | str:
    """The deploy step's smoke test (``settings``: the pipeline's), or why it was skipped: turned off
    (``deploy.smoke_test: 0``), or no plugin serves the backend here (``make_engine`` raised UserError)."""
    from ftp.errors import UserError

    if not settings.deploy.smoke_test:
        return "deploy.smoke_test is 0"
    try:
        engine = make_engine()
    except UserError as exc:
        return str(exc)
    try:
        data = smoke_data(version, settings.deploy.smoke_test, settings.evaluate, settings.registration.artifacts,
                          test_file, train_file)
    except BaseException:
        engine.close()
        raise
    return run_smoke(engine, version, endpoint, data.prompts, data.answer_format, data.max_tokens)
