"""Registered versions and their deployments: what the registry stores and a deployer provisions."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import ConfigDict, Field, model_validator

from ftp.config.model_source import model_source
from ftp.values.base import Value
from ftp.values.context import StepContext
from ftp.values.training import ModelRef


class ModelVersion(Value):
    """A registered model version and everything needed to reproduce or audit it. ``model`` says what
    the version is (adapter, full model, cloud model) and where, so loading or exporting it never has to
    guess the kind from its hyperparameters."""

    name: str
    version: int
    created_at: str
    run_id: str
    backend: str
    base_model: str
    model: ModelRef
    data_sha256: dict[str, str]
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    pipeline_sha256: str
    code_version: str
    backend_details: dict[str, Any] = Field(default_factory=dict)
    # digests in the content-addressed artifact store (ftp.registry.store): "model", "train", "validation",
    # "test", "manifest"; a version with a "model" digest has ``model.path`` inside the store, not in runs/
    stored: dict[str, str] = Field(default_factory=dict)
    # the rest of the lineage: library versions, seed, git commit, evaluation summary with intervals
    lineage: dict[str, Any] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)  # filled by the registry on read
    archived: bool = False
    # Free key/value annotations added after registration (``human_review`` from ``ftp review import``);
    # unlike the fields above they may change, so nothing that reproduces the model may read them.
    tags: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_artifact(cls, data: Any) -> Any:
        """Versions registered before ``model`` existed stored a bare ``artifact`` location: rebuild the
        reference: a folder path is an adapter (a full model when trained with ``method: full``), anything
        else an id on the cloud service that trained it."""
        if not isinstance(data, dict) or "artifact" not in data:
            return data
        data = dict(data)
        artifact = str(data.pop("artifact"))
        if not data.get("model"):
            method = (data.get("hyperparameters") or {}).get("method")
            local = model_source(artifact).kind == "path"
            kind = "cloud" if not local else "full" if method == "full" else "adapter"
            data["model"] = {"kind": kind, "base": data.get("base_model", ""), "backend": data.get("backend", ""),
                             **({"cloud_id": artifact} if kind == "cloud" else {"path": artifact})}
        return data

    @property
    def artifact(self) -> str:
        """The model's location: its folder, or its id on the cloud service."""
        return str(self.model.cloud_id or self.model.path or "")


class AuditEntry(Value):
    """One change to a registry, as ``ftp models history`` shows it: who (the OS user), when, what, why."""

    name: str
    at: str
    user: str
    action: str  # register, alias, unalias, rollback, tag, archive, unarchive
    version: int | None = None
    alias: str | None = None
    previous: int | None = None  # alias moves: the version that held it before
    reason: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class ModelRegistry(Protocol):
    """A store of model versions; ``ftp models`` reads and changes it, the register step writes it.

    Aliases follow MLflow: any name but the reserved ``latest`` and ``v<N>``; one version per alias, a
    version may hold several; setting an alias moves it. Every change appends an ``AuditEntry``.
    A registry that also tracks runs (MLflow) may have ``log_run(version, run_dir)``: the register step
    calls it after ``register`` with the run directory (metrics, reports, curves)."""

    name: str
    location: str

    def register(self, version: ModelVersion) -> ModelVersion: ...

    def list(self, name: str | None = None) -> list[ModelVersion]: ...

    def get(self, name: str, version: int | None = None) -> ModelVersion | None: ...

    def set_tag(self, name: str, version: int, key: str, value: Any) -> ModelVersion: ...

    def alias(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at, or None."""

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of ``name`` and its version."""

    def set_alias(self, name: str, alias: str, version: int, reason: str = "") -> int | None:
        """Point ``alias`` at ``version``; return the version that held it before (None: new alias)."""

    def delete_alias(self, name: str, alias: str, reason: str = "") -> None: ...

    def archive(self, name: str, version: int, archived: bool = True, reason: str = "") -> ModelVersion: ...

    def history(self, name: str) -> builtins.list[AuditEntry]:
        """Every change to ``name``, oldest first."""


class Deployment(Value):
    """Slots and traffic weights of a deployed model name; serving and monitoring read this."""

    name: str
    backend: str
    slot: str
    version: int
    traffic: dict[str, int]
    slots: dict[str, int]
    endpoint: str | None = None
    created_at: str


class Provisioned(Value):
    """What a deployer made for a version (an Azure deployment, a serverless endpoint, or nothing but a
    record); the core then assigns its slot and traffic (``ftp.deploy.slots.record``)."""

    backend: str
    endpoint: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class TrafficChange(Value):
    """New weights for a deployment's slots (``ftp deploy set-traffic / promote / rollback``), handed to
    the deployer before the records change, so a backend that splits traffic itself (an Azure ML managed
    online endpoint) applies them there first; a refusal there leaves the records as they were."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    slots: dict[str, int]  # slot -> version
    traffic: dict[str, int]  # slot -> % (sums to 100)
    mirror: dict[str, int] = Field(default_factory=dict)  # slot -> % of live traffic copied to it (at most one)
    endpoints: dict[int, Provisioned] = Field(default_factory=dict)  # version -> what its deployer made
    backend_settings: dict[str, Any] = Field(default_factory=dict)


class Deployer(Protocol):
    """Provisions a registered version (an endpoint, or nothing beyond the record); the core owns the
    slots and traffic weights and records them after ``deploy`` returns. A deployer whose backend splits
    traffic itself also has ``apply_traffic(change: TrafficChange) -> None``; the core calls it, when
    present, before it records new weights."""

    name: str

    def deploy(self, request: "DeployRequest", ctx: StepContext) -> Provisioned: ...


class DeployRequest(Value):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    version: ModelVersion
    strategy: Literal["blue-green", "replace"]
    traffic_new: int
    store: Path
    backend_settings: dict[str, Any] = Field(default_factory=dict)
