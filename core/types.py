"""Typed value objects that cross hook boundaries: the names plugins import (``from ftp.types import ...``).

Everything a hook receives or returns is one of these, so a plugin never has to know how the runner
stores state. The pydantic ones are what the runner persists in ``state.json`` (so ``--resume`` can
rebuild them); the Protocols describe components that plugins hand back (trainer, predictor,
registry, deployer), which live only in memory. They are defined by phase in ``ftp.values``.
"""

from __future__ import annotations

from ftp.values.base import Severity, Split, Message, Example, Value
from ftp.values.context import Reporter, ProgressTask, StepContext
from ftp.values.backend import BackendLimits, BackendSpec, ConfigSection
from ftp.values.data import Finding, DatasetRef, DataBundle, SplitResult, CheckContext, TokenCounter
from ftp.values.training import (
    ModelRef,
    TrainSpec,
    TrainRequest,
    TrainResult,
    MemoryPlan,
    Predictor,
    Trainer,
    Cancellable,
)
from ftp.values.evaluation import (
    AnswerFormat,
    Artifact,
    MetricSpec,
    Metric,
    ScoredTable,
    Comparison,
    GateCheck,
    EvalRequest,
    ReviewRequest,
    EvalReport,
)
from ftp.values.registry import (
    AuditEntry,
    ModelVersion,
    ModelRegistry,
    Deployment,
    Provisioned,
    Deployer,
    DeployRequest,
    TrafficChange,
)
from ftp.values.serving import GenerationRequest, Completion, ServedModel, ServeContext, ServingEngine

__all__ = [
    "Severity",
    "Split",
    "Message",
    "Example",
    "Value",
    "Reporter",
    "ProgressTask",
    "StepContext",
    "BackendLimits",
    "BackendSpec",
    "ConfigSection",
    "Finding",
    "DatasetRef",
    "DataBundle",
    "SplitResult",
    "CheckContext",
    "TokenCounter",
    "ModelRef",
    "TrainSpec",
    "TrainRequest",
    "TrainResult",
    "MemoryPlan",
    "Predictor",
    "Trainer",
    "Cancellable",
    "AnswerFormat",
    "Artifact",
    "MetricSpec",
    "Metric",
    "ScoredTable",
    "Comparison",
    "GateCheck",
    "EvalRequest",
    "ReviewRequest",
    "EvalReport",
    "AuditEntry",
    "ModelVersion",
    "ModelRegistry",
    "Deployment",
    "Provisioned",
    "Deployer",
    "DeployRequest",
    "TrafficChange",
    "GenerationRequest",
    "Completion",
    "ServedModel",
    "ServeContext",
    "ServingEngine",
]
