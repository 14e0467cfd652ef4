"""The runner: the only caller of pipeline hooks. It owns step order, the run directory, state,
resume and progress. Each step reads earlier steps' outputs from ``state.json``, never from memory,
so a resumed run sees exactly what a straight-through run would.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from ftp.config.check import suggest
from ftp.data.check import check_data
from ftp.data.files import read_jsonl, reference_answer
from ftp.errors import FtpError, HandedOff, Interrupted, StepFailed, UserError
from ftp.eval.answers import format_report
from ftp.hooks import Hooks
from ftp.config.pipeline_file import Pipeline
from ftp.redact import ScrubbingFormatter
from ftp.registry.lineage import new_version, stored_version
from ftp.registry.store import ArtifactStore
from ftp.run.context import RunContext
from ftp.run.store import STEPS, RunDir, atomic_write, now
from ftp.config.settings import PipelineSettings
from ftp.types import (
    DataBundle,
    DatasetRef,
    EvalReport,
    Finding,
    ModelRef,
    ModelVersion,
    Predictor,
    ReviewRequest,
    SplitResult,
    Trainer,
    TrainRequest,
    TrainSpec,
    TrainResult,
)

NEEDS: dict[str, tuple[str, ...]] = {
    "validate": (), "split": (), "train": ("split",), "review": ("train", "split"),
    "evaluate": ("train", "split"), "gate": ("evaluate",), "register": ("train", "evaluate", "gate"),
    "deploy": ("register",),
}


def parse_steps(text: str | None) -> list[str]:
    """``--steps validate,split`` to a checked list in pipeline order."""
    if not text:
        return list(STEPS)
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    for step in wanted:
        if step not in STEPS:
            hint = suggest(step, STEPS)
            raise UserError(f"--steps: unknown step {step!r}; " + (hint or f"steps are {', '.join(STEPS)}"))
    return [s for s in STEPS if s in wanted]


def train_request(pipeline: Pipeline, train: DatasetRef, validation: DatasetRef | None,
                  output_dir: Path) -> TrainRequest:
    """What a trainer is asked for: the settings merged for the pipeline's backend."""
    s = pipeline.settings
    return TrainRequest(backend=pipeline.backend, base_model=str(s.model.base), settings=s.train, model=s.model,
                        train=train, validation=validation, output_dir=output_dir,
                        backend_settings=pipeline.backend_settings)


def train_spec(pipeline: Pipeline) -> TrainSpec:
    s = pipeline.settings
    return TrainSpec(backend=pipeline.backend, base_model=str(s.model.base), settings=s.train, model=s.model,
                     backend_settings=pipeline.backend_settings)


def preflight(pipeline: Pipeline, trainer: Trainer) -> list[str]:
    """The trainer's own checks (base model, settings), located in the pipeline file like schema errors;
    returns its warnings (settings it ignores), located the same way."""
    try:
        warnings = trainer.preflight(train_spec(pipeline)) or []
    except UserError as exc:
        raise UserError(f"{_locate(pipeline, str(exc), ('model', 'base'))}: {exc}") from None
    return [f"{_locate(pipeline, w, ('train',))}: {w}" for w in warnings]


def _locate(pipeline: Pipeline, message: str, default: tuple[str, ...]) -> str:
    """The line of the key a message starts with (``train.epochs: ...``), in the backend's block first."""
    head = message.split(":", 1)[0]
    key = tuple(head.split(".")) if head and " " not in head else default
    return pipeline.locate(("backends", pipeline.backend, *key), key, ("backends", pipeline.backend, *default), default)


def check_steps(steps: list[str], done: set[str]) -> None:
    """Refuse a subset whose inputs are neither selected nor already done in the run."""
    for step in steps:
        for need in NEEDS[step]:
            if need not in steps and need not in done:
                raise UserError(f"--steps: {step!r} needs the output of {need!r}; add {need} to --steps, "
                                "or resume a run where it is done (--resume RUN_ID)")


