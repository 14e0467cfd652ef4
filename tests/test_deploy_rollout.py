"""ftp deploy: status, set-traffic, promote, rollback and the mirror, against real SQLite records and a
real registry; concurrent changes from real processes; the smoke test through the local serving
engine on tiny trained models, in the deploy step and before a promotion; a running ftp serve that
follows a promotion and a rollback without a restart."""

from __future__ import annotations

import getpass
import json
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import invoke, make_examples, write_jsonl
from serve_helpers import serving
from ftp import hookimpl
from ftp.cli import cli
from ftp.deploy import slots, smoke, traffic
from ftp.plugins.registry_sqlite import SqliteRegistry
from ftp.types import AnswerFormat, Completion, DeployRequest, GenerationRequest, ModelRef, ModelVersion, Provisioned

ME = getpass.getuser()
FTP = [sys.executable, "-m", "ftp"]  # the command a user types


def version(n: int, name: str = "triage", backend: str = "local") -> ModelVersion:
    return ModelVersion(name=name, version=n, created_at="2026-01-01T00:00:00+00:00", run_id=f"run-{n}",
                        backend=backend, base_model="b",
                        model=ModelRef(kind="adapter", base="b", backend=backend, path=Path(f"missing-model-{n}")),
                        data_sha256={}, hyperparameters={}, metrics={}, pipeline_sha256="p", code_version="c")


def record(store: Path, v: ModelVersion | None, traffic_new: int, backend: str = "local") -> None:
    assert v is not None
    slots.record(DeployRequest(version=v, strategy="blue-green", traffic_new=traffic_new, store=store),
                 Provisioned(backend=backend, endpoint=f"http://127.0.0.1:9/v{v.version}"), v.run_id)


@pytest.fixture
def where(tmp_path: Path) -> list[str]:
    """triage v1 in blue (100%), v2 in green (0%), @champion on v1; the options naming them."""
    reg = SqliteRegistry(tmp_path / "registry.db")
    for n in (1, 2):
        reg.register(version(n))
    store = tmp_path / "deployments.db"
    record(store, reg.get("triage", 1), 100)
    record(store, reg.get("triage", 2), 0)
    reg.set_alias("triage", "champion", 1)
    return ["--deployments", str(store), "--registry", str(tmp_path / "registry.db")]


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["deploy", *args], catch_exceptions=False)


def state(where: list[str]) -> dict[str, Any]:
    return slots.state_of(Path(where[1]), "triage").as_json()


def champion(where: list[str]) -> int | None:
    return SqliteRegistry(Path(where[3])).alias("triage", "champion")


# --- status, set-traffic, mirror --------------------------------------------------------------------


def test_status_shows_slots_endpoints_and_history(where: list[str]) -> None:
    shown = run("status", "triage", *where)
    assert shown.exit_code == 0, shown.stderr
    lines = shown.output.splitlines()
    assert lines[1].split() == ["slot", "version", "traffic", "mirror", "backend", "endpoint"]
    assert lines[2].split() == ["blue", "1", "100%", "-", "local", "http://127.0.0.1:9/v1"]
    assert lines[3].split() == ["green", "2", "0%", "-", "local", "http://127.0.0.1:9/v2"]
    assert "history (latest 2 of 2)" in shown.output and "run run-2" in shown.output
    data = json.loads(run("status", "triage", "--json", *where).output)
    assert [(s["slot"], s["version"], s["traffic"], s["mirror"]) for s in data["slots"]] == [
        ("blue", 1, 100, 0), ("green", 2, 0, 0)]
    assert [h["action"] for h in data["history"]] == ["deploy", "deploy"]
    assert data["history"][1]["before"] == {"slots": {"blue": 1}, "traffic": {"blue": 100}, "mirror": {}}


