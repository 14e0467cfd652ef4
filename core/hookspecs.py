# mypy: disable-error-code="empty-body"
"""Every hook ftp calls. Built-in plugins and third-party packages implement them the same way.

Collect-all hooks (validators, evaluators, reviewers, gate checks, declarations) call every
implementation and merge the answers. ``firstresult`` hooks return a *component* for the chosen
backend or setting: each implementation answers only for its own name and returns ``None``
otherwise. Call them with keyword arguments; ``docs/plugin-hooks.md`` has an example of each.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

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
    ReviewRequest,
    ScoredTable,
    ServeContext,
    ServingEngine,
    SplitResult,
    StepContext,
    TokenCounter,
    Trainer,
)
from ftp.data.checks import DataCheck

if TYPE_CHECKING:
    import click  # the CLI's own import; ``import ftp`` stays light

hookspec = pluggy.HookspecMarker("ftp")

# --- declarations ---


@hookspec
def ftp_backends() -> list[BackendSpec]:
    """Declare the backends this plugin provides, so ``--backend`` can be checked up front."""


@hookspec
def ftp_config_sections() -> list[ConfigSection]:
    """Declare pipeline-file sections this plugin owns; they are validated like core sections."""


@hookspec
def ftp_metrics() -> list[MetricSpec]:
    """Declare the metrics this plugin's evaluators produce, so files can name them in the gate."""


# --- data ---


@hookspec
def ftp_data_checks(context: CheckContext) -> list[DataCheck]:
    """Return streaming data checks; the core feeds each one every line of every file in one pass."""


@hookspec(firstresult=True)
def ftp_token_counter(backend: str, model: str | None) -> TokenCounter | None:
    """Return a token counter for ``model`` (None: the file names none) on ``backend``, or None if unknown."""


@hookspec
def ftp_validate_data(data: DataBundle, settings: dict[str, Any]) -> list[Finding]:
    """Inspect the data files before any compute is spent; any ``error`` finding stops the run."""


@hookspec(firstresult=True)
def ftp_split(dataset: DatasetRef, ratios: tuple[float, float, float], seed: int, out_dir: Path) -> SplitResult | None:
    """Split one file into train/validation/test in ``out_dir``, deterministically for ``seed``."""


# --- training ---


@hookspec(firstresult=True)
def ftp_trainer(backend: str) -> Trainer | None:
    """Return the trainer for ``backend`` (and only for it); cheap, heavy imports come later."""


@hookspec
def ftp_review(request: ReviewRequest) -> list[Artifact]:
    """Write review material (curves, sample generations) into the run directory after training."""


# --- evaluation ---


@hookspec(firstresult=True)
def ftp_predictor(model: ModelRef, ctx: StepContext) -> Predictor | None:
    """Return a predictor for ``model`` (base, adapter, merged, cloud) when ``model.backend`` is yours."""


@hookspec
def ftp_evaluate(request: EvalRequest) -> list[Metric]:
    """Score one candidate's answers on the test split; return only metrics in ``request.metrics``."""


@hookspec
def ftp_compare(table: ScoredTable) -> list[Comparison]:
    """Compare the candidates once all are scored (paired intervals, pairwise judging); any may answer."""


@hookspec
def ftp_gate(report: EvalReport, thresholds: dict[str, dict[str, Any]], confidence: float | None) -> list[GateCheck]:
    """Judge the report against the file's rules (``gate:``); one failed check stops the run. With a
    ``confidence``, judge gains and regressions on the bound of the comparison's interval."""


# --- registry and deployment ---


@hookspec(firstresult=True)
def ftp_model_registry(kind: str, location: Path) -> ModelRegistry | None:
    """Return the model registry of ``kind`` stored at ``location`` (and only that kind)."""


@hookspec(firstresult=True)
def ftp_deployer(backend: str) -> Deployer | None:
    """Return the deployer for ``backend`` (and only for it)."""


# --- serving ---


@hookspec(firstresult=True)
def ftp_serving_engine(backend: str, context: ServeContext) -> ServingEngine | None:
    """Return the engine ``ftp serve`` answers ``backend``'s deployed versions with (one per backend)."""


# --- monitoring ---


@hookspec(firstresult=True)
def ftp_base_retirement(backend: str, base_model: str) -> date | None:
    """Return the last day ``backend`` fine-tunes ``base_model`` (its published retirement), or None."""


# --- command line ---


@hookspec
def ftp_commands(cli: click.Group) -> None:
    """Add commands to ``cli`` (``@cli.command()``); called once per process, when the CLI first needs them."""
