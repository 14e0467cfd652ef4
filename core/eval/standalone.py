"""``ftp eval`` outside a run: which model a reference names, and a step context for its predictors.

The evaluation itself is ``ftp.eval.session.evaluate``, the same code the pipeline's evaluate step runs;
what differs is only where the models and settings come from: a registered version, a run, or a model
folder, and a pipeline file when one is given (else the defaults).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftp.config import DEFAULT_BACKEND
from ftp.config.settings import PipelineSettings
from ftp.errors import UserError
from ftp.hooks import Hooks
from ftp.types import ModelRef, Predictor, TrainResult


@dataclass
class Named:
    """The model a reference names, and the registry name it belongs to (for its champion)."""

    model: ModelRef
    name: str | None = None
    version: int | None = None


def folder_model(path: Path) -> ModelRef:
    """A model folder: a PEFT adapter (``adapter_config.json``) on the base it names, or a full model."""
    meta_file, adapter_file = path / "ftp_model.json", path / "adapter_config.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.exists() else {}
    if adapter_file.exists():
        base = meta.get("base_model") or json.loads(adapter_file.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if not base:
            raise UserError(f"{path}: adapter_config.json names no base model (base_model_name_or_path)")
        return ModelRef(kind="adapter", base=str(base), backend=DEFAULT_BACKEND, path=path.resolve())
    if (path / "config.json").exists():
        return ModelRef(kind="full", base=str(meta.get("base_model") or path.resolve()), backend=DEFAULT_BACKEND,
                        path=path.resolve())
    raise UserError(f"{path}: not a model folder (no adapter_config.json or config.json)")


DEPLOYMENT = "deployment:"


def deployed_model(text: str, backend: str | None, base: str | None) -> Named:
    """``deployment:NAME``: a model a cloud backend already serves, asked through its endpoint as is."""
    name = text[len(DEPLOYMENT):]
    if not name:
        raise UserError(f"{text}: give the deployment's name (deployment:NAME)")
    if backend is None or not base:
        raise UserError(f"{text}: a deployment belongs to a backend: give --pipeline FILE --backend NAME, "
                        "whose backends.NAME block says how to reach it")
    return Named(ModelRef(kind="cloud", base=base, backend=backend, deployment=name))


def named_model(text: str, runs_root: Path, registry_path: Path, hooks: Hooks, backend: str | None = None,
                base: str | None = None, kind: str = "sqlite") -> Named:
    """A model folder, a run id (its trained model), ``NAME`` / ``NAME:3`` / ``NAME@alias``, or
    ``deployment:NAME`` (of ``backend``, the pipeline's, whose base model is ``base``)."""
    from ftp.registry.refs import parse_ref, resolve
    from ftp.run.store import find_run

    if text.startswith(DEPLOYMENT):
        return deployed_model(text, backend, base)
    if Path(text).is_dir():
        return Named(folder_model(Path(text)))
    registry = hooks.model_registry(kind, registry_path)
    if ":" in text or "@" in text:
        version = resolve(registry, parse_ref(text))
        return Named(version.model, version.name, version.version)
    if runs_root.exists() and list(runs_root.glob(f"*/{text}*/state.json")):
        run = find_run(runs_root, text)
        outputs = run.state.outputs("train")
        if not outputs:
            raise UserError(f"run {run.run_id} has not finished training; there is no model to evaluate")
        return Named(TrainResult.model_validate(outputs).model, run.state.pipeline_name or None)
    try:
        version = resolve(registry, parse_ref(text))
    except UserError as exc:
        raise UserError(f"{text}: not a model folder, a run in {runs_root}, or a registered model ({exc})") from None
    return Named(version.model, version.name, version.version)


def champion_of(registry: Any, name: str, deployments: Path) -> tuple[Any, str]:
    """The champion of ``name``: the version holding the ``champion`` alias, else the one serving most
    traffic in ``deployments``; (None, why) when there is none."""
    from ftp.deploy import slots

    lookup = getattr(registry, "alias", None)
    number = lookup(name, "champion") if callable(lookup) else None
    source = "the champion alias"
    if number is None:
        number, source = slots.live_version(deployments, name), "the live deployment"
    if number is None:
        return None, (f"no version of {name} holds the champion alias or is deployed yet ({deployments}); "
                      "nothing to compare with")
    version = registry.get(name, number)
    if version is None:
        return None, f"{name} v{number} ({source}) is not in the registry {registry.location}"
    return version, ""


@dataclass
class EvalContext:
    """The ``StepContext`` of an evaluation outside a run: its report folder stands in for the run
    directory, and resources (a deployment made to answer prompts) live as long as the command."""

    report_dir: Path
    settings: PipelineSettings
    backend_settings: dict[str, Any]
    reporter: Any
    assume_yes: bool = False
    phase: str = "evaluate"
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return f"eval-{self.report_dir.name}"

    @property
    def run_dir(self) -> Path:
        return self.report_dir

    def log_metrics(self, row: dict[str, Any]) -> None:
        return None  # the report files hold the numbers

    def setting(self, path: str) -> Any:
        node: Any = self.settings
        for part in path.split("."):
            node = getattr(node, part, None) if not isinstance(node, dict) else node.get(part)
        return node

    def confirm(self, question: str) -> bool:
        return self.assume_yes

    def resource(self, key: str) -> Any:
        return self.resources.get(key)

    def record_resource(self, key: str, value: Any) -> None:
        self.resources[key] = value


class Predictors:
    """Each model loaded once; a model of a backend comes from that backend's trainer, as in a run."""

    def __init__(self, hooks: Hooks, ctx: EvalContext) -> None:
        self.hooks, self.ctx = hooks, ctx
        self._trainers: dict[str, Any] = {}

    def load(self, label: str, model: ModelRef) -> tuple[Predictor | None, str]:
        from ftp.eval.session import answering

        return answering(label, lambda: self._trainer(model.backend).predictor(model, self.ctx), self.ctx.reporter)

    def _trainer(self, backend: str) -> Any:
        if backend not in self._trainers:
            self._trainers[backend] = self.hooks.trainer(backend)
        return self._trainers[backend]
