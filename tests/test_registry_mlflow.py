"""``register.kind: mlflow`` against a real MLflow tracking server (tests/mlflow_server.py): versions
numbered by MLflow, ftp's lineage in the version's tags, aliases through MLflow's alias API, rollback,
tags, archive, the audit log, and an ``ftp run`` that registers and logs its run there."""

from __future__ import annotations

import getpass
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import invoke
from ftp.errors import UserError
from ftp.hooks import default_hooks
from ftp.plugins.registry_mlflow import LIMIT, MlflowRegistry, tracking_uri
from ftp.registry.history import rollback
from ftp.registry.refs import parse_ref, resolve
from ftp.types import ModelRef, ModelVersion
from mlflow_server import MlflowServer, free_port, mlflow_server  # noqa: F401  (the session's server fixture)

SHA = {"source": "a" * 64, "train": "b" * 64, "validation": "c" * 64, "test": "d" * 64}


def test_the_tracking_uri_is_the_location_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert tracking_uri(Path("https://mlflow.example.com/path")) == "https://mlflow.example.com/path"  # Path ate a '/'
    assert tracking_uri(Path(".ftp/registry.db")) == "http://env:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(UserError, match="set register.tracking_uri .* or MLFLOW_TRACKING_URI"):
        tracking_uri(Path(".ftp/registry.db"))
    assert MlflowRegistry("https://me:secret@host:8443").location == "https://me:***@host:8443"


def test_loading_the_plugins_imports_no_mlflow_and_a_dead_server_fails_in_seconds() -> None:
    code = ("import sys, time; from pathlib import Path; from ftp.hooks import default_hooks; h = default_hooks(); "
            "h.model_registry('sqlite', Path('r.db')); r = h.model_registry('mlflow', Path('http://127.0.0.1:PORT')); "
            "print('mlflow' in sys.modules); t = time.monotonic()\n"
            "try: r.list()\nexcept Exception as e: print(type(e).__name__, e)\nprint(round(time.monotonic() - t))")
    out = subprocess.run([sys.executable, "-c", code.replace("PORT", str(free_port()))], capture_output=True,
                         text=True, timeout=120).stdout.splitlines()
    assert out[0] == "False"  # the Azure-only user never imports mlflow
    assert out[1].startswith("UserError cannot reach the MLflow tracking server at http://127.0.0.1:")
    assert int(out[2]) < 15  # MLflow's own retries would take about four minutes


@pytest.fixture
def registry(mlflow_server: MlflowServer) -> MlflowRegistry:  # noqa: F811
    """The plugin as the hook gives it, located by the server's URI as a Path (as --registry passes it)."""
    found = default_hooks().model_registry("mlflow", Path(mlflow_server.uri))
    assert isinstance(found, MlflowRegistry) and found.location == mlflow_server.uri
    return found


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A model name of the test's own: the server lives for the whole session."""
    return request.node.name.replace("_", "-")[:60]


def adapter(folder: Path, seed: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "seed": seed}))
    (folder / "adapter_model.safetensors").write_bytes(hashlib.sha256(seed.encode()).digest() * 64)
    return folder


def version(name: str, run_id: str, path: Path, **extra: Any) -> ModelVersion:
    lineage = {"seed": 42, "libraries": {"torch": "2.13.0"}, "evaluation": {"n": 6}, **extra.pop("lineage", {})}
    return ModelVersion(
        name=name, version=0, created_at="2026-01-02T03:04:05+00:00", run_id=run_id, backend="local",
        base_model="tiny-llama", model=ModelRef(kind="adapter", base="tiny-llama", backend="local", path=path),
        data_sha256=SHA, hyperparameters={"learning_rate": 0.003, "lora": {"r": 8, "alpha": 16}, "method": "lora"},
        metrics={"test": {"fine-tuned": {"exact_match": 0.5}, "base": {"exact_match": 0.25}}},
        pipeline_sha256="e" * 64, code_version="ftp 0.1.0 git abc1234", stored={"model": "f" * 64},
        lineage=lineage, **extra)


def registered(registry: MlflowRegistry, name: str, tmp_path: Path, count: int) -> list[ModelVersion]:
    return [registry.register(version(name, f"run{n}", adapter(tmp_path / f"m{n}", f"s{n}"))) for n in range(1, count + 1)]


