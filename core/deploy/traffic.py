"""Changes of traffic: set-traffic, promote, rollback and the deploy step's own, each one transaction
on ``deploy.store`` with a history row (who, when, why, the state before and after, the alias moved).

A change is computed from the state it replaces. When the backend's deployer splits traffic itself
(``apply_traffic``), the new weights go to it first, outside the database lock (an Azure call takes
seconds), and are recorded only if the state is still the one they were computed from; otherwise the
change is computed again from the new state and re-applied. Without such a deployer the whole change
runs inside one ``BEGIN IMMEDIATE`` transaction. Either way concurrent changes never lose one another:
each history row's ``before`` is the previous row's ``after``.

Rollback is an undo stack replayed from the history: a rollback restores the ``before`` of the latest
change not yet undone, so repeated rollbacks walk further back. The registry alias a change moved moves
back with it, unless it has moved since.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftp.config.check import suggest
from ftp.deploy.slots import (State, deployment, kept_mirror, names_in, opened, plan, read_endpoints, read_state,
                              read_store, save_endpoint, write_state)
from ftp.errors import FtpError, UserError
from ftp.types import Deployment, DeployRequest, ModelRegistry, Provisioned, TrafficChange

RETRIES = 20
MAX_MIRROR = 50  # Azure ML's limit on mirrored traffic, kept for every backend
Apply = Callable[[TrafficChange], None]


@dataclass(frozen=True)
class Entry:
    """One history row. Rows written before ``before`` existed get the previous row's state."""

    id: int
    name: str
    at: str
    action: str  # deploy, set-traffic, promote, rollback
    user: str
    reason: str
    run_id: str | None
    before: State
    after: State
    alias: dict[str, Any] | None  # {"alias", "before", "after"}: the registry alias this change moved


def read_history(db: sqlite3.Connection, name: str) -> list[Entry]:
    entries: list[Entry] = []
    for r in db.execute("SELECT rowid AS id, * FROM history WHERE name = ? ORDER BY rowid", (name,)):
        after = State.from_json({"slots": json.loads(r["slots"]), "traffic": json.loads(r["traffic"]),
                                 "mirror": json.loads(r["mirror"] or "{}")})
        before = State.from_json(json.loads(r["before"])) if r["before"] else (entries[-1].after if entries else State())
        entries.append(Entry(int(r["id"]), name, r["at"], r["action"] or "deploy", r["user"] or "", r["reason"] or "",
                             r["run_id"], before, after, json.loads(r["alias"]) if r["alias"] else None))
    return entries


def history(store: Path, name: str) -> list[Entry]:
    """Every change to ``name``, oldest first."""
    result: list[Entry] = read_store(store, lambda db: read_history(db, name), [])
    return result


@dataclass(frozen=True)
class AliasMove:
    alias: str
    before: int | None  # the version holding it before (None: unset)
    after: int | None  # the version it points at after (None: deleted)

    def as_json(self) -> dict[str, Any]:
        return {"alias": self.alias, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class Proposal:
    """What a change makes of the state it read."""

    after: State
    alias: AliasMove | None = None
    note: str = ""  # said to the user: a mirror dropped, a first deployment taking all traffic


@dataclass(frozen=True)
class Outcome:
    name: str
    action: str
    entry: int
    before: State
    after: State
    alias: AliasMove | None
    note: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "before": self.before.as_json(),
                "after": self.after.as_json(), "alias": self.alias.as_json() if self.alias else None,
                "note": self.note}


Compute = Callable[[State, list[Entry]], Proposal]


# --- the rules ---------------------------------------------------------------------------------


def percent(option: str, value: int, top: int = 100) -> int:
    if not 0 <= value <= top:
        why = (f"at most {MAX_MIRROR}% of the live slot's requests can be mirrored (Azure ML's limit)"
               if top == MAX_MIRROR else "a traffic share is a whole percent from 0 to 100")
        raise UserError(f"{option}{'' if option.endswith('=') else ' '}{value}: {why}")
    return value


def check(state: State, name: str) -> None:
    """The rules every recorded state keeps: weights of 0-100 summing to 100; at most one mirrored
    slot, at most 50%, never a slot that also takes traffic."""
    if not state.slots:
        return
    total = sum(state.traffic().values())
    if total != 100:
        shown = ", ".join(f"{s} {t}%" for s, t in state.traffic().items())
        raise UserError(f"{name}: the weights ({shown}) sum to {total}%, not 100; give weights that sum to 100")
    if len(state.mirror) > 1:
        raise UserError(f"{name}: at most one slot can be mirrored (mirror: {state.mirror})")
    for slot, share in state.mirror.items():
        percent("--mirror", share, MAX_MIRROR)
        if slot not in state.slots or state.slots[slot][1] > 0:
            raise UserError(f"{name}: a mirrored slot takes no traffic of its own (Azure ML's rule), but {slot} has "
                            f"{state.slots.get(slot, (0, 0))[1]}%; set its traffic to 0 first (--new 0)")