def test_set_traffic_by_new_and_by_slot_is_recorded_with_who_and_why(where: list[str]) -> None:
    done = run("set-traffic", "triage", "--new", "50", "--reason", "canary", *where)
    assert done.exit_code == 0, done.stderr
    assert done.output == "triage: blue v1 50%, green v2 50% (was: blue v1 100%, green v2 0%)\n"
    assert run("set-traffic", "triage", "--slot", "blue=80", *where).exit_code == 0
    assert state(where)["traffic"] == {"blue": 80, "green": 20}
    assert run("set-traffic", "triage", "--slot", "blue=10", "--slot", "green=90", *where).exit_code == 0
    assert state(where)["traffic"] == {"blue": 10, "green": 90}
    entries = traffic.history(Path(where[1]), "triage")
    assert [(e.action, e.user, e.reason) for e in entries[2:]] == [
        ("set-traffic", ME, "canary"), ("set-traffic", ME, ""), ("set-traffic", ME, "")]
    assert all(a.after == b.before for a, b in zip(entries, entries[1:]))  # one chain: nothing lost
    assert slots.live_version(Path(where[1]), "triage") == 2


def test_mirror_goes_only_to_a_slot_without_traffic(where: list[str]) -> None:
    store = Path(where[1])
    done = run("set-traffic", "triage", "--mirror", "20", *where)
    assert done.exit_code == 0 and "mirror 20% to green" in done.output
    assert slots.mirror_of(store, "triage") == ("green", 2, 20)
    assert run("status", "triage", *where).output.splitlines()[3].split()[:4] == ["green", "2", "0%", "20%"]
    refused = run("set-traffic", "triage", "--new", "30", "--mirror", "10", *where)
    assert refused.exit_code == 2 and "a mirrored slot must take none" in refused.stderr
    assert slots.mirror_of(store, "triage") == ("green", 2, 20)  # a refusal changes nothing
    moved = run("set-traffic", "triage", "--new", "30", *where)  # traffic to the mirrored slot ends the mirror
    assert moved.exit_code == 0 and "mirror to green stopped" in moved.output
    assert slots.mirror_of(store, "triage") is None
    assert run("set-traffic", "triage", "--new", "0", "--mirror", "50", *where).exit_code == 0
    assert slots.mirror_of(store, "triage") == ("green", 2, 50)
    assert run("set-traffic", "triage", "--mirror", "0", *where).exit_code == 0
    assert slots.mirror_of(store, "triage") is None
    assert slots.endpoint_of(store, "triage", 2) == Provisioned(backend="local", endpoint="http://127.0.0.1:9/v2")
    assert slots.endpoint_of(store, "triage", 7) is None and slots.mirror_of(store.parent / "none.db", "x") is None


@pytest.mark.parametrize("args, message", [
    (("status", "triag"), "no deployment named 'triag'"),
    (("set-traffic", "triag", "--new", "10"), "did you mean 'triage'?"),
    (("set-traffic", "triage", "--new", "150"), "--new 150: a traffic share is a whole percent from 0 to 100"),
    (("set-traffic", "triage", "--mirror", "60"), "--mirror 60: at most 50%"),
    (("set-traffic", "triage", "--slot", "gren=30"), "no slot 'gren'; did you mean 'green'?"),
    (("set-traffic", "triage", "--slot", "green"), "--slot green: give SLOT=PERCENT"),
    (("set-traffic", "triage", "--slot", "blue=60", "--slot", "green=60"), "sum to 120%, not 100"),
    (("set-traffic", "triage"), "give --new N, --slot SLOT=N or --mirror N"),
])
def test_bad_input_is_one_line_and_exit_2(where: list[str], args: tuple[str, ...], message: str) -> None:
    before = traffic.history(Path(where[1]), "triage")
    result = run(*args, *where)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and traffic.history(Path(where[1]), "triage") == before


def test_no_deployments_file_is_said_so(tmp_path: Path) -> None:
    result = run("promote", "triage", "--skip-smoke", "--deployments", str(tmp_path / "none.db"))
    assert result.exit_code == 2 and "nothing is deployed there yet (ftp run deploys)" in result.stderr
    assert not (tmp_path / "none.db").exists()


# --- promote and rollback ---------------------------------------------------------------------------