class Runner:
    def __init__(self, pipeline: Pipeline, hooks: Hooks, run: RunDir, reporter: Any, assume_yes: bool = False) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.hooks = hooks
        self.run = run
        self.reporter = reporter
        self.ctx = RunContext(run, pipeline, reporter, hooks, assume_yes=assume_yes)

    # --- orchestration ----------------------------------------------------------------------------

    def execute(self, steps: list[str]) -> None:
        check_steps(steps, {s for s, st in self.run.state.steps.items() if st.status == "done"})
        for warning in preflight(self.pipeline, self.ctx.trainer()):
            self.reporter.event("warning", message=warning)
        handler = logging.FileHandler(self.run.path / "run.log", encoding="utf-8")
        handler.setFormatter(ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger("ftp")
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        state = self.run.state
        state.status = "running"
        self.run.save()
        self.reporter.event("run_started", run_id=self.run.run_id, run_dir=str(self.run.path),
                            backend=self.pipeline.backend, steps={s: state.steps[s].status for s in STEPS})
        try:
            for step in STEPS:
                if step not in steps:
                    continue
                if state.steps[step].status == "done":
                    self.reporter.event("step_skipped", step=step, reason="done in an earlier attempt")
                    continue
                try:
                    self._run_step(step)
                except HandedOff as handed:
                    self.reporter.event("handed_off", step=step, message=str(handed))
                    break
            finished = all(state.steps[s].status == "done" for s in STEPS)
            state.status = "done" if finished else "partial"
            self.run.save()
            self.reporter.event("run_finished", run_id=self.run.run_id, status="done" if finished else "partial",
                                run_dir=str(self.run.path))
        except KeyboardInterrupt:
            state.status = "interrupted"
            self.run.save()
            self.reporter.event("run_finished", run_id=self.run.run_id, status="interrupted", run_dir=str(self.run.path))
            raise Interrupted(f"interrupted; resume with: ftp run --resume {self.run.run_id}") from None
        except FtpError:
            state.status = "failed"
            self.run.save()
            self.reporter.event("run_finished", run_id=self.run.run_id, status="failed", run_dir=str(self.run.path))
            raise
        finally:
            root.removeHandler(handler)
            handler.close()

    def _run_step(self, step: str) -> None:
        record = self.run.state.steps[step]
        if record.status != "pending":
            self.run.drop_metrics(step)  # a re-run step replaces its rows instead of mixing with them
        record.status, record.started_at, record.ended_at, record.error = "running", now(), None, None
        record.outputs = {}
        self.ctx.phase = step
        self.run.save()
        self.reporter.event("step_started", step=step)
        start = time.perf_counter()
        try:
            outputs, summary = getattr(self, f"step_{step}")()
        except HandedOff as handed:
            record.outputs = handed.outputs
            self._end(record, start, "done", None)
            self.reporter.event("step_done", step=step, seconds=record.seconds, summary=str(handed))
            raise
        except KeyboardInterrupt:
            self._end(record, start, "interrupted", "interrupted by the user (Ctrl-C)")
            self.reporter.event("step_failed", step=step, status="interrupted", error="interrupted")
            raise
        except FtpError as exc:
            self._end(record, start, "failed", str(exc))
            self.reporter.event("step_failed", step=step, error=str(exc))
            raise
        except Exception as exc:
            self._end(record, start, "failed", f"{type(exc).__name__}: {exc}")
            self.reporter.event("step_failed", step=step, error=f"{type(exc).__name__}: {exc}")
            logging.getLogger("ftp.run").exception("step %s crashed", step)
            raise StepFailed(step, f"{type(exc).__name__}: {exc} (details in {self.run.path / 'run.log'})") from exc
        record.outputs = outputs
        self._end(record, start, "done", None)
        self.reporter.event("step_done", step=step, seconds=record.seconds, summary=summary)

    def _end(self, record: Any, start: float, status: str, error: str | None) -> None:
        record.status, record.ended_at, record.error = status, now(), error
        record.seconds = round(time.perf_counter() - start, 3)
        self.run.save()

    def _outputs(self, step: str) -> dict[str, Any]:
        return self.run.state.outputs(step)

    def _split(self) -> SplitResult:
        return SplitResult.model_validate(self._outputs("split"))

    def _train_result(self) -> TrainResult:
        return TrainResult.model_validate(self._outputs("train"))

    # --- steps ------------------------------------------------------------------------------------

    def data_bundle(self) -> DataBundle:
        return data_bundle(self.settings)

    def step_validate(self) -> tuple[dict[str, Any], str]:
        bundle = self.data_bundle()
        report = check_data(self.hooks, bundle, self.pipeline.as_dict(), self.pipeline.backend)
        findings = report.sorted_findings()
        report_findings(findings, self.reporter)
        atomic_write(self.run.path / "findings.json",
                     json.dumps([f.model_dump(mode="json") for f in findings], indent=2))
        atomic_write(self.run.path / "data_report.json", json.dumps(report.to_json(), indent=2))
        counts = report.counts()
        self._advise(report)
        if counts["error"]:
            raise StepFailed("validate", f"{counts['error']} error(s) in the data (listed above and in "
                             f"{self.run.path / 'findings.json'}); fix them and run again", exit_code=2)
        summary = f"{bundle.train.examples} training examples; {counts['warning']} warning(s), {counts['info']} info"
        return {"data": bundle.model_dump(mode="json"), "findings": counts}, summary

    def _advise(self, report: Any) -> None:
        """Say so when the data itself says fine-tuning is premature (the user already chose to fine-tune), and
        which settings to change when the data calls for it (``ftp.data.advice.tuning``)."""
        from ftp.data.advice import advise, situation_from, tuning

        situation = situation_from(report, self.hooks.training_prices())
        situation.prompting_tried = True
        advice = advise(situation)
        if not advice.fine_tune:
            self.reporter.event("warning", message=f"advice: {advice.technique} rather than fine-tuning: "
                                                   f"{'; '.join(advice.reasons)} (ftp advise DATA for more)")
            return
        for line in tuning(situation):  # settings to change for this data: one event each
            self.reporter.event("advice", message=f"advice: {line}")

    def step_split(self) -> tuple[dict[str, Any], str]:
        bundle = self.data_bundle()
        if bundle.validation and bundle.test:
            from ftp.data.sources import to_jsonl

            out = self.run.path / "data"  # tables become chat JSONL here: every later step reads one format
            result = SplitResult(train=to_jsonl(bundle.train, out), validation=to_jsonl(bundle.validation, out),
                                 test=to_jsonl(bundle.test, out), manifest=self.pipeline.path)
            how = "given files"
        elif bundle.validation or bundle.test:
            raise UserError("data: give both data.validation and data.test, or neither (then data.train is split "
                            "by data.split.ratios)")
        else:
            split = self.settings.data.split
            result = self.hooks.split(bundle.train, split.ratios, split.seed, self.run.path / "data")
            how = f"ratios {list(split.ratios)}, seed {split.seed}"
        summary = (f"{result.train.examples} train / {result.validation.examples} validation / "
                   f"{result.test.examples} test ({how})")
        return result.model_dump(mode="json"), summary

    def step_train(self) -> tuple[dict[str, Any], str]:
        split = self._split()
        request = train_request(self.pipeline, split.train, split.validation, self.run.path / "model")
        result = self.ctx.trainer().train(request, self.ctx)
        m = result.metrics
        summary = (f"{result.steps} steps, train loss {m.get('train_loss', float('nan')):.4f}, "
                   f"validation loss {m.get('eval_loss', float('nan')):.4f}, {result.wall_seconds:.0f}s")
        return result.model_dump(mode="json"), summary

    def step_review(self) -> tuple[dict[str, Any], str]:
        result = self._train_result()
        samples = read_jsonl(self._split().validation.path)[: self.settings.review.samples]
        request = ReviewRequest(run_dir=self.run.path, metrics_file=self.run.metrics_file, train_result=result,
                                samples=samples, predictor=lambda: self._predictor_or_reason("fine-tuned", result.model)[0],
                                settings=self.pipeline.as_dict())
        artifacts = self.hooks.review(request)
        verdict = result.overfitting or "no sign of overfitting"
        return ({"artifacts": [a.model_dump(mode="json") for a in artifacts], "overfitting": verdict},
                f"{', '.join(a.name for a in artifacts)}; {verdict}")

    def _predictor_or_reason(self, label: str, model: ModelRef) -> tuple[Predictor | None, str]:
        """The candidate's predictor, or None and the backend's reason (``ftp.eval.session.answering``)."""
        from ftp.eval.session import answering

        return answering(label, lambda: self.ctx.predictor(model), self.reporter)

    def candidates(self) -> tuple[dict[str, ModelRef], dict[str, str]]:
        """The models the evaluation compares (``evaluate.compare_to``), and those it cannot, with why."""
        result = self._train_result()
        found = {"fine-tuned": result.model}
        missing: dict[str, str] = {}
        compare_to = self.settings.evaluate.compare_to
        if "base" in compare_to:
            found["base"] = ModelRef(kind="base", base=result.model.base, backend=self.pipeline.backend)
        if "champion" in compare_to:
            champion, why = self._champion()
            if champion is not None:
                found["champion"] = champion
            else:
                missing["champion"] = why
        return found, missing

    def _champion(self) -> tuple[ModelRef | None, str]:
        """The champion alias's version, else the live one (``ftp.eval.standalone.champion_of``)."""
        from ftp.eval.standalone import champion_of

        s = self.settings
        name = s.registration.name or s.name
        version, why = champion_of(self.hooks.model_registry(s.registration.registry, s.registration.location()), name,
                                   s.deploy.store)
        if version is None:
            return None, why
        if version.run_id == self.run.run_id:
            return None, f"{name} v{version.version}, the champion, is this run's own model"
        return version.model, ""

    def step_evaluate(self) -> tuple[dict[str, Any], str]:
        from ftp.eval.session import EvalSpec, evaluate

        ev, s = self.settings.evaluate, self.settings
        examples = read_jsonl(self._split().test.path)[: ev.max_examples]
        if not examples:
            raise StepFailed("evaluate", "the test split is empty; add data or change data.split.ratios")
        found, missing = self.candidates()
        loaders = {label: (model, self._loader(label, model)) for label, model in found.items()}
        test = self._split().test
        spec = EvalSpec(settings=ev, pipeline=self.pipeline.as_dict(), seed=ev.seed if ev.seed is not None else s.train.seed,
                        confidence=s.gate.confidence or ev.confidence, gated=list(s.gate.rules()),
                        training_answers=[reference_answer(ex) for ex in read_jsonl(self._split().train.path)[:5000]],
                        data={"path": str(test.path), "sha256": test.sha256, "examples": len(examples)},
                        run_dir=self.run.path, overfitting=self._train_result().overfitting or "no sign of overfitting")
        outcome = evaluate(examples, loaders, spec, self.hooks, self.reporter, self.run.path, missing)
        for m in outcome.metrics:
            self.ctx.log_metrics({"split": "test", "candidate": m.candidate, m.name: m.value})
        summary = format_report(outcome.report) + "".join(f"; {label} not evaluated" for label in outcome.skipped)
        return {"report": outcome.report.model_dump(mode="json"), "eval_file": str(self.run.path / "eval.json"),
                "html_file": str(self.run.path / "eval.html"),
                **({"not_evaluated": outcome.skipped} if outcome.skipped else {})}, summary

    def _loader(self, label: str, model: ModelRef) -> Any:
        return lambda: self._predictor_or_reason(label, model)

    def step_gate(self) -> tuple[dict[str, Any], str]:
        report = EvalReport.model_validate(self._outputs("evaluate")["report"])
        gate = self.settings.gate
        thresholds = {k: v.model_dump(exclude_none=True) for k, v in gate.rules().items()}
        checks = self.hooks.gate(report, thresholds, gate.confidence)
        outputs = {"checks": [c.model_dump(mode="json") for c in checks], "passed": all(c.passed for c in checks)}
        failed = [c for c in checks if not c.passed]
        if failed:
            self.run.state.steps["gate"].outputs = outputs
            raise StepFailed("gate", "; ".join(c.reason for c in failed) + " — the model is not registered")
        return outputs, "; ".join(c.reason for c in checks) or "no thresholds set (gate: in the pipeline file)"

    def step_register(self) -> tuple[dict[str, Any], str]:
        s = self.settings
        result = self._train_result()
        split = self._split()
        registry = self.hooks.model_registry(s.registration.registry, s.registration.location())
        name = s.registration.name or s.name
        report = self._outputs("evaluate")["report"]
        version = new_version(
            name, self.run.run_id, self.pipeline.backend, result,
            self._outputs("validate").get("data", {}).get("train", {}).get("sha256", ""), split,
            {**s.hyperparameters(), "method": s.train.method}, report["metrics"], self.pipeline.sha256,
            self.pipeline.path.parent)
        stored = registry.register(stored_version(version, ArtifactStore(s.registration.artifacts), split, self.run.path))
        log_run = getattr(registry, "log_run", None)  # a registry that tracks runs (MLflow) logs this one's files
        if callable(log_run):
            log_run(stored, self.run.path)
        said = ""
        if s.registration.alias:  # the gate passed, or this step would not run; idempotent on resume
            from ftp.registry.history import move_alias

            move_alias(registry, stored.name, s.registration.alias, stored.version, f"run {self.run.run_id}: gate passed")
            said = f", @{s.registration.alias}"
        return stored.model_dump(mode="json"), f"{stored.name} v{stored.version}{said} in {registry.location}"

    def step_deploy(self) -> tuple[dict[str, Any], str]:
        from ftp.deploy.step import deploy_step

        split = self._split()
        return deploy_step(self.hooks, self.settings, self.pipeline.backend, self.pipeline.backend_settings, self.ctx,
                           ModelVersion.model_validate(self._outputs("register")), split.test.path, split.train.path)


# --- helpers shared with the CLI ------------------------------------------------------------------


def data_bundle(settings: PipelineSettings) -> DataBundle:
    """The files the pipeline names, hashed and counted."""
    from ftp.data.sources import bundle

    data = settings.data
    assert data.train is not None
    return bundle(data.train, data.validation, data.test, data.columns.as_dict() if data.columns else None)


def report_findings(findings: list[Finding], reporter: Any, limit: int = 20) -> None:
    order = {"error": 0, "warning": 1, "info": 2}
    for f in sorted(findings, key=lambda f: order[f.severity])[:limit]:
        reporter.event("finding", severity=f.severity, text=f.format())
    if len(findings) > limit:
        reporter.event("finding", severity="info", text=f"... and {len(findings) - limit} more")