def newer_slot(state: State) -> str:
    """The slot of the newer version: what ``--new`` and ``promote`` move traffic to."""
    return max(state.slots, key=lambda s: state.slots[s][0])


def unknown(name: str, store: Path, known: list[str]) -> UserError:
    hint = suggest(name, known)
    listed = f"; deployments there: {', '.join(known)}" if known else "; nothing is deployed there yet (ftp run deploys)"
    return UserError(f"no deployment named {name!r} in {store}" + (f"; {hint}" if hint else listed))


def two_slots(state: State, name: str, what: str) -> None:
    if len(state.slots) < 2:
        only = ", ".join(f"{s} (v{v}, {t}%)" for s, (v, t) in state.slots.items())
        raise UserError(f"{name} has one slot, {only}: {what} needs a second version deployed (ftp run deploys one)")


def set_traffic(state: State, name: str, new: int | None = None, given: dict[str, int] | None = None,
                mirror: int | None = None) -> Proposal:
    """``--new N`` (the newer slot N%, the other the rest), ``--slot S=N`` (each given slot; a lone
    other slot the rest) and ``--mirror N`` (of the live slot's requests to the slot without traffic)."""
    given = dict(given or {})
    if mirror is not None:
        percent("--mirror", mirror, MAX_MIRROR)
    if new is None and not given and mirror is None:
        raise UserError("set-traffic: give --new N, --slot SLOT=N or --mirror N")
    if new is not None and given:
        raise UserError("set-traffic: give --new or --slot, not both")
    for slot, share in given.items():
        if slot not in state.slots:
            hint = suggest(slot, state.slots)
            raise UserError(f"--slot {slot}={share}: {name} has no slot {slot!r}; "
                            + (hint or f"its slots are {', '.join(sorted(state.slots))}"))
        percent(f"--slot {slot}=", share)
    if new is not None:
        percent("--new", new)
        two_slots(state, name, "--new")
        given = {newer_slot(state): new}
    layout = dict(state.slots)
    if given:
        rest = [s for s in layout if s not in given]
        if len(rest) == 1:
            given[rest[0]] = 100 - sum(given.values())
        layout = {s: (v, given.get(s, 0)) for s, (v, _) in layout.items()}
    after = State(layout, kept_mirror(state, layout))
    note = "" if after.mirror == state.mirror or mirror is not None else \
        f"mirror to {next(iter(state.mirror))} stopped: that slot now takes traffic"
    if mirror is not None:
        idle = [s for s, (_, t) in sorted(layout.items()) if t == 0]
        if mirror and not idle:
            raise UserError(f"--mirror {mirror}: every slot of {name} takes traffic, and a mirrored slot must take none "
                            "(Azure ML's rule); give it 0% first (--new 0)")
        after = State(layout, {idle[0]: mirror} if mirror else {})
    return Proposal(after, note=note)


def promote_target(state: State, name: str) -> tuple[str, int]:
    """(slot, version) that ``promote`` gives all the traffic: the newer slot, if it has not all already."""
    if not state.slots:
        raise UserError(f"{name}: nothing deployed to promote")
    slot = newer_slot(state)
    version, share = state.slots[slot]
    if share == 100:
        raise UserError(f"{name}: nothing to promote: {slot} (v{version}) already takes 100% of the traffic")
    return slot, version


def promote(state: State, name: str, version: int, alias: AliasMove | None) -> Proposal:
    """The newer slot to 100%, the other kept at 0% for rollback; the mirror ends."""
    slot, found = promote_target(state, name)
    if found != version:
        raise UserError(f"{name}: the newer slot now holds v{found}, not v{version} (changed by someone else); run again")
    return Proposal(State({s: (v, 100 if s == slot else 0) for s, (v, _) in state.slots.items()}), alias)


def undo_target(entries: list[Entry]) -> Entry | None:
    """The latest change not undone yet: a stack of changes where each rollback pops one."""
    stack: list[Entry] = []
    for entry in entries:
        if entry.action == "rollback":
            if stack:
                stack.pop()
        else:
            stack.append(entry)
    return stack[-1] if stack else None


