"""Which registered version answers a request: the model name read as a deployment (its slots' traffic
weights), a version (``NAME:3``) or an alias (``NAME@champion``).

The slots are re-read from ``deploy.store`` on every request (a small SQLite read), so a change of
traffic made by another process is picked up without restarting the server.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftp.errors import UserError
from ftp.types import ModelRegistry, ModelVersion


class UnknownModel(UserError):
    """The model name is well formed but names nothing served (HTTP 404)."""


class NoTraffic(UserError):
    """The deployment exists but no slot takes traffic (HTTP 503)."""


@dataclass(frozen=True)
class Route:
    """The version chosen, its slot (None when pinned outside the slots) and why it was chosen."""

    version: ModelVersion
    slot: str | None
    reason: str  # "hash" (sticky user), "random" (weighted draw), "pinned" (slot header, NAME:V, NAME@alias), "mirror"
    base: bool = False  # the version's base model, without its adapter (NAME:base)
    mirrored: tuple[str, int, int] | None = None  # the deployment's mirror (slot, version, %) when it was routed

    @property
    def label(self) -> str:
        return f"{self.version.name}:{'base' if self.base else self.version.version}"


def slot_table(deployments: Path, name: str) -> dict[str, tuple[int, int]]:
    """``{slot: (version, traffic %)}`` of deployment ``name``, read now from the deployment records."""
    from ftp.deploy.slots import state_of

    return dict(state_of(deployments, name).slots)


def sticky_point(name: str, user: str) -> float:
    """A point in [0, 100) fixed by (deployment, user): the same user always lands in the same slot
    while the weights stay put (a hash, not Python's salted ``hash``, so it holds across processes)."""
    digest = hashlib.sha256(f"{name}\0{user}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def pick_slot(table: dict[str, tuple[int, int]], point: float) -> str:
    """The slot whose share of the cumulative weights (slots in name order) holds ``point`` in [0, 100)."""
    live = [(slot, traffic) for slot, (_, traffic) in sorted(table.items()) if traffic > 0]
    total = sum(t for _, t in live)
    scaled, edge = point / 100 * total, 0.0
    for slot, traffic in live:
        edge += traffic
        if scaled < edge:
            return slot
    return live[-1][0]


class Router:
    """Model names to versions, against one registry and one deployments file."""

    def __init__(self, registry: ModelRegistry, deployments: Path, rng: random.Random | None = None) -> None:
        self.registry, self.deployments = registry, Path(deployments)
        self.rng = rng or random.Random()

    def route(self, model: str, user: str | None = None, pin: str | None = None) -> Route:
        """The version that answers ``model`` for ``user`` (``pin``: a slot named by the request's header);
        UserError (bad name), UnknownModel, NoTraffic."""
        from ftp.registry.refs import parse_ref, resolve

        if model.endswith(":base"):
            live = self.route(model[: -len(":base")], user, pin)
            return Route(live.version, live.slot, live.reason, base=True)
        from ftp.deploy.slots import state_of

        ref = parse_ref(model)
        state = state_of(self.deployments, ref.name)  # one read per request: the slots and the mirror
        table = state.slots
        if ref.version is None and ref.alias is None:
            if not table:
                raise UnknownModel(f"the model {model!r} does not exist: no deployment of that name in "
                                   f"{self.deployments}; see GET /v1/models")
            if pin is not None:
                if pin not in table:
                    raise UserError(f"x-ftp-slot: {model} has no slot {pin!r}; its slots: {', '.join(sorted(table))}")
                return Route(self._get(ref.name, table[pin][0]), pin, "pinned")
            if not any(t > 0 for _, t in table.values()):
                raise NoTraffic(f"{model}: no slot of the deployment takes traffic; set some with ftp deploy set-traffic")
            point, reason = (sticky_point(ref.name, user), "hash") if user else (self.rng.random() * 100, "random")
            slot = pick_slot(table, point)
            return Route(self._get(ref.name, table[slot][0]), slot, reason, mirrored=state.mirrored())
        try:
            version = resolve(self.registry, ref)
        except UserError as exc:
            raise UnknownModel(f"the model {model!r} does not exist: {exc}") from None
        held = next((s for s, (v, _) in sorted(table.items()) if v == version.version), None)
        return Route(version, held, "pinned")

    def mirror(self, route: Route) -> Route | None:
        """The shadow copy of a routed request: to the deployment's mirrored slot, for its share of the
        requests the live slots answer (never of pinned ones, nor of requests that slot answers itself)."""
        mirrored = route.mirrored  # only a drawn route carries it: pinned and base ones are never mirrored
        if mirrored is None or route.base or mirrored[0] == route.slot or self.rng.random() * 100 >= mirrored[2]:
            return None
        return Route(self._get(route.version.name, mirrored[1]), mirrored[0], "mirror")

    def _get(self, name: str, number: int) -> ModelVersion:
        version = self.registry.get(name, number)
        if version is None:
            raise UnknownModel(f"{name}:{number} is deployed but not in the registry {self.registry.location}")
        return version

    def models(self) -> list[dict[str, Any]]:
        """``/v1/models`` entries: each deployment name, then each version in one of its slots (as vLLM
        lists adapters: ``root`` the version's files, ``parent`` its base model)."""
        entries: list[dict[str, Any]] = []
        for name in sorted({v.name for v in self.registry.list()}):
            table = slot_table(self.deployments, name)
            if not table:
                continue
            entries.append({"id": name, "object": "model", "created": 0, "owned_by": "ftp", "root": name,
                            "parent": None})
            for number in sorted({v for v, _ in table.values()}):
                version = self.registry.get(name, number)
                if version is None:
                    continue
                entries.append({"id": f"{name}:{number}", "object": "model", "created": _epoch(version.created_at),
                                "owned_by": "ftp", "root": str(version.model.path or f"{name}:{number}"),
                                "parent": version.base_model})
            entries.append({"id": f"{name}:base", "object": "model", "created": 0, "owned_by": "ftp",
                            "root": entries[-1]["parent"] or f"{name}:base", "parent": None})
        return entries


def _epoch(stamp: str) -> int:
    """Seconds since the epoch of an ISO time stamp (0 when it does not parse)."""
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0
