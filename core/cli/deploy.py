"""``ftp deploy``: the rollout of a deployed name: status, set-traffic, promote, rollback.

The commands read and change the slot records the deploy step writes (``deploy.store``); the rules and
the transactions are ``ftp.deploy.traffic``'s, the smoke test ``ftp.deploy.smoke``'s. ``ftp serve``
re-reads the slots on every request, so a change here is served at once, without a restart. Values
(pydantic) and the records are imported only when a command runs, so ``ftp --help`` stays light.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ftp.errors import FtpError, UserError

DEFAULT_DEPLOYMENTS = Path(".ftp/deployments.db")
DEFAULT_REGISTRY = Path(".ftp/registry.db")
HISTORY_SHOWN = 5


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta["ftp.debug"] = True  # read by ftp.cli.main's error handler


def where_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """-p / --deployments / --registry / --json / --debug, as every deploy command takes them."""
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(fn)
    fn = click.option("--registry", default=None, metavar="PATH",
                      help="A SQLite registry file (default: the pipeline's register.*, else .ftp/registry.db).")(fn)
    fn = click.option("--deployments", default=None, metavar="PATH",
                      help="The deployment records (default: the pipeline's deploy.store, else .ftp/deployments.db).")(fn)
    fn = click.option("-p", "--pipeline", default=None, type=click.Path(dir_okay=False), metavar="FILE",
                      help="Take deploy.store, register.* and backend settings from this pipeline file.")(fn)
    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                        help="Show tracebacks for errors.")(fn)


reason_option = click.option("--reason", default="", metavar="TEXT", help="Why: kept in the deployment history.")


@dataclass
class Where:
    """What a deploy command works on: the records, the pipeline's settings (defaults without -p), the
    registry (opened on first use) and its artifact store."""

    store: Path
    settings: Any  # PipelineSettings
    pipeline: str | None
    registry_path: Path | None
    hooks: Any
    _registry: Any = None

    def registry(self) -> Any:
        if self._registry is None:
            reg = self.settings.registration
            if self.pipeline and self.registry_path is None:
                self._registry = self.hooks.model_registry(reg.registry, reg.location())
            else:
                self._registry = self.hooks.model_registry("sqlite", self.registry_path or DEFAULT_REGISTRY)
        return self._registry

    def artifacts(self) -> Path:
        """The pipeline's ``register.artifacts``, else ``artifacts/`` beside the registry file (as ``ftp gc``)."""
        if self.pipeline and self.registry_path is None:
            return Path(self.settings.registration.artifacts)
        return (self.registry_path or DEFAULT_REGISTRY).parent / "artifacts"

    def backend_settings(self, backend: str) -> dict[str, Any]:
        if not self.pipeline:
            return {}
        from ftp.config.pipeline_file import load_pipeline

        return dict(load_pipeline(Path(self.pipeline), backend, self.hooks.catalog()).backend_settings)


def _where(pipeline: str | None, deployments: str | None, registry: str | None) -> Where:
    from ftp.config import DEFAULT_BACKEND
    from ftp.config.settings import PipelineSettings
    from ftp.hooks import default_hooks

    hooks = default_hooks()
    if pipeline:
        from ftp.config.pipeline_file import load_pipeline

        settings = load_pipeline(Path(pipeline), DEFAULT_BACKEND, hooks.catalog()).settings
    else:
        settings = PipelineSettings.model_validate({"name": "deploy", "model": {"base": "none"}})
    store = Path(deployments) if deployments else settings.deploy.store if pipeline else DEFAULT_DEPLOYMENTS
    return Where(store, settings, pipeline, Path(registry) if registry else None, hooks)


def known_state(store: Path, name: str) -> Any:
    """The current state of ``name``; a one-line error with "did you mean" when nothing has that name."""
    from ftp.deploy import slots, traffic

    state = slots.state_of(store, name)
    if not state.slots:
        raise traffic.unknown(name, store, slots.names(store))
    return state


def _weights(state: Any) -> str:
    """``blue v1 100%, green v2 0%, mirror 20% to green``."""
    text = ", ".join(f"{s} v{v} {t}%" for s, (v, t) in sorted(state.slots.items())) or "nothing deployed"
    return text + "".join(f", mirror {p}% to {s}" for s, p in state.mirror.items())


@click.group("deploy")
def deploy() -> None:
    """Roll out a deployed model: status, set-traffic, promote, rollback (blue/green slots in deploy.store)."""


