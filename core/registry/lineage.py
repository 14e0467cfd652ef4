"""What a registered version records about how it was made, so it can be reproduced or audited long
after its run directory is gone: the data's hashes, the settings, the metrics, the pipeline file's hash
and the code version (``new_version``); and, once its files are in the artifact store, the digests of
the model, the data and the resolved pipeline file, with the rest of its lineage (``stored_version``).
``restore_data`` gives the stored data back, byte for byte."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ftp import __version__
from ftp.config.model_source import model_source
from ftp.errors import UserError
from ftp.registry.store import ArtifactStore, copy_hashed
from ftp.run.store import atomic_write, now
from ftp.types import ModelVersion, SplitResult, TrainResult

PARTS = ("train", "validation", "test")
LIBRARIES = ("torch", "transformers", "peft", "accelerate", "trl")
MANIFEST_FORMAT = "ftp-data-manifest-1"


def new_version(name: str, run_id: str, backend: str, result: TrainResult, source_sha256: str, split: SplitResult,
                hyperparameters: dict[str, Any], test_metrics: dict[str, Any], pipeline_sha256: str,
                pipeline_dir: Path) -> ModelVersion:
    """The version a run registers (numbered by the registry: 0 until then)."""
    return ModelVersion(
        name=name, version=0, created_at=now(), run_id=run_id, backend=backend, base_model=result.model.base,
        model=result.model,
        data_sha256={"source": source_sha256, **{part: getattr(split, part).sha256 for part in ("train", "validation", "test")}},
        hyperparameters=hyperparameters, metrics={"test": test_metrics, "train": result.metrics},
        pipeline_sha256=pipeline_sha256, code_version=code_version(pipeline_dir), backend_details=result.backend_details)


def code_version(where: Path) -> str:
    """ftp's version plus the git commit of the pipeline's folder, when it is in a repository."""
    sha = _git(where, "rev-parse", "--short", "HEAD")
    return f"ftp {__version__}" + (f" git {sha}" if sha else "")


def _git(where: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# --- into the store -------------------------------------------------------------------------------


def stored_version(version: ModelVersion, store: ArtifactStore, split: SplitResult, run_dir: Path) -> ModelVersion:
    """``version`` with its files copied into ``store`` and its lineage complete: a local model's folder
    (adapter or full model, with its tokenizer and chat template) becomes ``model.path`` inside the store,
    so the version loads without ``runs/``; the train / validation / test files, a data manifest and the
    resolved pipeline file are stored beside it (``stored``). A cloud model has no folder: only its data
    and pipeline are stored. Called by the register step before the registry numbers the version."""
    settings = _resolved(run_dir)
    stored: dict[str, str] = {}
    model = version.model
    if model.kind != "cloud" and model.path is not None:
        if not Path(model.path).is_dir():
            raise UserError(f"model folder {model.path} is missing: nothing to register; train again "
                            "(ftp run ... --steps train)")
        stored["model"] = store.put_dir(Path(model.path))
        model = model.model_copy(update={"path": store.path(stored["model"]).resolve()})
    for part in PARTS:
        stored[part] = _put_data(store, getattr(split, part), part)
    manifest = data_manifest(split, settings)
    manifest_file = run_dir / "register" / "manifest.json"
    atomic_write(manifest_file, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    stored["manifest"] = store.put_file(manifest_file)
    resolved_file = run_dir / "pipeline.resolved.yaml"
    if resolved_file.is_file():
        stored["pipeline"] = store.put_file(resolved_file)
    lineage = lineage_of(version, run_dir, settings, manifest, stored)
    return version.model_copy(update={"model": model, "stored": stored, "lineage": lineage})


def _put_data(store: ArtifactStore, ref: Any, part: str) -> str:
    """Store one data file, refusing one that changed since the split step hashed it: the version must
    record the bytes training read."""
    digest = store.put_file(Path(ref.path))
    if digest != ref.sha256:
        raise UserError(f"{ref.path}: the {part} file changed since the split step hashed it (sha256 "
                        f"{ref.sha256[:12]}, now {digest[:12]}); put it back or run again from split (--steps split,...)")
    return digest


def _resolved(run_dir: Path) -> dict[str, Any]:
    """The run's effective settings (``pipeline.resolved.yaml``, secrets already replaced)."""
    import yaml

    path = run_dir / "pipeline.resolved.yaml"
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _split_record(split: SplitResult) -> dict[str, Any]:
    """What the split step recorded (``data/manifest.json``); empty when the pipeline gave all three
    files (the step's manifest is then the pipeline file itself)."""
    path = Path(split.manifest)
    if path.suffix != ".json" or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and "files" in data else {}


def data_manifest(split: SplitResult, settings: dict[str, Any]) -> dict[str, Any]:
    """The data of a version, described by content only (equal data gives an equal manifest, stored
    once): how the files were made (split by seed and ratios, or given), and each file's name, sha256
    and example count."""
    record = _split_record(split)
    data = settings.get("data") or {}
    return {
        "format": MANIFEST_FORMAT,
        "how": "split" if record else "given",
        "source": record.get("source") or {"path": str(data.get("train") or "")},
        "seed": record.get("seed"), "ratios": record.get("ratios"), "grouping": record.get("grouping"),
        "columns": data.get("columns"), "provenance": data.get("provenance"),
        "files": {part: {"name": f"{part}.jsonl", "sha256": getattr(split, part).sha256,
                         "examples": getattr(split, part).examples} for part in PARTS},
    }


