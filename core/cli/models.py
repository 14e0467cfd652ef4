"""``ftp models``: the registry from the command line: list, show, alias, promote, rollback, diff, tag,
archive, history. Every command reaches the registry through ``ftp_model_registry`` (``--registry`` /
``--pipeline`` / ``--kind``), so the SQLite and MLflow registries answer alike; the shared logic
(rollback, archive checks, diff) is ``ftp.registry.history``.

Tables are plain text laid out for the terminal's width (80 columns in a pipe, or ``$COLUMNS``): the
first columns (names, versions, ids) are never cut and the last one wraps, so nothing is shortened to
a few letters as a table squeezed into a pipe was before.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ftp.errors import UserError

DEFAULT_STORE = Path(".ftp/registry.db")
DEFAULT_DEPLOYMENTS = Path(".ftp/deployments.db")


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta["ftp.debug"] = True  # read by ftp.cli.main's error handler


debug_option = click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                            help="Show tracebacks for errors.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
reason_option = click.option("--reason", default="", metavar="TEXT", help="Why: kept in the audit log.")


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _where(registry: str | None, pipeline: str | None, kind: str) -> tuple[Any, Path]:
    """(the registry, the deployments store): ``--registry``, else the pipeline's ``register.kind`` at
    its ``register.tracking_uri`` or ``register.store`` (and its ``deploy.store``), else ``.ftp/registry.db``."""
    from ftp.hooks import default_hooks

    hooks = default_hooks()
    location, deployments = (Path(registry) if registry else None), DEFAULT_DEPLOYMENTS
    if pipeline:
        from ftp.config import DEFAULT_BACKEND
        from ftp.config.pipeline_file import load_pipeline

        settings = load_pipeline(Path(pipeline), DEFAULT_BACKEND, hooks.catalog()).settings
        deployments = settings.deploy.store
        if location is None:  # a server's URI (register.tracking_uri) when the file names one, else the store
            register = settings.registration
            location, kind = Path(register.tracking_uri) if register.tracking_uri else register.store, register.registry
    return hooks.model_registry(kind, location or DEFAULT_STORE), deployments


def registry_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--registry", default=None, metavar="PATH", help="Registry location (default: .ftp/registry.db).")(fn)
    fn = click.option("--pipeline", "-p", default=None, metavar="FILE",
                      help="Use this pipeline's register.kind and register.store.")(fn)
    fn = click.option("--kind", default="sqlite", show_default=True, help="Registry kind.")(fn)
    return debug_option(fn)


def _open(registry: str | None, pipeline: str | None, kind: str) -> Any:
    return _where(registry, pipeline, kind)[0]


# --- layout --------------------------------------------------------------------------------------


def width() -> int:
    """The terminal's columns; 80 in a pipe unless ``$COLUMNS`` says otherwise."""
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def _lines(cell: str | list[str], room: int) -> list[str]:
    if isinstance(cell, str):
        return textwrap.wrap(cell, max(room, 1), break_on_hyphens=False, break_long_words=False) or [""]
    lines: list[str] = []
    for item in cell:
        if lines and len(lines[-1]) + 2 + len(item) <= room:
            lines[-1] += ", " + item
        else:
            lines.append(item)
    return lines or [""]


def _longest_piece(cell: str | list[str]) -> int:
    return max((len(p) for p in (cell.split() if isinstance(cell, str) else cell)), default=0)


def _fit(cells: list[list[Any]], flexible: set[int], columns: int) -> list[int]:
    """Column widths: natural ones, then the flexible columns narrowed, rightmost first, until the row
    fits ``columns``: first to 20 characters, then to their longest word or item."""
    count = len(cells[0])
    widths = [max(len(", ".join(r[i]) if isinstance(r[i], list) else r[i]) for r in cells) for i in range(count)]
    pieces = [max(_longest_piece(r[i]) for r in cells) for i in range(count)]
    for floor in ([max(p, min(w, 20)) for p, w in zip(pieces, widths)], pieces):
        for i in sorted(flexible, reverse=True):
            over = sum(widths) + 2 * (count - 1) - columns
            if over > 0:
                widths[i] = max(floor[i], widths[i] - over)
    return widths