def test_versions_are_mlflows_and_carry_the_lineage(registry: MlflowRegistry, name: str, tmp_path: Path) -> None:
    huge = "x" * (2 * LIMIT + 17)  # longer than an MLflow tag value: continues in .part1, .part2
    one = registry.register(version(name, "run1", adapter(tmp_path / "m1", "s1"), lineage={"pipeline": huge}))
    two = registry.register(version(name, "run2", adapter(tmp_path / "m2", "s2")))
    assert (one.version, two.version) == (1, 2)
    assert registry.register(version(name, "run2", tmp_path / "m2")).version == 2  # the same run: its version back
    client = registry.client
    assert sorted(int(mv.version) for mv in client.search_model_versions(f"name = '{name}'")) == [1, 2]
    raw = client.get_model_version(name, "2")
    assert json.loads(raw.tags["ftp.data.sha256"]) == SHA and raw.tags["ftp.run_id"] == "run2"
    assert json.loads(raw.tags["ftp.lineage.seed"]) == 42 and raw.source == f"runs:/{raw.run_id}/model"
    uploaded = {a.path for a in client.list_artifacts(raw.run_id, "model")}
    assert uploaded == {"model/adapter_config.json", "model/adapter_model.safetensors"}

    got = registry.get(name, 2)
    assert got is not None and got == two and got.data_sha256 == SHA and got.stored == {"model": "f" * 64}
    assert got.hyperparameters["lora"] == {"r": 8, "alpha": 16} and got.model.path == tmp_path / "m2"
    assert got.lineage["libraries"] == {"torch": "2.13.0"} and got.lineage["mlflow"]["run_id"] == raw.run_id
    assert got.metrics["test"]["base"]["exact_match"] == 0.25 and got.code_version == "ftp 0.1.0 git abc1234"
    first = registry.get(name, 1)
    assert first is not None and first.lineage["pipeline"] == huge and first.run_id == "run1"
    assert registry.get(name) == two and [v.version for v in registry.list(name)] == [1, 2]
    assert name in {v.name for v in registry.list()}
    assert registry.get(name, 9) is None and registry.get("no-such-model") is None and registry.list("no-such-model") == []

    client.create_model_version(name, raw.source, run_id=raw.run_id, tags={"ftp.run_id": "half"})  # not ftp's: v3
    assert [v.version for v in registry.list(name)] == [1, 2] and registry.get(name, 3) is None
    assert registry.get(name) == two and registry.register(version(name, "run4", tmp_path / "m2")).version == 4


def test_aliases_move_resolve_and_roll_back(registry: MlflowRegistry, name: str, tmp_path: Path) -> None:
    registered(registry, name, tmp_path, 3)
    assert registry.set_alias(name, "champion", 1) is None  # a new alias: no previous holder
    assert registry.set_alias(name, "champion", 2, reason="better F1") == 1  # moved: v1 held it
    assert registry.set_alias(name, "champion", 2) == 2  # already there: nothing changes
    assert registry.set_alias(name, "challenger", 2) is None
    assert registry.alias(name, "champion") == 2 and registry.aliases(name) == {"challenger": 2, "champion": 2}
    assert registry.client.get_model_version_by_alias(name, "champion").version == "2"  # MLflow's own alias
    assert resolve(registry, parse_ref(f"{name}@champion")).version == 2
    assert resolve(registry, parse_ref(f"{name}@latest")).version == 3 and registry.alias(name, "v1") == 1
    got = registry.get(name, 2)
    assert got is not None and got.aliases == ["challenger", "champion"]
    assert [v.aliases for v in registry.list(name)] == [[], ["challenger", "champion"], []]

    registry.set_alias(name, "champion", 3)
    back = rollback(registry, name, "champion", reason="v3 regressed")
    assert (back.from_version, back.to_version) == (3, 2) and registry.alias(name, "champion") == 2
    assert rollback(registry, name, "champion").to_version == 1  # a second rollback walks further back

    registry.delete_alias(name, "challenger", reason="done")
    assert registry.alias(name, "challenger") is None and registry.aliases(name) == {"champion": 1}
    with pytest.raises(UserError, match="no alias 'challenger'"):
        resolve(registry, parse_ref(f"{name}@challenger"))
    with pytest.raises(UserError, match="no such alias"):
        registry.delete_alias(name, "challenger")
    for bad, why in (("latest", "reserved"), ("v2", "reserved"), ("a.b", "letters, digits")):
        with pytest.raises(UserError, match=why):
            registry.set_alias(name, bad, 1)
    with pytest.raises(UserError, match=f"no version {name}:9"):
        registry.set_alias(name, "champion", 9)

    moves = [(e.action, e.alias, e.previous, e.version, e.reason) for e in registry.history(name) if e.alias]
    assert moves == [("alias", "champion", None, 1, ""), ("alias", "champion", 1, 2, "better F1"),
                     ("alias", "challenger", None, 2, ""), ("alias", "champion", 2, 3, ""),
                     ("rollback", "champion", 3, 2, "v3 regressed"), ("rollback", "champion", 2, 1, ""),
                     ("unalias", "challenger", 2, None, "done")]