# --- status ------------------------------------------------------------------------------------


@deploy.command("status")
@click.argument("name")
@click.option("--history", "shown", default=HISTORY_SHOWN, show_default=True, metavar="N",
              help="How many of the latest changes to show.")
@where_options
def status(name: str, shown: int, pipeline: str | None, deployments: str | None, registry: str | None,
           as_json: bool) -> None:
    """Each slot of NAME (version, traffic, mirror, endpoint) and its latest changes."""
    from ftp.cli.models import table
    from ftp.deploy import slots, traffic

    where = _where(pipeline, deployments, registry)
    state = known_state(where.store, name)
    changes = traffic.history(where.store, name)
    rows = []
    for slot, (version, share) in sorted(state.slots.items()):
        found = slots.endpoint_of(where.store, name, version)
        rows.append({"slot": slot, "version": version, "traffic": share, "mirror": state.mirror.get(slot, 0),
                     "backend": found.backend if found else None, "endpoint": found.endpoint if found else None})
    recent = changes[-shown:] if shown > 0 else []
    if as_json:
        click.echo(json.dumps({"name": name, "store": str(where.store), "slots": rows,
                               "history": [_entry_json(e) for e in recent]}, indent=2))
        return
    click.echo(f"{name} (deployments {where.store})")
    click.echo(table(["slot", "version", "traffic", "mirror", "backend", "endpoint"],
                     [[r["slot"], str(r["version"]), f"{r['traffic']}%", f"{r['mirror']}%" if r["mirror"] else "-",
                       r["backend"] or "-", r["endpoint"] or "-"] for r in rows]))
    if recent:
        click.echo(f"\nhistory (latest {len(recent)} of {len(changes)}):")
        click.echo(table(["when (UTC)", "user", "action", "weights after", "why"],
                         [[e.at[:19].replace("T", " "), e.user or "-", e.action, _weights(e.after),
                           (e.reason or "-") + (_alias_text(e.alias) if e.alias else "")] for e in recent],
                         flexible=(3, 4)))


def _alias_text(alias: dict[str, Any]) -> str:
    was = [f"v{alias[k]}" if alias.get(k) is not None else "unset" for k in ("before", "after")]
    return f" (@{alias['alias']}: {was[0]} -> {was[1]})"


def _entry_json(entry: Any) -> dict[str, Any]:
    return {"id": entry.id, "at": entry.at, "user": entry.user, "action": entry.action, "reason": entry.reason,
            "run_id": entry.run_id, "before": entry.before.as_json(), "after": entry.after.as_json(),
            "alias": entry.alias}


# --- changes -----------------------------------------------------------------------------------


def appliers(where: Where, name: str) -> Any:
    """One ``apply(TrafficChange)`` calling ``apply_traffic`` of each deployer of ``name``'s backends
    (the backends its versions were provisioned on) that splits traffic itself; None when none does."""
    from ftp.deploy import slots

    endpoints = slots.read_store(where.store, lambda db: slots.read_endpoints(db, name), {})
    calls = []
    for backend in sorted({p.backend for p in endpoints.values()}):
        method = getattr(where.hooks.deployer(backend), "apply_traffic", None)
        if callable(method):
            calls.append((method, where.backend_settings(backend)))
    if not calls:
        return None

    def apply(change: Any) -> None:
        for method, settings in calls:
            method(change.model_copy(update={"backend_settings": settings}))

    return apply