def rollback(entries: list[Entry], name: str) -> Proposal:
    """The state before the latest change not undone, and its alias moved back."""
    target = undo_target(entries)
    if target is None or not target.before.slots:
        raise UserError(f"{name}: nothing to roll back to" + (
            f" (the {target.action} of {_when(target)} is the first deployment; there is nothing before it)"
            if target else " (no change recorded)"))
    moved = target.alias
    back = AliasMove(moved["alias"], moved.get("after"), moved.get("before")) if moved else None
    return Proposal(target.before, back, note=f"undid the {target.action} of {_when(target)}"
                                              + (f" by {target.user}" if target.user else ""))


def _when(entry: Entry) -> str:
    return entry.at[:19].replace("T", " ") + " UTC"


def alias_move(registry: ModelRegistry | None, name: str, alias: str | None, version: int) -> AliasMove | None:
    """The move of ``alias`` to ``version`` a promotion makes (None: no alias, or already there)."""
    if registry is None or not alias:
        return None
    current = registry.alias(name, alias)
    return None if current == version else AliasMove(alias, current, version)


# --- making a change ----------------------------------------------------------------------------


def _snapshot(store: Path, name: str) -> tuple[State, list[Entry], dict[int, Provisioned]]:
    with opened(store) as db:
        return read_state(db, name), read_history(db, name), read_endpoints(db, name)


def _commit(db: sqlite3.Connection, name: str, action: str, before: State, proposal: Proposal, user: str, reason: str,
            run_id: str | None, endpoint: tuple[int, Provisioned] | None) -> int:
    entry = write_state(db, name, before, proposal.after, action=action, user=user, reason=reason, run_id=run_id,
                        alias=proposal.alias.as_json() if proposal.alias else None)
    if endpoint is not None:
        save_endpoint(db, name, endpoint[0], endpoint[1], run_id)
    return entry


def _applied(apply: Apply, change: TrafficChange) -> None:
    """The deployer's own split first; its refusal is one line and leaves the records as they were."""
    try:
        apply(change)
    except FtpError:
        raise
    except Exception as exc:  # a backend's failure (an HTTP error from Azure ML): reported, records kept
        first = (str(exc).strip().splitlines() or [""])[0]
        raise FtpError(f"{change.name}: the deployer refused the new weights ({type(exc).__name__}: {first}); "
                       "the deployment records are unchanged") from exc


def change(store: Path, name: str, action: str, compute: Compute, *, reason: str = "", run_id: str | None = None,
           apply: Apply | None = None, backend_settings: dict[str, Any] | None = None,
           endpoint: tuple[int, Provisioned] | None = None, must_exist: bool = True) -> Outcome:
    """Compute a change from the current state, hand it to ``apply`` (the deployer's ``apply_traffic``),
    record it with its history row (and ``endpoint``, a version's provisioned endpoint), all or nothing."""
    from ftp.deploy.slots import names
    from ftp.registry.history import os_user

    store, user = Path(store), os_user()
    if must_exist and not names(store):
        raise unknown(name, store, [])
    for _ in range(RETRIES):
        if apply is None:  # everything in one write transaction: read, compute, write
            with opened(store) as db:
                before = read_state(db, name)
                if must_exist and not before.slots:
                    raise unknown(name, store, names_in(db))
                proposal = compute(before, read_history(db, name))
                check(proposal.after, name)
                entry = _commit(db, name, action, before, proposal, user, reason, run_id, endpoint)
            return Outcome(name, action, entry, before, proposal.after, proposal.alias, proposal.note)
        before, entries, endpoints = _snapshot(store, name)
        if must_exist and not before.slots:
            raise unknown(name, store, names(store))
        proposal = compute(before, entries)
        check(proposal.after, name)
        if endpoint is not None:
            endpoints = {**endpoints, endpoint[0]: endpoint[1]}
        _applied(apply, TrafficChange(name=name, slots=proposal.after.versions(), traffic=proposal.after.traffic(),
                                      mirror=proposal.after.mirror, endpoints=endpoints,
                                      backend_settings=backend_settings or {}))
        with opened(store) as db:
            now_entries = read_history(db, name)
            if read_state(db, name) == before and [e.id for e in now_entries] == [e.id for e in entries]:
                entry = _commit(db, name, action, before, proposal, user, reason, run_id, endpoint)
                return Outcome(name, action, entry, before, proposal.after, proposal.alias, proposal.note)
        # changed by another process while the deployer applied ours: compute again from the new state
    raise FtpError(f"{name}: the deployment changed under this command {RETRIES} times in a row; run it again")