def test_tags_archive_and_history(registry: MlflowRegistry, name: str, tmp_path: Path) -> None:
    registered(registry, name, tmp_path, 2)
    review = {"win_rate": 0.62, "reviewers": 2}
    assert registry.set_tag(name, 1, "human_review", review).tags == {"human_review": review}
    assert json.loads(registry.client.get_model_version(name, "1").tags["human_review"]) == review
    registry.client.set_model_version_tag(name, "1", "validation_status", "approved")  # set in MLflow's UI
    assert registry.get(name, 1).tags == {"human_review": review, "validation_status": "approved"}  # type: ignore[union-attr]
    assert registry.set_tag(name, 1, "validation_status", None).tags == {"human_review": review}
    with pytest.raises(UserError, match="reserved"):
        registry.set_tag(name, 1, "ftp.run_id", "forged")
    with pytest.raises(UserError, match=f"no version {name}:7 .*versions: 1, 2"):
        registry.set_tag(name, 7, "k", 1)

    assert registry.archive(name, 2, reason="bad data").archived
    assert registry.archive(name, 2).archived  # archiving twice changes (and logs) nothing
    assert registry.client.get_model_version(name, "2").tags["ftp.archived"] == "true"
    with pytest.raises(UserError, match="archived; restore it first"):
        registry.set_alias(name, "champion", 2)
    assert not registry.archive(name, 2, archived=False).archived

    entries = registry.history(name)
    assert [(e.action, e.version) for e in entries] == [("register", 1), ("register", 2), ("tag", 1), ("tag", 1),
                                                          ("archive", 2), ("unarchive", 2)]
    assert entries[2].details == {"key": "human_review", "value": review, "deleted": False}
    assert entries[3].details["deleted"] and entries[4].reason == "bad data"
    assert entries[0].details["run_id"] == "run1" and {e.user for e in entries} == {getpass.getuser()}
    assert registry.history("no-such-model") == [] and registry.aliases("no-such-model") == {}


def test_models_commands_work_against_mlflow(registry: MlflowRegistry, name: str, tmp_path: Path,
                                            mlflow_server: MlflowServer) -> None:  # noqa: F811
    registered(registry, name, tmp_path, 3)

    def ftp(*args: str) -> str:
        result = invoke("models", *args, "--kind", "mlflow", "--registry", mlflow_server.uri)
        assert result.exit_code == 0, result.output
        return str(result.output)

    ftp("promote", f"{name}:1", "--reason", "first")
    ftp("promote", f"{name}:2")
    assert "v2 -> v1" in ftp("rollback", name, "--reason", "v2 regressed")
    assert registry.alias(name, "champion") == 1
    ftp("tag", f"{name}:2", "owner=alice")
    ftp("archive", f"{name}:3", "--reason", "old")
    listed = json.loads(ftp("list", name, "--json"))
    assert [(v["version"], v["aliases"], v["archived"], v["tags"]) for v in listed] == [
        (1, ["champion"], False, {}), (2, [], False, {"owner": "alice"}), (3, [], True, {})]
    assert json.loads(ftp("show", f"{name}@champion", "--json"))["run_id"] == "run1"
    history = json.loads(ftp("history", name, "--json"))
    assert [(e["action"], e["version"], e["reason"]) for e in history][3:] == [
        ("alias", 1, "first"), ("alias", 2, ""), ("rollback", 1, "v2 regressed"), ("tag", 2, ""), ("archive", 3, "old")]
    changes = {(c["section"], c["key"]): (c["a"], c["b"]) for c in json.loads(ftp("diff", f"{name}:1", f"{name}:2", "--json"))["changes"]}
    assert changes[("model", "run_id")] == ("run1", "run2") and changes[("tags", "owner")] == (None, "alice")
    assert ("data", "train") not in changes  # the same data hashes


