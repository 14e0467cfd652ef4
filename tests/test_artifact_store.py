"""The artifact store (ftp.registry.store), versions that outlive their runs, and data versions.

The store: digests computed by hand from the documented formula, equal content stored once (nothing
copied the second time), two real processes storing one folder at once, a put killed half-way, verify,
and gc keeping whatever a version references. Then a whole tiny pipeline run: its registered version
still exports and evaluates after ``ftp runs rm`` deleted the run, ``ftp data restore`` gives back
byte-identical files, a run trained from them gets the same checksums, and ``ftp gc`` frees only
unreferenced content.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftp import __version__
from conftest import invoke
from ftp.registry.store import ArtifactStore
from ftp.run.store import RunDir
from ftp.types import ModelVersion

OLD = time.time() - 7200  # an mtime older than gc's default grace of 60 minutes


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha(path: Path) -> str:
    return sha(path.read_bytes())


def listing_digest(files: dict[str, bytes]) -> str:
    """The documented folder digest, written out: a header, then one line per file in path order."""
    text = b"ftp-tree-1\n" + b"".join(f"{rel}\0{sha(data)}\n".encode() for rel, data in sorted(files.items()))
    return sha(text)


def make_folder(folder: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


@pytest.fixture(autouse=True)
def storage_commands() -> Iterator[None]:
    """``ftp runs rm`` and ``ftp gc`` on the real CLI: wired here until ftp.cli.main adds them itself."""
    from ftp.cli.main import cli, runs
    from ftp.cli.storage import gc, runs_rm

    added = [(group, cmd) for group, cmd in ((runs, runs_rm), (cli, gc)) if cmd.name not in group.commands]
    for group, cmd in added:
        group.add_command(cmd)
    yield
    for group, cmd in added:
        group.commands.pop(str(cmd.name), None)


# --- the store ------------------------------------------------------------------------------------


def test_folder_digest_dedup_and_layout(tmp_path: Path) -> None:
    files = {"adapter_config.json": b'{"r": 8}', "weights/part-1.bin": bytes(range(256)) * 4096, "empty.txt": b""}
    store = ArtifactStore(tmp_path / "store")
    digest = store.put_dir(make_folder(tmp_path / "a", files))
    assert digest == listing_digest(files)
    entry = tmp_path / "store" / "sha256" / digest
    assert store.path(digest) == entry
    assert {p.relative_to(entry).as_posix(): p.read_bytes() for p in entry.rglob("*") if p.is_file()} == files

    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in entry.rglob("*") if p.is_file()}
    assert store.put_dir(make_folder(tmp_path / "b", files)) == digest  # same content, another folder
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in entry.rglob("*") if p.is_file()} == before
    assert store.digests() == {digest}
    assert list((tmp_path / "store" / "tmp").iterdir()) == []

    renamed = {"adapter_config.renamed.json" if k == "adapter_config.json" else k: v for k, v in files.items()}
    assert store.put_dir(make_folder(tmp_path / "c", renamed)) == listing_digest(renamed) != digest  # names count

    (tmp_path / "train.jsonl").write_bytes(b'{"messages": []}\n')
    file_digest = store.put_file(tmp_path / "train.jsonl")
    assert file_digest == sha(b'{"messages": []}\n')  # a file's digest is the sha256 of its bytes
    assert store.file(file_digest) == tmp_path / "store" / "sha256" / file_digest / "train.jsonl"
    assert store.verify(digest) and store.verify(file_digest)


def test_verify_and_missing_entries(tmp_path: Path) -> None:
    from ftp.errors import UserError
    store = ArtifactStore(tmp_path / "store")
    digest = store.put_dir(make_folder(tmp_path / "m", {"a.bin": b"abc", "b.bin": b"def"}))
    target = store.path(digest) / "b.bin"
    target.write_bytes(b"deF")
    assert not store.verify(digest)
    target.write_bytes(b"def")
    assert store.verify(digest)
    (store.path(digest) / "extra.txt").write_text("x")  # an added file is corruption too
    assert not store.verify(digest)
    missing = "0" * 64
    assert not store.verify(missing)
    with pytest.raises(UserError, match="is not in the artifact store"):
        store.path(missing)
    with pytest.raises(UserError, match="not a sha256 digest"):
        store.path("../../etc")


PUT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ftp.registry.store import ArtifactStore
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    print(ArtifactStore(Path(sys.argv[1])).put_dir(Path(sys.argv[3])), flush=True)
""")


