"""Aliases over time, archiving and comparing versions: logic every registry kind shares, written only
against the ``ModelRegistry`` protocol so the SQLite and MLflow registries roll back and diff alike.

Rollback is an undo: each move of an alias pushes its new version on a stack rebuilt from the audit
log, a deletion pushes "no version", and a rollback pops back to the version below. Repeated rollbacks
therefore walk further back (champion v1 -> v2 -> v3, rollback: v2, rollback: v1, rollback: refused).
The protocol's ``set_alias`` has no "action" argument, so a rollback travels as its reason: ``rollback``
or ``rollback: WHY`` (``rollback_reason``); a registry records such a move as action ``rollback``
(``split_rollback``), and the replay recognises either form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftp.errors import UserError
from ftp.registry.refs import check_alias
from ftp.types import AuditEntry, ModelRegistry, ModelVersion

ROLLBACK = "rollback"
ALIAS_ACTIONS = ("alias", "unalias", "rollback")


def os_user() -> str:
    """The OS user an audit entry names (every registry kind); "unknown" where the platform cannot say
    (no login, no $USER)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"


def rollback_reason(reason: str) -> str:
    """The reason ``set_alias`` receives for a rollback: how the move is marked as one."""
    return f"{ROLLBACK}: {reason}" if reason else ROLLBACK


def split_rollback(reason: str) -> tuple[bool, str]:
    """(whether ``reason`` marks a rollback, the user's own reason): what a registry stores."""
    if reason == ROLLBACK:
        return True, ""
    if reason.startswith(f"{ROLLBACK}: "):
        return True, reason[len(ROLLBACK) + 2:]
    return False, reason


def is_rollback(entry: AuditEntry) -> bool:
    return entry.action == "rollback" or (entry.action == "alias" and split_rollback(entry.reason)[0])


def holders(entries: list[AuditEntry], alias: str) -> list[int | None]:
    """The stack of versions ``alias`` held, oldest first (None: the alias was deleted). An entry whose
    ``previous`` disagrees with the stack (a change made outside ftp's log) first pushes that version."""
    stack: list[int | None] = []
    for entry in entries:
        if entry.alias != alias or entry.action not in ALIAS_ACTIONS:
            continue
        if (stack[-1] if stack else None) != entry.previous:
            stack.append(entry.previous)
        if is_rollback(entry):
            stack.pop()
            while stack and stack[-1] != entry.version:
                stack.pop()
            if not stack:
                stack.append(entry.version)
        else:
            stack.append(entry.version if entry.action == "alias" else None)
    return stack


@dataclass(frozen=True)
class Rollback:
    name: str
    alias: str
    from_version: int | None
    to_version: int
    skipped: list[int] = field(default_factory=list)  # earlier holders passed over: archived or gone

    def __str__(self) -> str:
        was = f"v{self.from_version}" if self.from_version is not None else "no version"
        passed = f" (passed over {', '.join(f'v{v}' for v in self.skipped)}: archived or gone)" if self.skipped else ""
        return f"{self.name}@{self.alias}: {was} -> v{self.to_version}{passed}"


def _usable(registry: ModelRegistry, name: str, version: int) -> bool:
    found = registry.get(name, version)
    return found is not None and not found.archived


def rollback(registry: ModelRegistry, name: str, alias: str, reason: str = "") -> Rollback:
    """Move ``alias`` back to the version that held it before the current one (see the module's text)."""
    stack = holders(registry.history(name), alias)
    current = registry.alias(name, alias)
    if (stack[-1] if stack else None) != current:
        stack.append(current)
    if stack:
        stack.pop()  # the current holder
    skipped: list[int] = []
    while stack:
        candidate = stack.pop()
        if candidate is None or candidate == current:
            continue
        if _usable(registry, name, candidate):
            registry.set_alias(name, alias, candidate, rollback_reason(reason))
            return Rollback(name, alias, current, candidate, skipped)
        skipped.append(candidate)
    raise UserError(f"{name}@{alias}: no earlier version to roll back to" + (
        f" (v{current} is the first that held it; ftp models history {name} shows the moves)" if current else
        f" (it was never set; ftp models history {name} shows the moves)"))


def move_alias(registry: ModelRegistry, name: str, alias: str, version: int, reason: str = "") -> int | None:
    """``set_alias`` after the checks every kind needs: a settable name, a version that exists and is not
    archived. Returns the version that held the alias before."""
    check_alias(alias)
    found = registry.get(name, version)
    if found is None:
        known = ", ".join(str(v.version) for v in registry.list(name)) or "none"
        raise UserError(f"no version {name} v{version} in {registry.location} (versions: {known})")
    if found.archived:
        raise UserError(f"{name}:{version} is archived; restore it first (ftp models archive {name}:{version} --undo)")
    return registry.set_alias(name, alias, version, reason)