def test_promote_moves_the_alias_and_rollback_restores_weights_and_alias(where: list[str]) -> None:
    assert run("set-traffic", "triage", "--new", "20", *where).exit_code == 0
    promoted = run("promote", "triage", "--skip-smoke", "--reason", "canary held", *where)
    assert promoted.exit_code == 0, promoted.stderr
    assert state(where)["traffic"] == {"blue": 0, "green": 100} and champion(where) == 2
    assert "@champion: v1 -> v2" in promoted.output
    again = run("promote", "triage", "--skip-smoke", *where)
    assert again.exit_code == 2 and "already takes 100%" in again.stderr
    back = run("rollback", "triage", *where)
    assert back.exit_code == 0 and "@champion: v2 -> v1" in back.output and "undid the promote" in back.output
    assert state(where)["traffic"] == {"blue": 80, "green": 20} and champion(where) == 1
    assert run("rollback", "triage", "--reason", "too early", *where).exit_code == 0  # further back: the set-traffic
    assert state(where)["traffic"] == {"blue": 100, "green": 0}
    assert run("rollback", "triage", *where).exit_code == 0  # v2's deployment itself
    assert state(where) == {"slots": {"blue": 1}, "traffic": {"blue": 100}, "mirror": {}}
    first = run("rollback", "triage", *where)
    assert first.exit_code == 2 and "nothing to roll back to" in first.stderr and "first deployment" in first.stderr
    entries = traffic.history(Path(where[1]), "triage")
    assert [e.action for e in entries] == ["deploy", "deploy", "set-traffic", "promote", "rollback", "rollback", "rollback"]
    assert entries[3].alias == {"alias": "champion", "before": 1, "after": 2} and entries[5].reason == "too early"
    audit = SqliteRegistry(Path(where[3])).history("triage")
    assert [(e.action, e.version) for e in audit][-2:] == [("alias", 2), ("rollback", 1)]


def test_rollback_leaves_an_alias_someone_moved_since(where: list[str]) -> None:
    assert run("promote", "triage", "--skip-smoke", *where).exit_code == 0
    SqliteRegistry(Path(where[3])).register(version(3))
    SqliteRegistry(Path(where[3])).set_alias("triage", "champion", 3)
    back = run("rollback", "triage", *where)
    assert back.exit_code == 0 and "@champion left at v3: it moved since" in back.output
    assert champion(where) == 3 and state(where)["traffic"] == {"blue": 100, "green": 0}


def test_a_file_of_the_first_schema_is_read_and_changed(tmp_path: Path) -> None:
    """A deployments file written before the mirror and the history's who/why existed."""
    store = tmp_path / "old.db"
    db = sqlite3.connect(store)
    db.executescript("""
        CREATE TABLE slots (name TEXT NOT NULL, slot TEXT NOT NULL, version INTEGER NOT NULL, traffic INTEGER NOT NULL,
                            updated_at TEXT NOT NULL, PRIMARY KEY (name, slot));
        CREATE TABLE history (name TEXT NOT NULL, at TEXT NOT NULL, run_id TEXT, slots TEXT NOT NULL, traffic TEXT NOT NULL);
        CREATE TABLE endpoints (name TEXT NOT NULL, version INTEGER NOT NULL, backend TEXT NOT NULL, endpoint TEXT,
                                details TEXT NOT NULL, run_id TEXT, created_at TEXT NOT NULL, PRIMARY KEY (name, version));
        INSERT INTO slots VALUES ('triage', 'blue', 1, 90, 't'), ('triage', 'green', 2, 10, 't');
        INSERT INTO history VALUES ('triage', '2025-01-01T00:00:00+00:00', 'r1', '{"blue": 1}', '{"blue": 100}');
        INSERT INTO history VALUES ('triage', '2025-01-02T00:00:00+00:00', 'r2', '{"blue": 1, "green": 2}',
                                    '{"blue": 90, "green": 10}');
        INSERT INTO endpoints VALUES ('triage', 2, 'local', NULL, '{}', 'r2', 't');
    """)
    db.commit()
    db.close()
    options = ["--deployments", str(store), "--registry", str(tmp_path / "r.db")]
    shown = json.loads(run("status", "triage", "--json", *options).output)
    assert [h["before"]["traffic"] for h in shown["history"]] == [{}, {"blue": 100}]
    assert run("set-traffic", "triage", "--new", "0", "--mirror", "5", *options).exit_code == 0
    assert slots.mirror_of(store, "triage") == ("green", 2, 5)
    assert run("rollback", "triage", *options).exit_code == 0
    assert slots.state_of(store, "triage").traffic() == {"blue": 90, "green": 10}
    assert run("rollback", "triage", *options).exit_code == 0  # an old row: its before is the row above
    assert slots.state_of(store, "triage").traffic() == {"blue": 100}


# --- deployers that split traffic themselves --------------------------------------------------------