def table(headers: list[str], rows: list[list[Any]], columns: int | None = None, flexible: tuple[int, ...] = (-1,)) -> str:
    """Aligned columns in ``columns`` characters. Only ``flexible`` columns wrap (names, versions and
    ids are copied into other commands: never cut); when even they cannot fit, the last column goes on
    the lines below its row, indented."""
    columns = columns or width()
    count = len(headers)
    flex = {i % count for i in flexible}
    cells = [list(headers), *rows]
    widths = _fit(cells, flex, columns)
    below = sum(widths) + 2 * (count - 1) > columns and count - 1 in flex
    if below:
        widths = _fit([r[:-1] for r in cells], flex - {count - 1}, columns)
    shown = count - 1 if below else count
    out: list[str] = []
    for number, row in enumerate(cells):
        parts = [_lines(row[i], widths[i]) for i in range(shown)]
        for depth in range(max(len(p) for p in parts)):
            line = "  ".join((p[depth] if depth < len(p) else "").ljust(w) for p, w in zip(parts, widths))
            out.append(line.rstrip())
        out.extend("    " + more for more in _lines(row[-1], columns - 4) if below)
    return "\n".join(out)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _metrics(version: Any) -> list[str]:
    found = (version.metrics.get("test") or {}).get("fine-tuned") or {}
    return [f"{k} {_number(v)}" for k, v in found.items()]


def _resolve(reg: Any, text: str, exact: bool = False) -> Any:
    from ftp.registry.refs import parse_ref, parse_version_ref, resolve

    return resolve(reg, parse_version_ref(text) if exact else parse_ref(text))


def _name_alias(text: str) -> tuple[str, str]:
    from ftp.registry.refs import NAME

    name, at, alias = text.partition("@")
    if not at or not NAME.match(name) or not alias:
        raise UserError(f"{text}: expected NAME@ALIAS, e.g. ticket-triage@champion")
    return name, alias


def _was(previous: int | None, version: int) -> str:
    return "new alias" if previous is None else "unchanged" if previous == version else f"was v{previous}"


# --- commands ------------------------------------------------------------------------------------


@click.group()
def models() -> None:
    """The model registry: versions, aliases, promotion, rollback, history."""


@models.command("list")
@click.argument("name", required=False)
@registry_options
@json_option
def models_list(name: str | None, registry: str | None, pipeline: str | None, kind: str, as_json: bool) -> None:
    """List registered versions (of NAME only when given), with their aliases."""
    reg = _open(registry, pipeline, kind)
    versions = reg.list(name)
    if as_json:
        _emit_json([v.model_dump(mode="json") for v in versions])
        return
    if not versions:
        click.echo(f"no model versions in {reg.location}")
        return
    rows = [[v.name, str(v.version), v.aliases + (["(archived)"] if v.archived else []) or ["-"],
             v.run_id, v.backend, _metrics(v) or ["-"]] for v in versions]
    click.echo(table(["NAME", "VER", "ALIASES", "RUN", "BACKEND", "TEST (fine-tuned)"], rows, flexible=(2, 5)))


@models.command("show")
@click.argument("ref", metavar="NAME[:VERSION|@ALIAS]")
@registry_options
@json_option
def models_show(ref: str, registry: str | None, pipeline: str | None, kind: str, as_json: bool) -> None:
    """Show one version with its full lineage and aliases (NAME alone: the latest version)."""
    data = _resolve(_open(registry, pipeline, kind), ref).model_dump(mode="json")
    if as_json:
        _emit_json(data)
        return
    import yaml

    click.echo(yaml.safe_dump(data, sort_keys=False, width=width(), allow_unicode=True).rstrip())