def archive(registry: ModelRegistry, name: str, version: int, archived: bool = True, reason: str = "",
            deployments: Path | None = None) -> ModelVersion:
    """Archive (or restore) a version, refusing one a deployment slot in ``deployments`` holds or one an
    alias points at: both would keep serving or resolving a version marked as not to be used."""
    if archived:
        from ftp.deploy.slots import live_versions

        served = live_versions(deployments, name).get(version) if deployments is not None else None
        if served:
            slots = ", ".join(f"slot {slot} {traffic}%" for slot, traffic in served.items())
            raise UserError(f"{name}:{version} is deployed ({slots} in {deployments}); deploy another version "
                            "into its slot before archiving it")
        held = sorted(a for a, v in registry.aliases(name).items() if v == version)
        if held:
            raise UserError(f"{name}:{version} holds alias {', '.join(held)}; move it (ftp models alias "
                            f"{name}@{held[0]} VERSION) or delete it (--delete) before archiving")
    return registry.archive(name, version, archived, reason)


# --- diff ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One field of two versions: ``a`` and ``b`` (None: absent), the difference of numbers, and the
    interval of the candidate's comparison with a baseline where the version recorded one."""

    section: str
    key: str
    a: Any
    b: Any
    a_interval: str | None = None
    b_interval: str | None = None

    @property
    def same(self) -> bool:
        return bool(self.a == self.b)

    @property
    def delta(self) -> float | None:
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (self.a, self.b))
        return float(self.b - self.a) if numbers else None

    def as_dict(self) -> dict[str, Any]:
        return {"section": self.section, "key": self.key, "a": self.a, "b": self.b, "delta": self.delta,
                "a_interval": self.a_interval, "b_interval": self.b_interval}


SECTIONS = ("metrics", "hyperparameters", "data", "model", "lineage", "tags")
COMPARISON_PATHS = (("lineage", "evaluation", "comparisons"), ("lineage", "comparisons"), ("metrics", "comparisons"),
                    ("metrics", "test", "comparisons"))


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``lora.r``); lists stay whole, as their JSON text."""
    if isinstance(data, dict) and data:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(data, (list, tuple)):
        return {prefix: json.dumps(data, sort_keys=True, default=str)}
    return {prefix: data} if prefix else {}


def comparisons(version: ModelVersion) -> list[dict[str, Any]]:
    """The version's recorded comparisons (``Comparison`` as dicts), wherever lineage put them."""
    for path in COMPARISON_PATHS:
        node: Any = version.model_dump(mode="json")
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, list):
            return [c for c in node if isinstance(c, dict) and {"metric", "low", "high"} <= set(c)]
    return []


def _intervals(version: ModelVersion) -> dict[str, str]:
    """``test.<candidate>.<metric>`` -> "vs base +0.1000 [+0.0500, +0.1500]" for each comparison."""
    found: dict[str, str] = {}
    for c in comparisons(version):
        if not all(isinstance(c.get(k), (int, float)) for k in ("low", "high")):
            continue
        key = f"test.{c.get('candidate', 'fine-tuned')}.{c['metric']}"
        text = (f"vs {c.get('baseline', '?')} {float(c.get('difference', 0.0)):+.4f} "
                f"[{float(c['low']):+.4f}, {float(c['high']):+.4f}]")
        found[key] = f"{found[key]}; {text}" if key in found else text
    return found


def sections(version: ModelVersion) -> dict[str, dict[str, Any]]:
    """What ``diff`` compares, by section: metrics, hyperparameters, data hashes (and stored digests),
    the model itself, the rest of the lineage, tags."""
    metrics = {k: v for k, v in flatten(version.metrics).items() if not k.endswith("comparisons")}
    lineage = {k: v for k, v in flatten(version.lineage).items()  # the evaluation's metrics are "metrics" already
               if not k.endswith("comparisons") and not k.startswith(("evaluation.metrics.", "data.sha256."))
               and k != "run_id"}
    model = {"base_model": version.base_model, "backend": version.backend, "kind": version.model.kind,
             "artifact": version.artifact, "run_id": version.run_id, "created_at": version.created_at,
             "pipeline_sha256": version.pipeline_sha256, "code_version": version.code_version,
             "archived": version.archived, "aliases": ", ".join(version.aliases)}
    data = {**version.data_sha256, **{f"stored.{k}": v for k, v in version.stored.items()}}
    return {"metrics": metrics, "hyperparameters": flatten(version.hyperparameters), "data": data, "model": model,
            "lineage": lineage, "tags": flatten(version.tags)}


def diff(a: ModelVersion, b: ModelVersion, everything: bool = False) -> list[Change]:
    """What differs between ``a`` and ``b`` (every field with ``everything``), section by section."""
    left, right = sections(a), sections(b)
    a_iv, b_iv = _intervals(a), _intervals(b)
    changes: list[Change] = []
    for section in SECTIONS:
        keys = sorted(set(left[section]) | set(right[section]))
        for key in keys:
            change = Change(section, key, left[section].get(key), right[section].get(key),
                            a_iv.get(key) if section == "metrics" else None,
                            b_iv.get(key) if section == "metrics" else None)
            if everything or not change.same:
                changes.append(change)
    return changes