class SplittingDeployer:
    """A backend that splits traffic itself (as an Azure ML managed online endpoint does)."""

    name = "splitter"

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.changes: list[Any] = []

    def deploy(self, request: Any, ctx: Any) -> Provisioned:
        return Provisioned(backend="splitter")

    def apply_traffic(self, change: Any) -> None:
        if self.refuse:
            raise RuntimeError("409 Conflict: the endpoint is being updated")
        self.changes.append(change)


@pytest.mark.parametrize("refuse", [False, True])
def test_a_deployer_that_splits_traffic_gets_the_weights_first(tmp_path: Path, pm: Any, refuse: bool) -> None:
    deployer = SplittingDeployer(refuse)

    class Plugin:
        @hookimpl
        def ftp_deployer(self, backend: str) -> Any:
            return deployer if backend == "splitter" else None

    pm.register(Plugin(), name="splitter")
    store = tmp_path / "d.db"
    record(store, version(1, backend="splitter"), 100, backend="splitter")
    record(store, version(2, backend="splitter"), 0, backend="splitter")
    result = run("set-traffic", "triage", "--new", "25", "--deployments", str(store))
    if refuse:
        assert result.exit_code == 1 and result.stderr.count("\n") == 1
        assert "the deployer refused the new weights (RuntimeError: 409 Conflict" in result.stderr
        assert "records are unchanged" in result.stderr
        assert slots.state_of(store, "triage").traffic() == {"blue": 100, "green": 0}
        return
    assert result.exit_code == 0, result.stderr
    (change,) = deployer.changes
    assert (change.name, change.slots, change.traffic, change.mirror) == (
        "triage", {"blue": 1, "green": 2}, {"blue": 75, "green": 25}, {})
    assert set(change.endpoints) == {1, 2} and change.endpoints[2].backend == "splitter"
    assert slots.state_of(store, "triage").traffic() == {"blue": 75, "green": 25}


SLOW_SPLITTER = '''
import time
from ftp import hookimpl
from ftp.types import Provisioned

class Slow:
    name = "slow-splitter"
    def deploy(self, request, ctx):
        return Provisioned(backend="slow")
    def apply_traffic(self, change):
        with open("applied.log", "a") as log:
            log.write(f"{change.traffic}\\n")
        time.sleep(0.3)  # a cloud call: other processes change the records meanwhile

@hookimpl
def ftp_deployer(backend):
    return Slow() if backend == "slow" else None
'''