def _putter(store: Path, go: Path, folder: Path) -> subprocess.Popen[str]:
    code = PUT
    return subprocess.Popen([sys.executable, "-c", code, str(store), str(go), str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_two_processes_store_the_same_folder_at_once(tmp_path: Path) -> None:
    files = {f"shard-{i:02}.bin": os.urandom(1 << 20) for i in range(24)}
    folder = make_folder(tmp_path / "model", files)
    go = tmp_path / "go"
    procs = [_putter(tmp_path / "store", go, folder) for _ in range(2)]
    time.sleep(1.0)  # both started (imports done) and waiting
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    digests = {out.strip() for out, _ in outputs}
    assert digests == {listing_digest(files)}
    store = ArtifactStore(tmp_path / "store")
    assert store.digests() == digests and store.verify(digests.pop())
    assert list((tmp_path / "store" / "tmp").iterdir()) == []  # the loser's copy is gone


def test_a_put_killed_half_way_leaves_no_entry(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "model", {f"shard-{i:03}.bin": os.urandom(1 << 20) for i in range(200)})
    go = tmp_path / "go"
    go.touch()
    proc = _putter(tmp_path / "store", go, folder)
    staging = tmp_path / "store" / "tmp"
    deadline = time.time() + 60
    while time.time() < deadline and not any(staging.glob("*/*")):  # copying has begun
        time.sleep(0.001)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    store = ArtifactStore(tmp_path / "store")
    assert all(store.verify(d) for d in store.digests())  # nothing half-written is ever an entry
    assert store.remove_unreferenced(store.digests()) == []  # gc sweeps the dead put's staging folder
    assert list(staging.iterdir()) == []


def test_gc_keeps_what_is_referenced_and_what_was_just_stored(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    a, b, c = (store.put_dir(make_folder(tmp_path / n, {"f": n.encode()})) for n in "abc")
    for d in (a, b, c):
        os.utime(store.path(d), (OLD, OLD))
    store.put_dir(tmp_path / "c")  # stored again: a run is about to register it
    assert store.unreferenced({a}, older_than_s=3600) == [b]
    assert store.remove_unreferenced({a}) == sorted([b, c])
    assert store.digests() == {a} and store.verify(a)


# --- versions that outlive their runs, data versions ----------------------------------------------


def _version(project: Path, number: int) -> ModelVersion:
    from ftp.hooks import default_hooks

    version = default_hooks().model_registry("sqlite", project / ".ftp" / "registry.db").get("tiny-model", number)
    assert version is not None
    return version


def test_a_version_outlives_its_run_and_restores_its_data(project: Path) -> None:
    result = invoke("run", "pipeline.yaml", "--quiet")
    assert result.exit_code == 0, result.stderr
    run_dir = next((project / "runs" / "tiny").iterdir())
    v1 = _version(project, 1)
    store = ArtifactStore(project / ".ftp" / "artifacts")
    assert set(v1.stored) == {"model", "train", "validation", "test", "manifest", "pipeline"}
    assert {k: v1.stored[k] for k in ("train", "validation", "test")} == {
        k: v1.data_sha256[k] for k in ("train", "validation", "test")}
    assert Path(v1.model.path) == (project / ".ftp" / "artifacts" / "sha256" / v1.stored["model"]).resolve()
    stored_files = {p.name for p in Path(v1.model.path).iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "ftp_model.json"} <= stored_files
    assert (store.file(v1.stored["pipeline"]).read_bytes()
            == (run_dir / "pipeline.resolved.yaml").read_bytes())
    _check_lineage(v1, project)
    adapter = (run_dir / "model" / "adapter_model.safetensors").read_bytes()

    result = invoke("runs", "rm", run_dir.name)
    assert result.exit_code == 0, result.stderr
    assert "tiny-model:1 stays usable" in result.output and not run_dir.exists()

    result = invoke("export", "tiny-model:1", "--out", "exported")
    assert result.exit_code == 0, result.stderr
    assert (project / "exported" / "adapter_model.safetensors").read_bytes() == adapter

    result = invoke("data", "restore", "tiny-model:1", "--out", "restored")
    assert result.exit_code == 0, result.stderr
    restored = project / "restored"
    assert sorted(p.name for p in restored.iterdir()) == ["manifest.json", "test.jsonl", "train.jsonl", "validation.jsonl"]
    for part in ("train", "validation", "test"):
        assert file_sha(restored / f"{part}.jsonl") == v1.data_sha256[part]
    assert file_sha(restored / "manifest.json") == v1.stored["manifest"]
    manifest = json.loads((restored / "manifest.json").read_text())
    assert (manifest["how"], manifest["seed"], manifest["ratios"], manifest["provenance"]) == ("split", 42, [0.8, 0.1, 0.1], "synthetic")
    assert {p: f["examples"] for p, f in manifest["files"].items()} == {"train": 48, "validation": 6, "test": 6}
    assert manifest["source"]["sha256"] == file_sha(project / "data" / "train.jsonl")

    result = invoke("eval", "tiny-model:1", "--data", "restored/test.jsonl", "--compare", "none",
                    "--metrics", "loss,exact_match", "--report", "again", "--json")
    assert result.exit_code == 0, result.stderr
    again = json.loads(result.output)["metrics"]["fine-tuned"]
    registered = v1.metrics["test"]["fine-tuned"]
    assert again["exact_match"] == registered["exact_match"]
    assert again["loss"] == pytest.approx(registered["loss"], rel=1e-5)

    _retrain_from_restored(project, v1, store)
    _gc(project, store)
    _broken_store(project, v1, store)


def _check_lineage(v1: ModelVersion, project: Path) -> None:
    lineage = v1.lineage
    assert lineage["backend"] == "local" and lineage["method"] == "lora" and lineage["seed"] == 42
    base = lineage["base_model"]
    assert base["source"] == "path" and len(base["fingerprint"]) == 64
    for name in ("torch", "transformers", "peft"):
        assert lineage["libraries"][name] == importlib.metadata.version(name)
    assert lineage["code"]["ftp"] == __version__
    assert lineage["pipeline"]["sha256"] == v1.pipeline_sha256
    assert lineage["pipeline"]["resolved"] == v1.stored["pipeline"]
    assert lineage["data"]["provenance"] == "synthetic"
    assert lineage["data"]["examples"] == {"train": 48, "validation": 6, "test": 6}
    evaluation = lineage["evaluation"]
    assert evaluation["metrics"] == v1.metrics["test"]
    comparison = next(c for c in evaluation["comparisons"] if c["metric"] == "exact_match")
    assert comparison["baseline"] == "base" and comparison["low"] <= comparison["difference"] <= comparison["high"]
    assert "p_value" in comparison and evaluation["n"] == 6


def _retrain_from_restored(project: Path, v1: ModelVersion, store: ArtifactStore) -> None:
    """The restored files, given to a new run as its three files, are read as the same bytes (and train
    the same model)."""
    result = invoke("run", "pipeline.yaml", "--quiet", "--set", "data.train=restored/train.jsonl",
                    "--set", "data.validation=restored/validation.jsonl", "--set", "data.test=restored/test.jsonl")
    assert result.exit_code == 0, result.stderr
    v2 = _version(project, 2)
    for part in ("train", "validation", "test"):
        assert v2.data_sha256[part] == v1.data_sha256[part]
        assert v2.stored[part] == v1.stored[part]  # the same data, stored once
    assert v2.lineage["data"]["how"] == "given"
    # the same bytes, seed and settings on the CPU train the same adapter: one model entry for both versions
    assert v2.stored["model"] == v1.stored["model"] and v2.model.path == v1.model.path


def _gc(project: Path, store: ArtifactStore) -> None:
    referenced = {d for n in (1, 2) for d in _version(project, n).stored.values()}
    assert store.digests() == referenced
    (project / "stray.txt").write_text("nobody registered me\n")
    stray = store.put_file(project / "stray.txt")
    result = invoke("gc")
    assert result.exit_code == 0, result.stderr
    assert stray in store.digests() and "freed 0.0 MiB" in result.output  # just stored: within the grace period
    os.utime(store.path(stray), (OLD, OLD))
    result = invoke("gc", "--dry-run")
    assert result.exit_code == 0 and f"would delete sha256 {stray[:12]}" in result.output
    assert stray in store.digests()
    result = invoke("gc", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.output)["removed"] == [stray]
    assert store.digests() == referenced and all(store.verify(d) for d in referenced)
    result = invoke("gc", "--registry", str(project / "elsewhere" / "registry.db"), "--grace", "0")
    assert result.exit_code == 0  # a registry without a store: nothing to do


def _broken_store(project: Path, v1: ModelVersion, store: ArtifactStore) -> None:
    import shutil

    train = store.file(v1.stored["train"])
    train.write_bytes(train.read_bytes() + b"\n")
    result = invoke("data", "restore", "tiny-model:1", "--out", "broken")
    assert result.exit_code == 2 and "is corrupt" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (project / "broken").exists()
    shutil.rmtree(store.path(v1.stored["test"]))
    result = invoke("data", "restore", "tiny-model@latest", "--out", "broken")
    assert result.exit_code == 2 and "is missing from" in result.stderr


# --- ftp runs rm refusals -------------------------------------------------------------------------


HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ftp.run.lock import acquire
    acquire(Path(sys.argv[1]), "r")
    print("held", flush=True)
    time.sleep(120)
""")


def _bare_run(project: Path) -> RunDir:
    from ftp.run.lock import release_all

    run = RunDir.create(project / "runs", "tiny", pipeline_file=str(project / "pipeline.yaml"), pipeline_sha256="0",
                        backend="local")
    release_all()
    return run


def test_runs_rm_refuses_a_running_run_and_a_model_still_in_it(project: Path) -> None:
    run = _bare_run(project)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run.path)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = invoke("runs", "rm", run.run_id)
        assert result.exit_code == 2 and f"in use by process {holder.pid}" in result.stderr
        assert run.path.exists()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()

    result = invoke("runs", "rm", run.run_id[:10])
    assert result.exit_code == 2 and "give the whole run id" in result.stderr

    model = run.path / "model"
    model.mkdir()
    run.state.steps["register"].outputs = {
        "name": "old", "version": 1, "created_at": "2026-01-01T00:00:00+00:00", "run_id": run.run_id,
        "backend": "local", "base_model": "b", "artifact": str(model), "data_sha256": {}, "hyperparameters": {},
        "metrics": {}, "pipeline_sha256": "0", "code_version": "ftp"}
    run.save()
    result = invoke("runs", "rm", run.run_id)
    assert result.exit_code == 2 and "old:1 loads its model from this run" in result.stderr
    result = invoke("runs", "rm", run.run_id, "--force")
    assert result.exit_code == 0 and not run.path.exists()