def test_ftp_run_registers_into_mlflow_and_logs_the_run(project: Path, mlflow_server: MlflowServer) -> None:  # noqa: F811
    result = invoke("run", "pipeline.yaml", "--set", "register.kind=mlflow",
                    "--set", f"register.tracking_uri={mlflow_server.uri}", "--set", "register.alias=challenger")
    assert result.exit_code == 0, result.output
    assert "View run" not in result.output  # MLflow's run links stay off stdout
    run_dir = next((project / "runs" / "tiny").iterdir())
    registry = MlflowRegistry(mlflow_server.uri)
    got = registry.get("tiny-model")
    assert got is not None and got.version == 1 and got.run_id == run_dir.name
    assert sorted(got.aliases) == ["challenger", "champion"]  # register.alias, then deploy.alias at 100%
    assert registry.client.get_model_version_by_alias("tiny-model", "challenger").version == "1"
    state = json.loads((run_dir / "state.json").read_text())
    assert got.data_sha256 == state["steps"]["register"]["outputs"]["data_sha256"]
    assert got.data_sha256["train"] == hashlib.sha256((run_dir / "data" / "train.jsonl").read_bytes()).hexdigest()

    client = registry.client
    run = client.get_run(got.lineage["mlflow"]["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["ftp.run_id"] == run_dir.name
    assert run.data.params["learning_rate"] == "0.003" and run.data.params["lora.r"] == "8"
    assert run.data.params["method"] == "lora" and run.data.params["epochs"] == "2.0"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for key in ("train_loss", "eval_loss"):
        expected = [(r["step"], r[key]) for r in rows if r.get("phase") == "train" and key in r]
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        assert history == expected and len(expected) == (12 if key == "train_loss" else 4)  # doubles kept exactly
    eval_report = json.loads((run_dir / "eval.json").read_text())
    assert isinstance(eval_report, dict)
    fine_tuned = state["steps"]["evaluate"]["outputs"]["report"]["metrics"]["fine-tuned"]
    assert run.data.metrics["test.fine-tuned.exact_match"] == fine_tuned["exact_match"]

    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"eval.json", "eval.html", "loss_curve.png", "data", "model"} <= top
    assert {a.path for a in client.list_artifacts(run.info.run_id, "data")} == {"data/manifest.json"}
    adapter_file = run_dir / "model" / "adapter_model.safetensors"
    downloaded = Path(client.download_artifacts(run.info.run_id, "model/adapter_model.safetensors", str(project)))
    assert downloaded.read_bytes() == adapter_file.read_bytes()
    digests = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert digests == {f"tiny-model-{part}": got.data_sha256[part][:32] for part in ("train", "validation", "test")}


CHILD = ("import sys; from ftp.plugins.registry_mlflow import MlflowRegistry; from ftp.types import ModelVersion; "
         "v = ModelVersion.model_validate_json(open(sys.argv[2]).read()); "
         "print(MlflowRegistry(sys.argv[1]).register(v).version)")


def test_eight_processes_registering_at_once_get_eight_versions(mlflow_server: MlflowServer, name: str,  # noqa: F811
                                                                 tmp_path: Path) -> None:
    import time

    files = []
    for n in range(1, 9):
        spec = tmp_path / f"v{n}.json"
        spec.write_text(version(name, f"run{n}", adapter(tmp_path / f"m{n}", f"s{n}")).model_dump_json())
        files.append(spec)
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, mlflow_server.uri, str(f)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for f in files]
    outs = [p.communicate(timeout=300) for p in procs]
    took = time.perf_counter() - start
    assert all(p.returncode == 0 for p in procs), [err[-800:] for _, err in outs]
    numbers = sorted(int(out.strip().splitlines()[-1]) for out, _ in outs)
    assert numbers == list(range(1, 9))
    listed = MlflowRegistry(mlflow_server.uri).list(name)
    assert sorted(v.version for v in listed) == numbers  # nothing lost, no version twice
    assert {v.run_id for v in listed} == {f"run{n}" for n in range(1, 9)}
    print(f"\n8 processes registered 8 MLflow versions in {took:.1f}s")
