"""A typed facade over ``pm.hook`` (as tox does): the runner and CLI call these, never ``pm.hook``.

It flattens collect-all answers, stamps each finding or metric with the plugin that made it, and
turns "no plugin answered" into an error that says what to install or configure.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from ftp.errors import FtpError, UserError
from ftp.config.catalog import Catalog, LocalEntry
from ftp.types import (
    Artifact,
    BackendSpec,
    CheckContext,
    Comparison,
    ConfigSection,
    DataBundle,
    DatasetRef,
    Deployer,
    EvalReport,
    EvalRequest,
    Finding,
    GateCheck,
    Metric,
    MetricSpec,
    ModelRef,
    ModelRegistry,
    Predictor,
    ServeContext,
    ServingEngine,
    ReviewRequest,
    ScoredTable,
    SplitResult,
    StepContext,
    TokenCounter,
    Trainer,
)
from ftp.data.checks import DataCheck

if TYPE_CHECKING:
    import click

T = TypeVar("T")


class Hooks:
    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    def _per_plugin(self, name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a collect-all hook one implementation at a time, so each answer knows its plugin."""
        caller = getattr(self.pm.hook, name)
        impls = caller.get_hookimpls()
        out: list[tuple[str, Any]] = []
        for impl in reversed(impls):
            sub = self.pm.subset_hook_caller(name, remove_plugins=[i.plugin for i in impls if i.plugin is not impl.plugin])
            for answer in sub(**kwargs):
                out.extend((impl.plugin_name, item) for item in answer or [])
        return out

    def _collect(self, name: str, stamp: bool = False, **kwargs: Any) -> list[Any]:
        """Flatten a collect-all hook's answers; ``stamp`` fills each item's ``plugin`` field."""
        if not stamp:
            return [item for answer in getattr(self.pm.hook, name)(**kwargs) for item in answer or []]
        return [item if item.plugin else item.model_copy(update={"plugin": plugin})
                for plugin, item in self._per_plugin(name, **kwargs)]

    def implementers(self, name: str) -> list[str]:
        """Plugin names implementing a hook, in call order (for --dry-run and ftp plugins)."""
        return [i.plugin_name for i in reversed(getattr(self.pm.hook, name).get_hookimpls())]

    # declarations
    def backends(self) -> dict[str, BackendSpec]:
        return {b.name: b for b in self._collect("ftp_backends")}

    def training_prices(self) -> dict[str, float]:
        """Backend -> the training price (USD per 1M tokens) it declares, for estimates in advice."""
        return {name: spec.limits.price_per_1m_tokens for name, spec in self.backends().items()
                if spec.limits.price_per_1m_tokens is not None}

    def config_sections(self) -> list[ConfigSection]:
        return self._collect("ftp_config_sections")

    def metrics(self) -> dict[str, MetricSpec]:
        return {m.name: m for m in self._collect("ftp_metrics")}

    def catalog(self) -> Catalog:
        return Catalog(backends=self.backends(), sections=self.config_sections(), metrics=self.metrics(),
                       local_plugins=self._with_local_plugins)

    def _with_local_plugins(self, entries: list[LocalEntry]) -> Catalog:
        """Register a pipeline file's own plugin modules; the catalog then includes what they declare."""
        from ftp.config.local_plugins import register_all

        register_all(self.pm, entries)
        return self.catalog()

    # data
    def data_checks(self, context: CheckContext) -> list[tuple[str, DataCheck]]:
        """Every check with the name of the plugin that made it."""
        return self._per_plugin("ftp_data_checks", context=context)

    def token_counter(self, backend: str, model: str | None) -> TokenCounter | None:
        return self.pm.hook.ftp_token_counter(backend=backend, model=model)

    # pipeline steps
    def validate_data(self, data: DataBundle, settings: dict[str, Any]) -> list[Finding]:
        return self._collect("ftp_validate_data", stamp=True, data=data, settings=settings)

    def split(self, dataset: DatasetRef, ratios: tuple[float, float, float], seed: int, out_dir: Path) -> SplitResult:
        result = self.pm.hook.ftp_split(dataset=dataset, ratios=ratios, seed=seed, out_dir=out_dir)
        return _required(result, "no plugin implements ftp_split; is the built-in split plugin disabled?")

    def trainer(self, backend: str) -> Trainer:
        return _required(self.pm.hook.ftp_trainer(backend=backend),
                         f"no plugin provides a trainer for backend {backend!r}", UserError)

    def review(self, request: ReviewRequest) -> list[Artifact]:
        return self._collect("ftp_review", request=request)

    def predictor(self, model: ModelRef, ctx: StepContext) -> Predictor:
        return _required(self.pm.hook.ftp_predictor(model=model, ctx=ctx),
                         f"no plugin gives a predictor for {model.describe()} on backend {model.backend!r}", UserError)

    def evaluate(self, request: EvalRequest) -> list[Metric]:
        return self._collect("ftp_evaluate", stamp=True, request=request)

    def compare(self, table: ScoredTable) -> list[Comparison]:
        return self._collect("ftp_compare", stamp=True, table=table)

    def gate(self, report: EvalReport, thresholds: dict[str, dict[str, Any]],
             confidence: float | None = None) -> list[GateCheck]:
        return self._collect("ftp_gate", report=report, thresholds=thresholds, confidence=confidence)

    def model_registry(self, kind: str, location: Path) -> ModelRegistry:
        return _required(self.pm.hook.ftp_model_registry(kind=kind, location=location),
                         f"no plugin provides a model registry of kind {kind!r} (register.registry)", UserError)

    def deployer(self, backend: str) -> Deployer:
        return _required(self.pm.hook.ftp_deployer(backend=backend),
                         f"no plugin provides a deployer for backend {backend!r}", UserError)

    def serving_engine(self, backend: str, context: ServeContext) -> ServingEngine:
        return _required(self.pm.hook.ftp_serving_engine(backend=backend, context=context),
                         f"no plugin provides a serving engine for backend {backend!r}; install the backend's "
                         "plugin (ftp plugins lists them)", UserError)

    def base_retirement(self, backend: str, base_model: str) -> date | None:
        """None also when no plugin knows the backend: no published date is no trigger."""
        found: date | None = self.pm.hook.ftp_base_retirement(backend=backend, base_model=base_model)
        return found

    # command line
    def commands(self, cli: click.Group) -> None:
        """Let each plugin add its commands, one plugin at a time, so a failure or a name clash names it."""
        from ftp.plugin_manager import PluginLoadError

        impls = self.pm.hook.ftp_commands.get_hookimpls()
        for impl in reversed(impls):
            before = dict(cli.commands)
            only = self.pm.subset_hook_caller("ftp_commands", [i.plugin for i in impls if i.plugin is not impl.plugin])
            try:
                only(cli=cli)
            except Exception as exc:  # a plugin's bug must not become ftp's traceback
                first = (str(exc).strip().splitlines() or [""])[0]
                raise PluginLoadError(f"plugin {impl.plugin_name!r}: ftp_commands failed: "
                                      f"{type(exc).__name__}: {first}" + "; run with --debug for the traceback"
                                      ) from exc
            taken = sorted(name for name, command in before.items() if cli.commands.get(name) is not command)
            if taken:
                cli.commands.clear()
                cli.commands.update(before)  # the command stays ftp's, for this process too
                raise PluginLoadError(f"plugin {impl.plugin_name!r}: ftp_commands replaces the command "
                                      f"{taken[0]!r}, which ftp or another plugin already has; give it another name")


def default_hooks() -> Hooks:
    """The hooks of the process-wide plugin manager (what every command uses)."""
    from ftp.plugin_manager import get_plugin_manager

    return Hooks(get_plugin_manager())


def _required(value: T | None, message: str, error: Callable[[str], FtpError] = FtpError) -> T:
    if value is None:
        raise error(message)
    return value