# --- lineage --------------------------------------------------------------------------------------


def lineage_of(version: ModelVersion, run_dir: Path, settings: dict[str, Any], manifest: dict[str, Any],
               stored: dict[str, str]) -> dict[str, Any]:
    """Everything else needed to reproduce or audit the version, in one JSON-able dict."""
    train = settings.get("train") or {}
    pipeline_file = _pipeline_file(run_dir)
    evaluation = _eval_json(run_dir)
    out: dict[str, Any] = {
        "base_model": base_fingerprint(version.base_model),
        "backend": version.backend,
        "method": version.hyperparameters.get("method", train.get("method")),
        "seed": version.hyperparameters.get("seed", train.get("seed")),
        "data": {"sha256": version.data_sha256, "source": manifest["source"], "provenance": manifest["provenance"],
                 "how": manifest["how"], "seed": manifest["seed"], "ratios": manifest["ratios"],
                 "grouping": manifest["grouping"],
                 "examples": {part: manifest["files"][part]["examples"] for part in PARTS}},
        "pipeline": {"file": str(pipeline_file or ""), "sha256": version.pipeline_sha256,
                     "resolved": stored.get("pipeline")},
        "code": {"ftp": __version__, **git_state(pipeline_file.parent if pipeline_file else None)},
        "libraries": library_versions(),
        "evaluation": evaluation_summary(evaluation) if evaluation else {"metrics": version.metrics.get("test", {})},
        "run_id": version.run_id,
    }
    if evaluation.get("human_review"):
        out["human_review"] = evaluation["human_review"]
    return out


def _pipeline_file(run_dir: Path) -> Path | None:
    try:
        state = json.loads((run_dir / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Path(state["pipeline_file"]).resolve() if state.get("pipeline_file") else None


def _eval_json(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "eval.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def evaluation_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The evaluation as the version keeps it: metrics per candidate, and each comparison's difference
    with its interval and p-value (the answers stay in the run's eval.json)."""
    keys = ("metric", "candidate", "baseline", "difference", "low", "high", "confidence", "p_value", "test", "n",
            "method", "wins", "ties", "losses")
    return {"n": report.get("n"), "data": report.get("data"), "metrics": report.get("metrics", {}),
            "higher_is_better": report.get("higher_is_better", {}), "confidence": report.get("confidence"),
            "seed": report.get("seed"), "resamples": report.get("resamples"),
            "comparisons": [{k: c.get(k) for k in keys} for c in report.get("comparisons", [])],
            **({"not_evaluated": report["not_evaluated"]} if report.get("not_evaluated") else {})}


def base_fingerprint(base: str) -> dict[str, Any]:
    """The base model, with a cheap fingerprint when it is a local folder: sha256 over its config.json,
    weight index files, and the names and sizes of its weight files (not the weights' bytes: they may be
    hundreds of gigabytes)."""
    source = model_source(base)
    out: dict[str, Any] = {"name": base, "source": source.kind}
    folder = Path(base).expanduser()
    if source.kind != "path" or not (folder / "config.json").is_file():
        return out
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.name == "config.json" or path.name.endswith(".index.json"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        elif path.suffix in (".safetensors", ".bin", ".pt", ".gguf") and path.is_file():
            digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
    return {**out, "fingerprint": digest.hexdigest(),
            "fingerprint_of": "config.json, weight index files, weight file names and sizes"}


def git_state(where: Path | None) -> dict[str, Any]:
    """The full commit of the pipeline's folder and whether it had uncommitted changes; {} outside git."""
    if where is None or not where.is_dir():
        return {}
    commit = _git(where, "rev-parse", "HEAD")
    if not commit:
        return {}
    return {"git_commit": commit, "git_dirty": bool(_git(where, "status", "--porcelain", "--", "."))}


def library_versions(names: Iterable[str] = LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` (the training libraries by default), read from package metadata
    (nothing imported); the evaluation report records its own list through this too."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


# --- out of the store -----------------------------------------------------------------------------


def restore_data(version: ModelVersion, store: ArtifactStore, out: Path) -> dict[str, Path]:
    """Write the version's train / validation / test files and manifest.json into ``out`` (new or empty),
    byte-identical to what it was trained on. Every entry is verified first; the files appear together
    (written to a sibling folder, then renamed)."""
    label = f"{version.name}:{version.version}"
    wanted = {part: f"{part}.jsonl" for part in PARTS} | {"manifest": "manifest.json"}
    missing = [key for key in wanted if key not in version.stored]
    if missing:
        raise UserError(f"{label} has no stored {', '.join(missing)} (registered before ftp kept data in the artifact "
                        f"store); its data hashes are in `ftp models show {label}`")
    for key in wanted:
        digest = version.stored[key]
        if not store.entry(digest).is_dir():
            raise UserError(f"{label}: the stored {key} (sha256 {digest[:12]}) is missing from {store.root}; "
                            "point --registry or --pipeline at the store it was registered with")
    for key in wanted:
        digest = version.stored[key]
        if not store.verify(digest):
            raise UserError(f"{label}: the stored {key} (sha256 {digest[:12]}) in {store.root} is corrupt: its bytes "
                            "no longer match their digest; restore the store from a backup")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out}: the folder exists and is not empty; choose a new one")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.restore.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for key, name in wanted.items():
            if copy_hashed(store.file(version.stored[key]), tmp / name) != version.stored[key]:
                raise UserError(f"{label}: the stored {key} changed while it was being read; try again")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {key: out / name for key, name in wanted.items()}
