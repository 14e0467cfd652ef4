"""``ftp runs rm`` and ``ftp gc``: deleting what no version needs, never what one does.

A registered version's model and data live in the artifact store (``ftp.registry.store``), so a run
directory can go once training is over; the store itself only loses entries that no registered version
references. ``open_registry`` is also how ``ftp data restore`` finds a registry and its store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ftp.errors import UserError
from ftp.registry.store import ArtifactStore

if TYPE_CHECKING:  # the values import pydantic: `ftp --help` must not
    from ftp.types import ModelRegistry, ModelVersion

DEFAULT_REGISTRY = Path(".ftp/registry.db")


def open_registry(registry: str | None, pipeline: str | None) -> tuple[ModelRegistry, ArtifactStore]:
    """The registry (``--registry PATH``, else the pipeline's ``register.store``, else
    ``.ftp/registry.db``) and its artifact store (the pipeline's ``register.artifacts``, else
    ``artifacts/`` beside the registry file)."""
    from ftp.hooks import default_hooks

    hooks = default_hooks()
    if pipeline:
        from ftp.config import DEFAULT_BACKEND
        from ftp.config.pipeline_file import load_pipeline

        register = load_pipeline(Path(pipeline), DEFAULT_BACKEND, hooks.catalog()).settings.registration
        location = Path(registry) if registry else register.location()
        return hooks.model_registry(register.registry, location), ArtifactStore(register.artifacts)
    location = Path(registry) if registry else DEFAULT_REGISTRY
    return hooks.model_registry("sqlite", location), ArtifactStore(location.parent / "artifacts")


def all_versions(registry: ModelRegistry) -> list[ModelVersion]:
    """Every version of every name, archived ones included: a number missing from ``list`` (versions are
    numbered 1, 2, ... and never reused) is asked for one by one, so a registry that leaves some out of
    its listing still has them counted."""
    listed = registry.list()
    out = list(listed)
    for name in sorted({v.name for v in listed}):
        numbers = {v.version for v in listed if v.name == name}
        for number in sorted(set(range(1, max(numbers) + 1)) - numbers):
            found = registry.get(name, number)
            if found is not None:
                out.append(found)
    return out


def referenced(versions: list[ModelVersion], store: ArtifactStore) -> set[str]:
    """The digests some version needs: its ``stored`` ones, and the entry its model path points into."""
    keep = {d for v in versions for d in v.stored.values()}
    objects = store.objects.resolve()
    for v in versions:
        if v.model.path is not None and Path(v.model.path).resolve().parent == objects:
            keep.add(Path(v.model.path).name)
    return keep


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


@click.command("rm")
@click.argument("run_id")
@click.option("--runs-dir", default=None, metavar="DIR", help="Where run directories live (default: ./runs, or $FTP_RUNS_DIR).")
@click.option("--force", is_flag=True, help="Delete even a run whose folder a version still loads from, or whose "
                                            "cloud job may still be running.")
def runs_rm(run_id: str, runs_dir: str | None, force: bool) -> None:
    """Delete a run directory. A run another process holds (still running) is refused; the version it
    registered keeps working: its model and data are in the artifact store."""
    from ftp.run.store import find_run, runs_root

    found = find_run(runs_root(runs_dir), run_id)
    if found.run_id != run_id:
        raise UserError(f"{run_id}: give the whole run id to delete a run ({found.run_id})")
    found = found.lock()  # RunInUse (exit 2, naming the process) while another process runs or resumes it
    if not force:
        _refuse_needed(found)
    from ftp.types import ModelVersion

    registered = ModelVersion.model_validate(found.state.outputs("register")) if found.state.outputs("register") else None
    size = _size(found.path)
    (found.path / "state.json").unlink()  # first: the run is gone for every other command at once
    shutil.rmtree(found.path)
    if found.held is not None:
        found.held.release()
    click.echo(f"deleted run {run_id} ({mib(size)}): {found.path}")
    if registered is not None and registered.stored:
        click.echo(f"{registered.name}:{registered.version} stays usable: its model and data are in the artifact store")


def _refuse_needed(run: Any) -> None:
    """Refuse what deleting would break: a version that loads from this run's folder (registered before
    the artifact store), or a cloud job whose record (for ``ftp runs cancel``) lives only here."""
    from ftp.types import ModelVersion

    outputs = run.state.outputs("register")
    if outputs:
        version = ModelVersion.model_validate(outputs)
        path = version.model.path
        if "model" not in version.stored and path is not None and _inside(Path(path), run.path):
            raise UserError(f"{version.name}:{version.version} loads its model from this run ({path}): it was "
                            "registered before the artifact store; export it first (ftp export), or --force")
    if run.state.resources and run.state.steps["train"].status != "done":
        raise UserError(f"run {run.run_id} started cloud work that may still be running "
                        f"({', '.join(sorted(run.state.resources))}); ftp runs cancel {run.run_id} first, or --force")


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


@click.command("gc")
@click.option("--registry", default=None, metavar="PATH", help="Registry file (default: .ftp/registry.db).")
@click.option("--pipeline", "-p", default=None, metavar="FILE", help="Use this pipeline's register.store and artifacts.")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.option("--grace", default=60.0, show_default=True, metavar="MINUTES",
              help="Keep unreferenced entries stored in the last MINUTES (a run may be about to register them).")
@click.option("--json", "as_json", is_flag=True, help="Print what was (or would be) freed as JSON.")
def gc(registry: str | None, pipeline: str | None, dry_run: bool, grace: float, as_json: bool) -> None:
    """Delete artifact-store entries that no registered version references (archived versions count as
    referencing); prints what it frees."""
    reg, store = open_registry(registry, pipeline)
    if reg.name == "sqlite" and not Path(reg.location).exists() and store.digests():
        raise UserError(f"no registry at {reg.location}, but {store.root} holds artifacts: every one would look "
                        "unreferenced; give the registry they belong to (--registry PATH or --pipeline FILE)")
    versions = all_versions(reg)
    keep = referenced(versions, store)
    doomed = store.unreferenced(keep, grace * 60)
    sizes = {d: store.size(d) for d in doomed}
    if not dry_run:
        doomed = store.remove_unreferenced(keep, grace * 60)
    freed = sum(sizes.get(d, 0) for d in doomed)
    if as_json:
        click.echo(json.dumps({"store": str(store.root), "dry_run": dry_run, "freed_bytes": freed,
                               "removed": doomed, "kept": sorted(keep & store.digests()),
                               "versions": len(versions)}))
        return
    verb = "would delete" if dry_run else "deleted"
    for digest in doomed:
        click.echo(f"{verb} sha256 {digest[:12]}  {mib(sizes.get(digest, 0))}")
    click.echo(f"{'would free' if dry_run else 'freed'} {mib(freed)} in {store.root}; kept "
               f"{len(keep & store.digests())} entries referenced by {len(versions)} version(s)")