@models.command("alias")
@click.argument("target", metavar="NAME@ALIAS")
@click.argument("version", required=False, metavar="[VERSION]")
@click.option("--delete", is_flag=True, help="Delete the alias.")
@reason_option
@registry_options
def models_alias(target: str, version: str | None, delete: bool, reason: str, registry: str | None,
                 pipeline: str | None, kind: str) -> None:
    """Point NAME@ALIAS at VERSION (moving it), delete it, or (neither) say where it points."""
    from ftp.registry.history import move_alias

    reg = _open(registry, pipeline, kind)
    name, alias = _name_alias(target)
    if delete:
        if version is not None:
            raise UserError(f"{target}: give a VERSION or --delete, not both")
        held = reg.alias(name, alias)
        reg.delete_alias(name, alias, reason)
        click.echo(f"{name}@{alias} deleted (was v{held})")
        return
    if version is None:
        click.echo(f"{name}@{alias} -> v{_resolve(reg, target).version}")
        return
    number = _resolve(reg, f"{name}:{version}").version
    previous = move_alias(reg, name, alias, number, reason)
    click.echo(f"{name}@{alias} -> v{number} ({_was(previous, number)})")


@models.command("promote")
@click.argument("ref", metavar="NAME:VERSION")
@click.option("--alias", default="champion", show_default=True, help="The alias to move.")
@reason_option
@registry_options
def models_promote(ref: str, alias: str, reason: str, registry: str | None, pipeline: str | None, kind: str) -> None:
    """Make a version the champion (or --alias): NAME:VERSION or NAME@ALIAS (e.g. NAME@challenger)."""
    from ftp.registry.history import move_alias

    reg = _open(registry, pipeline, kind)
    version = _resolve(reg, ref, exact=True)
    previous = move_alias(reg, version.name, alias, version.version, reason)
    click.echo(f"{version.name}@{alias} -> v{version.version} ({_was(previous, version.version)})")


@models.command("rollback")
@click.argument("name")
@click.option("--alias", default="champion", show_default=True, help="The alias to move back.")
@reason_option
@registry_options
def models_rollback(name: str, alias: str, reason: str, registry: str | None, pipeline: str | None, kind: str) -> None:
    """Move the alias back to the version that held it before; again walks further back."""
    from ftp.registry.history import rollback

    click.echo(str(rollback(_open(registry, pipeline, kind), name, alias, reason)))


@models.command("tag")
@click.argument("ref", metavar="NAME:VERSION")
@click.argument("pairs", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--delete", "deleted", multiple=True, metavar="KEY", help="Remove this tag (repeatable).")
@registry_options
def models_tag(ref: str, pairs: tuple[str, ...], deleted: tuple[str, ...], registry: str | None, pipeline: str | None,
               kind: str) -> None:
    """Set (KEY=VALUE) or remove (--delete KEY) free-form tags of a version."""
    reg = _open(registry, pipeline, kind)
    version = _resolve(reg, ref, exact=True)
    if not pairs and not deleted:
        raise UserError("give KEY=VALUE pairs to set or --delete KEY to remove")
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise UserError(f"{pair!r}: expected KEY=VALUE, e.g. owner=ml-team")
        version = reg.set_tag(version.name, version.version, key, value)
    for key in deleted:
        if key not in version.tags:
            raise UserError(f"{version.name}:{version.version} has no tag {key!r} (tags: {', '.join(version.tags) or 'none'})")
        version = reg.set_tag(version.name, version.version, key, None)
    shown = ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, default=str)}" for k, v in version.tags.items())
    click.echo(f"{version.name}:{version.version} tags: {shown or 'none'}")


@models.command("archive")
@click.argument("ref", metavar="NAME:VERSION")
@click.option("--undo", is_flag=True, help="Restore an archived version.")
@click.option("--deployments", default=None, metavar="PATH",
              help="Deployments store to check (default: the pipeline's deploy.store, else .ftp/deployments.db).")