@pytest.mark.parametrize("backend", ["local", "slow"])
def test_concurrent_set_traffic_from_processes_loses_no_change(tmp_path: Path, backend: str) -> None:
    """Eight processes change the weights at once: each change is recorded, and each history row's
    state before is the row above's state after (no change was computed from a state overwritten
    meanwhile). ``slow``: a deployer with ``apply_traffic`` (outside the lock, compare and retry)."""
    (tmp_path / "slow_splitter.py").write_text(SLOW_SPLITTER, encoding="utf-8")
    store = tmp_path / "d.db"
    record(store, version(1, backend=backend), 100, backend=backend)
    record(store, version(2, backend=backend), 0, backend=backend)
    plugin = ["--plugin", "slow_splitter.py"] if backend == "slow" else []
    procs = [subprocess.Popen([*FTP, *plugin, "deploy", "set-traffic", "triage", "--new", str(share), "--reason",
                               f"p{share}", "--deployments", str(store)], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for share in range(10, 90, 10)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    every = traffic.history(store, "triage")
    entries = every[2:]
    assert sorted(e.reason for e in entries) == [f"p{share}" for share in range(10, 90, 10)]
    assert all(a.after == b.before for a, b in zip(every, every[1:]))
    assert slots.state_of(store, "triage") == entries[-1].after
    assert entries[-1].after.traffic()["green"] == int(entries[-1].reason[1:])
    if backend == "slow":  # every change reached the deployer; those overtaken were computed and applied again
        applied = (tmp_path / "applied.log").read_text().splitlines()
        assert len(applied) >= 8
        print(f"apply_traffic calls for 8 changes: {len(applied)}")


def test_status_and_rollback_as_a_user_types_them(where: list[str], tmp_path: Path) -> None:
    assert run("set-traffic", "triage", "--new", "40", *where).exit_code == 0
    shown = subprocess.run([*FTP, "deploy", "status", "triage", "--json", *where], capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert [s["traffic"] for s in json.loads(shown.stdout)["slots"]] == [60, 40]
    back = subprocess.run([*FTP, "deploy", "rollback", "triage", *where], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert back.returncode == 0 and back.stdout.startswith("triage: blue v1 100%, green v2 0%"), back.stderr
    wrong = subprocess.run([*FTP, "deploy", "set-traffic", "triage", "--new", "150", *where], capture_output=True,
                           text=True, timeout=60, cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "Traceback" not in wrong.stderr


# --- the smoke test -----------------------------------------------------------------------------


class EchoModel:
    """A served model that says what it was told to (the ServedModel protocol, as docs/plugin-hooks.md's)."""

    label = "echo:1"

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)

    def complete(self, request: GenerationRequest) -> Completion:
        text = self.answers.pop(0)
        if text == "boom":
            raise RuntimeError("CUDA error: device-side assert triggered")
        return Completion(text=text, finish_reason="stop", prompt_tokens=1, completion_tokens=1)

    def stream(self, request: GenerationRequest) -> Any:
        yield self.complete(request)


PROMPTS = [[{"role": "user", "content": f"ticket {i}"}] for i in range(3)]


def test_smoke_test_wants_every_answer_in_the_data_format() -> None:
    fmt = AnswerFormat(kind="json", keys=["colour"])
    good = smoke.smoke_test(EchoModel(['{"colour": "red"}'] * 3), PROMPTS, fmt, 16)
    assert good.passed and good.summary == ("echo:1: 3 of 3 test prompts answered, each a JSON object with exactly "
                                            "the keys colour")
    bad = smoke.smoke_test(EchoModel(['{"colour": "red"}', "The colour is red.", "boom"]), PROMPTS, fmt, 16)
    assert not bad.passed and bad.errors == ["prompt 3: RuntimeError: CUDA error: device-side assert triggered"]
    assert bad.format_failures == ["prompt 2: 'The colour is red.' is not a JSON object with exactly the keys colour"]
    assert "1 of 3 prompts failed" in bad.summary and "1 of 3 answers not in the data's format" in bad.summary
    labels = AnswerFormat(kind="label", labels=["billing", "outage"])
    assert smoke.smoke_test(EchoModel([" Billing", "outage", "OUTAGE"]), PROMPTS, labels, 4).passed
    assert not smoke.smoke_test(EchoModel(["billing", "other", "outage"]), PROMPTS, labels, 4).passed
    assert not smoke.smoke_test(EchoModel(["fine", "", "ok"]), PROMPTS, AnswerFormat(kind="text"), 4).passed
    assert not smoke.smoke_test(EchoModel([]), [], None, 4).passed  # nothing asked is not a pass


# --- end to end on tiny trained models --------------------------------------------------------------


def served(port: int, user: str) -> str:
    body = json.dumps({"model": "tiny-model", "user": user, "max_tokens": 1,
                       "messages": [{"role": "user", "content": "Ticket 1: my car is red and it is broken."}]})
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return str(json.loads(answer.read())["model"])


def with_settings(pipeline: Path, **sections: dict[str, Any]) -> None:
    """Set keys of the pipeline file's sections (the smoke test explicitly on, whatever the fixture's
    file says about it)."""
    import yaml

    data = yaml.safe_load(pipeline.read_text(encoding="utf-8"))
    for section, keys in sections.items():
        data.setdefault(section, {}).update(keys)
    pipeline.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def registry_alias(project: Path) -> int | None:
    return SqliteRegistry(project / ".ftp" / "registry.db").alias("tiny-model", "champion")


@pytest.mark.slow
def test_smoke_tested_deploys_promote_and_rollback_followed_by_a_running_server(project: Path) -> None:
    with_settings(project / "pipeline.yaml", deploy={"smoke_test": 3, "alias": "champion"})
    first = invoke("run", "pipeline.yaml", "--quiet", "--set", "train.epochs=6")  # answers {"colour": ...}
    assert first.exit_code == 0, first.stderr
    run_dir = next((project / "runs" / "tiny").iterdir())
    deployed = json.loads((run_dir / "state.json").read_text())["steps"]["deploy"]["outputs"]
    assert deployed["smoke_test"]["passed"] and deployed["smoke_test"]["checked"] == 3
    assert "JSON object with exactly the keys colour" in deployed["smoke_test"]["format"]
    assert registry_alias(project) == 1  # the first version takes all the traffic: the alias follows it
    second = invoke("run", "pipeline.yaml", "--quiet", "--set", "train.epochs=6", "--set", "train.seed=5",
                    "--set", "deploy.traffic.new=0", "--set", "deploy.mirror=10")
    assert second.exit_code == 0, second.stderr
    store = project / ".ftp" / "deployments.db"
    assert slots.state_of(store, "tiny-model").traffic() == {"blue": 100, "green": 0}
    assert slots.mirror_of(store, "tiny-model") == ("green", 2, 10) and registry_alias(project) == 1

    with serving(project, "-p", "pipeline.yaml") as port:
        users = [f"user-{i}" for i in range(6)]
        assert {served(port, u) for u in users} == {"tiny-model:1"}
        promoted = subprocess.run([*FTP, "deploy", "promote", "tiny-model", "-p", "pipeline.yaml"], cwd=project,
                                  capture_output=True, text=True, timeout=300)
        assert promoted.returncode == 0, promoted.stderr
        assert "green v2 100%" in promoted.stdout and "@champion: v1 -> v2" in promoted.stdout
        assert {served(port, u) for u in users} == {"tiny-model:2"} and registry_alias(project) == 2
        back = invoke("deploy", "rollback", "tiny-model", "-p", "pipeline.yaml")
        assert back.exit_code == 0, back.stderr
        assert {served(port, u) for u in users} == {"tiny-model:1"} and registry_alias(project) == 1
        assert slots.mirror_of(store, "tiny-model") == ("green", 2, 10)  # the weights before, mirror included


@pytest.mark.slow
def test_a_version_answering_free_text_for_json_data_gets_no_traffic(project: Path) -> None:
    """Trained on free-text answers, tested on JSON ones: its answers are not in the data's format, so
    the deploy step refuses it before any traffic, and so does ftp deploy promote."""
    text = [{"messages": [ex["messages"][0], {"role": "assistant", "content": "The colour is "
                                              + json.loads(ex["messages"][1]["content"])["colour"] + "."}]}
            for ex in make_examples(40, seed=3)]
    write_jsonl(project / "data" / "train.jsonl", text[:32])
    write_jsonl(project / "data" / "validation.jsonl", text[32:])
    write_jsonl(project / "data" / "test.jsonl", make_examples(200, seed=4))  # JSON: 86% of all the answers
    with_settings(project / "pipeline.yaml", deploy={"smoke_test": 3},
                  data={"validation": "data/validation.jsonl", "test": "data/test.jsonl"})
    first = invoke("run", "pipeline.yaml", "--quiet", "--set", "train.epochs=6", "--set", "evaluate.max_examples=4",
                   "--set", "deploy.smoke_test=0")  # (--set wins over the file)
    assert first.exit_code == 0, first.stderr  # deployed without the smoke test: v1 takes all the traffic
    store = project / ".ftp" / "deployments.db"
    refused = invoke("run", "pipeline.yaml", "--quiet", "--set", "train.epochs=6", "--set", "evaluate.max_examples=4",
                     "--set", "train.seed=5")
    assert refused.exit_code == 1
    assert "deploy: smoke test failed, no traffic given: tiny-model:2 " in refused.stderr
    assert "answers not in the data's format" in refused.stderr and "JSON object" in refused.stderr
    assert slots.state_of(store, "tiny-model").versions() == {"blue": 1}  # nothing recorded for v2

    reg = SqliteRegistry(project / ".ftp" / "registry.db")
    record(store, reg.get("tiny-model", 2), 0)  # v2 in the idle slot all the same (as an older ftp would)
    options = ["-p", "pipeline.yaml"]
    promote = invoke("deploy", "promote", "tiny-model", *options)
    assert promote.exit_code == 1 and promote.stderr.count("\n") == 1, promote.stderr
    assert "promote refused: smoke test failed: tiny-model:2 " in promote.stderr
    assert slots.state_of(store, "tiny-model").traffic() == {"blue": 100, "green": 0}
    forced = invoke("deploy", "promote", "tiny-model", "--skip-smoke", *options)
    assert forced.exit_code == 0 and slots.state_of(store, "tiny-model").traffic() == {"blue": 0, "green": 100}