def _report(outcome: Any, alias_said: str, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        click.echo(json.dumps({**outcome.as_json(), "alias_moved": alias_said, **(extra or {})}, indent=2))
        return
    tail = "".join(f"; {t}" for t in (alias_said, outcome.note) if t)
    click.echo(f"{outcome.name}: {_weights(outcome.after)} (was: {_weights(outcome.before)}){tail}")


def _slot_weights(given: tuple[str, ...]) -> dict[str, int]:
    weights: dict[str, int] = {}
    for text in given:
        slot, eq, share = text.partition("=")
        if not eq or not slot.strip() or not share.strip().lstrip("-").isdigit():
            raise UserError(f"--slot {text}: give SLOT=PERCENT, e.g. --slot green=30")
        weights[slot.strip()] = int(share)
    return weights


@deploy.command("set-traffic")
@click.argument("name")
@click.option("--new", "new", type=int, default=None, metavar="PERCENT",
              help="The newer version's slot gets PERCENT, the other slot the rest.")
@click.option("--slot", "given", multiple=True, metavar="SLOT=PERCENT", help="A slot's share, e.g. green=30 (repeatable).")
@click.option("--mirror", type=int, default=None, metavar="PERCENT",
              help="Also send PERCENT (at most 50) of the live slot's requests to the slot without traffic; 0 stops it.")
@reason_option
@where_options
def set_traffic(name: str, new: int | None, given: tuple[str, ...], mirror: int | None, reason: str,
                pipeline: str | None, deployments: str | None, registry: str | None, as_json: bool) -> None:
    """Change NAME's traffic weights (and mirror), recorded with who, when and why."""
    from ftp.deploy import traffic

    where = _where(pipeline, deployments, registry)
    weights = _slot_weights(given)
    known_state(where.store, name)
    outcome = traffic.change(where.store, name, "set-traffic",
                             lambda state, _: traffic.set_traffic(state, name, new, weights, mirror),
                             reason=reason, apply=appliers(where, name))
    _report(outcome, "", as_json)


@deploy.command("promote")
@click.argument("name")
@click.option("--skip-smoke", is_flag=True, help="Promote without smoke-testing the new version first.")
@reason_option
@where_options
def promote(name: str, skip_smoke: bool, reason: str, pipeline: str | None, deployments: str | None,
            registry: str | None, as_json: bool) -> None:
    """Give the newer slot of NAME all the traffic (the other kept at 0% for rollback), after a smoke
    test; the alias deploy.alias (champion) follows it."""
    from ftp.deploy import traffic

    where = _where(pipeline, deployments, registry)
    slot, number = traffic.promote_target(known_state(where.store, name), name)
    alias = where.settings.deploy.alias
    version = where.registry().get(name, number) if alias or not skip_smoke else None
    if (alias or not skip_smoke) and version is None:
        raise UserError(f"{name}:{number} (slot {slot}) is not in the registry {where.registry().location}; "
                        "point -p or --registry at the registry it was registered in")
    checked = None if skip_smoke else _smoke(where, version, name)
    move = traffic.alias_move(where.registry(), name, alias, number) if alias else None
    outcome = traffic.change(where.store, name, "promote", lambda state, _: traffic.promote(state, name, number, move),
                             reason=reason, apply=appliers(where, name))
    said = traffic.move_alias_after(where.registry() if move else None, outcome, reason or "promoted")
    _report(outcome, said, as_json, {"smoke_test": checked})


def _smoke(where: Where, version: Any, name: str) -> dict[str, Any] | None:
    """Smoke-test ``version`` through its backend's serving engine; refuse (exit 1) when it fails."""
    from ftp.deploy import slots, smoke
    from ftp.types import ServeContext

    count = where.settings.deploy.smoke_test
    if not count:
        return None  # deploy.smoke_test: 0 turns it off
    endpoint = slots.endpoint_of(where.store, name, version.version)
    backend = endpoint.backend if endpoint else version.backend
    context = ServeContext(serve=where.settings.serve.model_dump(mode="json"), backend_settings=where.backend_settings(backend))
    try:
        engine = where.hooks.serving_engine(backend, context)
    except UserError as exc:
        raise UserError(f"{exc}; or promote without a smoke test (--skip-smoke)") from None
    try:
        data = smoke.smoke_data(version, count, where.settings.evaluate, where.artifacts())
    except BaseException:
        engine.close()
        raise
    report = smoke.run_smoke(engine, version, endpoint, data.prompts, data.answer_format, data.max_tokens)
    if not report.passed:
        raise FtpError(f"promote refused: smoke test failed: {report.summary}; nothing changed "
                       "(--skip-smoke promotes anyway)")
    return report.as_json()


@deploy.command("rollback")
@click.argument("name")
@reason_option
@where_options
def rollback(name: str, reason: str, pipeline: str | None, deployments: str | None, registry: str | None,
             as_json: bool) -> None:
    """Restore NAME's weights from before its latest change (repeat to go further back); the alias
    that change moved moves back."""
    from ftp.deploy import traffic

    where = _where(pipeline, deployments, registry)
    known_state(where.store, name)
    outcome = traffic.change(where.store, name, "rollback", lambda _, entries: traffic.rollback(entries, name),
                             reason=reason, apply=appliers(where, name))
    said = traffic.move_alias_after(where.registry() if outcome.alias else None, outcome, reason)
    _report(outcome, said, as_json)