@reason_option
@registry_options
def models_archive(ref: str, undo: bool, deployments: str | None, reason: str, registry: str | None,
                   pipeline: str | None, kind: str) -> None:
    """Mark a version as not to be used; refused while a deployment slot or an alias holds it."""
    from ftp.registry.history import archive

    reg, store = _where(registry, pipeline, kind)
    version = _resolve(reg, ref, exact=True)
    done = archive(reg, version.name, version.version, not undo, reason, Path(deployments) if deployments else store)
    click.echo(f"{done.name}:{done.version} {'archived' if done.archived else 'not archived'}")


def _change(entry: Any) -> str:
    """What an audit entry changed, in a few words: ``champion v2 -> v3``, ``v3 owner=ml``."""
    number = f"v{entry.version}" if entry.version is not None else "none"
    if entry.alias:
        was = f"v{entry.previous}" if entry.previous is not None else "none"
        return f"{entry.alias} {was} -> {number}"
    if entry.action == "tag":
        key = entry.details.get("key", "?")
        value = str(entry.details.get("value"))
        return f"{number} -{key}" if entry.details.get("deleted") else f"{number} {key}={textwrap.shorten(value, 30)}"
    return number


@models.command("history")
@click.argument("name")
@click.option("--alias", default=None, help="Only the moves of this alias.")
@registry_options
@json_option
def models_history(name: str, alias: str | None, registry: str | None, pipeline: str | None, kind: str,
                   as_json: bool) -> None:
    """Every change to NAME, oldest first: who, when, what, why."""
    reg = _open(registry, pipeline, kind)
    entries = [e for e in reg.history(name) if alias is None or e.alias == alias]
    if as_json:
        _emit_json([e.model_dump(mode="json") for e in entries])
        return
    if not entries:
        click.echo(f"no history for {name} in {reg.location}")
        return
    rows = [[e.at.replace("T", " ")[:19], e.user, e.action, _change(e), e.reason or "-"] for e in entries]
    click.echo(table(["AT (UTC)", "USER", "ACTION", "CHANGE", "REASON"], rows, flexible=(3, 4)))


def _value(value: Any) -> str:
    if value is None or value == "":
        return "(none)"
    text = _number(value)
    return text[:12] + "..." if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


def _diff_text(a: Any, b: Any, changes: list[Any], columns: int) -> str:
    """Sections of ``KEY  A -> B (delta)``; a pair too long for one line goes on two, A then B."""
    if not changes:
        return f"{a.name}:{a.version} and {b.name}:{b.version}: nothing differs (--all shows every field)"
    lines, section = [f"a = {a.name}:{a.version}   b = {b.name}:{b.version}"], ""
    keys = max(len(c.key) for c in changes) + 2
    for c in changes:
        if c.section != section:
            section = c.section
            lines.append(section)
        delta = f"  ({c.delta:+.4f})" if c.delta is not None and not c.same else ""
        pair = f"{_value(c.a)} -> {_value(c.b)}{delta}" if not c.same else f"{_value(c.a)} (same)"
        if 2 + keys + len(pair) <= columns:
            lines.append(f"  {c.key.ljust(keys)}{pair}")
        else:
            lines += [f"  {c.key}", f"      a: {_value(c.a)}", f"      b: {_value(c.b)}{delta}"]
        lines += [f"      {side} {iv}" for side, iv in (("a", c.a_interval), ("b", c.b_interval)) if iv]
    return "\n".join(lines)


@models.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--all", "everything", is_flag=True, help="Every field, not only those that differ.")
@registry_options
@json_option
def models_diff(a: str, b: str, everything: bool, registry: str | None, pipeline: str | None, kind: str,
                as_json: bool) -> None:
    """Compare two versions (NAME:VERSION, NAME@ALIAS): metrics with intervals, hyperparameters, data."""
    from ftp.registry.history import diff

    reg = _open(registry, pipeline, kind)
    left, right = _resolve(reg, a), _resolve(reg, b)
    changes = diff(left, right, everything)
    if as_json:
        _emit_json({"a": f"{left.name}:{left.version}", "b": f"{right.name}:{right.version}",
                    "changes": [c.as_dict() for c in changes]})
        return
    click.echo(_diff_text(left, right, changes, width()))