def move_alias_after(registry: ModelRegistry | None, outcome: Outcome, reason: str) -> str:
    """Move the registry alias the recorded change names (after the records: a registry is another
    store); a rollback moves it back only if nobody moved it since. One line saying what happened."""
    move = outcome.alias
    if registry is None or move is None:
        return ""
    from ftp.registry.history import move_alias, rollback_reason

    name, was = outcome.name, lambda v: f"v{v}" if v is not None else "unset"
    try:
        if outcome.action == "rollback":
            current = registry.alias(name, move.alias)
            if current != move.before:
                return f"@{move.alias} left at {was(current)}: it moved since that change"
            if move.after is None:
                registry.delete_alias(name, move.alias, rollback_reason(reason))
            else:
                registry.set_alias(name, move.alias, move.after, rollback_reason(reason))
        elif move.after is not None:
            move_alias(registry, name, move.alias, move.after, reason or outcome.action)
    except FtpError as exc:
        raise FtpError(f"{name}: traffic changed, but the alias {move.alias} was not moved ({exc}); move it with "
                       f"ftp models alias {name}@{move.alias} VERSION") from exc
    return f"@{move.alias}: {was(move.before)} -> {was(move.after)}"


# --- the deploy step ----------------------------------------------------------------------------


def deploy_weights(deploy: Any) -> tuple[int, int]:
    """(traffic for the new version, mirror %) from ``DeploySettings``: a mirror copies requests to a
    version that takes none of its own, so ``deploy.mirror`` puts it in at 0% (an explicit
    ``deploy.traffic.new`` above 0 with it is a contradiction, refused)."""
    if not deploy.mirror:
        return int(deploy.traffic.new), 0
    if "traffic" in deploy.model_fields_set and deploy.traffic.new > 0:
        raise UserError(f"deploy.mirror: {deploy.mirror} sends copies to a version that takes no traffic of its own, "
                        f"but deploy.traffic.new is {deploy.traffic.new}; set deploy.traffic.new: 0 or drop deploy.mirror")
    return 0, int(deploy.mirror)


def deploy(request: DeployRequest, provisioned: Provisioned, run_id: str | None, *, mirror: int = 0,
           alias: str | None = None, registry: ModelRegistry | None = None,
           apply: Apply | None = None) -> tuple[Deployment, Outcome, str]:
    """Record the deploy step's new version in its slot (``slots.plan``), with ``mirror`` % when it takes
    no traffic, the deployer's ``apply_traffic`` first; ``alias`` follows the version when it ends with
    all the traffic. (deployment, the change, what happened to the alias)."""
    version = request.version
    target: dict[str, str] = {}

    def compute(state: State, _entries: list[Entry]) -> Proposal:
        slot, layout = plan(state.slots, version.version, request.strategy, request.traffic_new)
        target["slot"] = slot
        after = State(layout, kept_mirror(state, layout))
        note = ""
        if mirror and layout[slot][1] == 0 and len(layout) > 1:
            after = State(layout, {slot: mirror})
        elif mirror:
            note = f"deploy.mirror left out: {slot} (v{version.version}) takes {layout[slot][1]}% of the traffic"
        moved = alias_move(registry, version.name, alias, version.version) if layout[slot][1] == 100 else None
        return Proposal(after, moved, note)

    outcome = change(request.store, version.name, "deploy", compute, reason=f"run {run_id}" if run_id else "",
                     run_id=run_id, apply=apply, backend_settings=request.backend_settings,
                     endpoint=(version.version, provisioned), must_exist=False)
    said = move_alias_after(registry, outcome, f"run {run_id}: deployed with all the traffic")
    return deployment(version.name, provisioned, target["slot"], version.version, outcome.after), outcome, said


def deploy_summary(deployment: Deployment, outcome: Outcome, alias_said: str, smoke: Any) -> str:
    """The deploy step's line: slot, weights, mirror, endpoint, alias, smoke test."""
    weights = ", ".join(f"{slot} {w}%" for slot, w in deployment.traffic.items())
    weights += "".join(f", mirror {p}% to {m}" for m, p in outcome.after.mirror.items())
    where = f" at {deployment.endpoint}" if deployment.endpoint else ""
    tested = "smoke test skipped" if isinstance(smoke, str) else f"smoke test passed ({smoke.checked} prompts)"
    extra = "".join(f"; {t}" for t in (alias_said, outcome.note, tested) if t)
    return f"{deployment.name} v{deployment.version} → slot {deployment.slot} ({weights}){where}{extra}"
