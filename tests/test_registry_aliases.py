"""Aliases (MLflow's semantics), promotion, rollback, the audit log, diff, tags and archive: against the
SQLite registry and, where the logic is the protocol's alone, against docs/plugin-hooks.md's
MemoryRegistry too; then the ``ftp models`` commands, at 80 columns and through a real pipe."""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ftp.cli import cli
from ftp.deploy import slots
from ftp.errors import UserError
from ftp.plugins.registry_sqlite import SqliteRegistry
from ftp.registry.history import diff, holders, move_alias, rollback
from ftp.registry import history
from ftp.registry.refs import VersionRef, parse_ref, resolve
from ftp.types import AuditEntry, DeployRequest, ModelRef, ModelVersion, Provisioned

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugin-hooks.md"
ME = getpass.getuser()


def version(n: int, name: str = "triage", **extra: Any) -> ModelVersion:
    return ModelVersion(name=name, version=0, created_at="2026-01-01T00:00:00+00:00", run_id=f"20260101-12000{n}-ab1{n}",
                        backend="local", base_model="b", model=ModelRef(kind="adapter", base="b", backend="local",
                                                                        path=Path(f"m{n}")),
                        data_sha256={"train": str(n) * 64}, hyperparameters={"lr": n / 10, "lora": {"r": 8}},
                        metrics={"test": {"fine-tuned": {"exact_match": 0.5 + n / 10}}}, pipeline_sha256="p",
                        code_version="c", **extra)


def memory_registry(where: Path) -> Any:
    """The example registry of docs/plugin-hooks.md, run as written."""
    block = DOC.read_text(encoding="utf-8").split("\n## ftp_model_registry\n", 1)[1].split("\n## ", 1)[0]
    module = types.ModuleType("memory_registry")
    code = re.findall(r"```python\n(.*?)```", block, flags=re.DOTALL)[-1]
    exec(compile(code, "plugin-hooks.md", "exec", dont_inherit=True), module.__dict__)  # noqa: S102 - our docs
    return module.ftp_model_registry(kind="memory", location=where)


@pytest.fixture(params=["sqlite", "memory"])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    registry = SqliteRegistry(tmp_path / "r.db") if request.param == "sqlite" else memory_registry(tmp_path)
    for n in (1, 2, 3):
        registry.register(version(n))
    return registry


@pytest.fixture
def sq(tmp_path: Path) -> SqliteRegistry:
    registry = SqliteRegistry(tmp_path / "r.db")
    for n in (1, 2, 3):
        registry.register(version(n))
    return registry


def moves(registry: Any) -> list[tuple[str, int | None, str | None, int | None, str]]:
    return [(e.action, e.version, e.alias, e.previous, e.reason) for e in registry.history("triage")
            if e.action != "register"]


def test_an_alias_moves_and_a_version_holds_several(reg: Any) -> None:
    assert move_alias(reg, "triage", "champion", 1) is None
    assert move_alias(reg, "triage", "champion", 2, "better") == 1
    assert move_alias(reg, "triage", "challenger", 2) is None and move_alias(reg, "triage", "prod", 2) is None
    assert reg.aliases("triage") == {"challenger": 2, "champion": 2, "prod": 2}
    assert reg.get("triage", 2).aliases == ["challenger", "champion", "prod"] and reg.get("triage", 1).aliases == []
    assert [v.aliases for v in reg.list("triage")] == [[], ["challenger", "champion", "prod"], []]
    assert move_alias(reg, "triage", "champion", 2) == 2  # already there: nothing changes, nothing is logged
    assert moves(reg) == [("alias", 1, "champion", None, ""), ("alias", 2, "champion", 1, "better"),
                          ("alias", 2, "challenger", None, ""), ("alias", 2, "prod", None, "")]
    assert {e.user for e in reg.history("triage")} == {ME}
    assert [e.action for e in reg.history("triage")][:3] == ["register"] * 3


@pytest.mark.parametrize("alias", ["latest", "LATEST", "Latest", "v1", "V12", "v007"])
def test_reserved_aliases_are_refused(sq: SqliteRegistry, alias: str) -> None:
    with pytest.raises(UserError, match="is a reserved alias"):
        sq.set_alias("triage", alias, 1)
    assert sq.aliases("triage") == {} and sq.history("triage")[-1].action == "register"


@pytest.mark.parametrize("alias", ["a.b", "", "with space", "x" * 256, "é"])
def test_malformed_aliases_are_refused(sq: SqliteRegistry, alias: str) -> None:
    with pytest.raises(UserError, match="an alias is 1 to 255 letters"):
        sq.set_alias("triage", alias, 1)


def test_aliases_of_255_characters_and_dashes_are_fine(sq: SqliteRegistry) -> None:
    assert sq.set_alias("triage", "x" * 255, 1) is None and sq.set_alias("triage", "blue-2_b", 3) is None
    assert sq.alias("triage", "x" * 255) == 1 and sq.get("triage", 3).aliases == ["blue-2_b"]


def test_an_alias_needs_a_live_version(sq: SqliteRegistry) -> None:
    with pytest.raises(UserError, match=r"no version triage v9 in .*r.db \(versions: 1, 2, 3\)"):
        sq.set_alias("triage", "champion", 9)
    sq.archive("triage", 3)
    with pytest.raises(UserError, match=r"triage:3 is archived; restore it first \(ftp models archive triage:3 --undo\)"):
        sq.set_alias("triage", "champion", 3)


def test_delete_an_alias(reg: Any) -> None:
    move_alias(reg, "triage", "champion", 2)
    reg.delete_alias("triage", "champion", "retired")
    assert reg.alias("triage", "champion") is None and reg.get("triage", 2).aliases == []
    assert moves(reg)[-1] == ("unalias", None, "champion", 2, "retired")


def test_deleting_a_missing_alias_is_a_user_error(sq: SqliteRegistry) -> None:
    with pytest.raises(UserError, match="triage@prod: no such alias"):
        sq.delete_alias("triage", "prod")


def test_reserved_forms_resolve_to_versions(sq: SqliteRegistry) -> None:
    assert (sq.alias("triage", "latest"), sq.alias("triage", "LATEST"), sq.alias("triage", "v2")) == (3, 3, 2)
    assert sq.alias("triage", "v9") is None and sq.alias("other", "latest") is None
    assert parse_ref("triage@latest") == VersionRef("triage") == parse_ref("triage:latest")
    assert parse_ref("triage@v2") == VersionRef("triage", version=2) == parse_ref("triage:v2")
    assert resolve(sq, parse_ref("triage@v2")).run_id == "20260101-120002-ab12"
    sq.set_alias("triage", "champion", 1)
    assert resolve(sq, parse_ref("triage@champion")).version == 1
    with pytest.raises(UserError, match=r"triage@prod: no alias 'prod' for triage in .*r.db \(aliases: champion -> v1\); "
                                        r"set it with ftp models alias triage@prod VERSION"):
        resolve(sq, parse_ref("triage@prod"))
    with pytest.raises(UserError, match="the version must be a number from 1"):
        parse_ref("triage@v0")


def test_rollback_walks_back_one_holder_at_a_time(reg: Any) -> None:
    for n in (1, 2, 3):
        move_alias(reg, "triage", "champion", n, f"promote {n}")
    assert str(rollback(reg, "triage", "champion", "canary errors")) == "triage@champion: v3 -> v2"
    assert str(rollback(reg, "triage", "champion")) == "triage@champion: v2 -> v1"
    with pytest.raises(UserError, match="triage@champion: no earlier version to roll back to "
                                        r"\(v1 is the first that held it"):
        rollback(reg, "triage", "champion")
    move_alias(reg, "triage", "champion", 3, "again")
    assert rollback(reg, "triage", "champion").to_version == 1  # the undone v2 is not on the stack any more
    assert moves(reg) == [("alias", 1, "champion", None, "promote 1"), ("alias", 2, "champion", 1, "promote 2"),
                          ("alias", 3, "champion", 2, "promote 3"), ("rollback", 2, "champion", 3, "canary errors"),
                          ("rollback", 1, "champion", 2, ""), ("alias", 3, "champion", 1, "again"),
                          ("rollback", 1, "champion", 3, "")]
    assert reg.alias("triage", "champion") == 1 and {e.user for e in reg.history("triage")} == {ME}


def test_rollback_passes_over_archived_versions_and_restores_a_deleted_alias(reg: Any) -> None:
    for n in (1, 2, 3):
        move_alias(reg, "triage", "champion", n)
    reg.archive("triage", 2, True, "bad data")
    back = rollback(reg, "triage", "champion")
    assert (back.from_version, back.to_version, back.skipped) == (3, 1, [2])
    assert str(back) == "triage@champion: v3 -> v1 (passed over v2: archived or gone)"
    move_alias(reg, "triage", "prod", 3)
    reg.delete_alias("triage", "prod", "oops")
    assert str(rollback(reg, "triage", "prod", "undo the delete")) == "triage@prod: no version -> v3"
    with pytest.raises(UserError, match="triage@staging: no earlier version to roll back to .it was never set"):
        rollback(reg, "triage", "staging")


def entry(action: str, version: int | None, previous: int | None, reason: str = "") -> AuditEntry:
    return AuditEntry(name="t", at="t", user="u", action=action, version=version, alias="a", previous=previous,
                      reason=reason)


def test_the_holder_stack_from_the_log() -> None:
    assert holders([entry("alias", 1, None), entry("alias", 2, 1), entry("rollback", 1, 2)], "a") == [1]
    assert holders([entry("alias", 3, 2)], "a") == [2, 3]  # the log began after v2 took the alias
    assert holders([entry("alias", 1, None), entry("unalias", None, 1), entry("alias", 2, None)], "a") == [1, None, 2]
    # a rollback that passed over v2 pops it too; a registry may keep the marker in the reason instead
    assert holders([entry("alias", 1, None), entry("alias", 2, 1), entry("alias", 3, 2),
                    entry("alias", 1, 3, "rollback: bad")], "a") == [1]
    assert history.split_rollback("rollback: bad") == (True, "bad") and history.split_rollback("rollbacks") == (False, "rollbacks")


def compared(n: int, low: float, high: float) -> ModelVersion:
    comparisons = [{"metric": "exact_match", "candidate": "fine-tuned", "baseline": "base", "difference": (low + high) / 2,
                    "low": low, "high": high}]
    return version(n, lineage={"seed": 7, "evaluation": {"comparisons": comparisons,
                                                         "metrics": {"fine-tuned": {"exact_match": 0.0}}}})


def test_diff_shows_what_differs_with_intervals() -> None:
    a, b = compared(1, 0.05, 0.15), compared(2, 0.10, 0.30)
    changes = diff(a, b)
    assert [(c.section, c.key, c.a, c.b) for c in changes] == [
        ("metrics", "test.fine-tuned.exact_match", 0.6, 0.7), ("hyperparameters", "lr", 0.1, 0.2),
        ("data", "train", "1" * 64, "2" * 64), ("model", "artifact", "m1", "m2"),
        ("model", "run_id", "20260101-120001-ab11", "20260101-120002-ab12")]
    em = changes[0]
    assert em.delta == pytest.approx(0.1) and changes[2].delta is None
    assert (em.a_interval, em.b_interval) == ("vs base +0.1000 [+0.0500, +0.1500]", "vs base +0.2000 [+0.1000, +0.3000]")
    every = {(c.section, c.key) for c in diff(a, b, everything=True)}
    assert {("hyperparameters", "lora.r"), ("lineage", "seed"), ("model", "base_model")} <= every
    assert ("lineage", "evaluation.metrics.fine-tuned.exact_match") not in every  # already under metrics


# --- the commands --------------------------------------------------------------------------------


def run(*args: str, columns: int = 80) -> Any:
    return CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, ["models", *args], catch_exceptions=False)


@pytest.fixture
def db(sq: SqliteRegistry) -> str:
    return sq.location


def test_alias_promote_rollback_history_from_the_command_line(db: str) -> None:
    assert run("alias", "triage@champion", "1", "--registry", db).output == "triage@champion -> v1 (new alias)\n"
    assert run("promote", "triage:2", "--reason", "beats v1 on the canary by a wide margin, see the ticket",
               "--registry", db).output == "triage@champion -> v2 (was v1)\n"
    assert run("promote", "triage@champion", "--alias", "prod", "--registry", db).output == "triage@prod -> v2 (new alias)\n"
    assert run("alias", "triage@champion", "--registry", db).output == "triage@champion -> v2\n"
    assert run("rollback", "triage", "--reason", "errors", "--registry", db).output == "triage@champion: v2 -> v1\n"
    assert run("alias", "triage@prod", "--delete", "--registry", db).output == "triage@prod deleted (was v2)\n"
    shown = run("history", "triage", "--registry", db).output.splitlines()
    assert shown[0].split() == ["AT", "(UTC)", "USER", "ACTION", "CHANGE", "REASON"] and all(len(x) <= 80 for x in shown)
    rows = [line.split(None, 4)[3:] for line in shown[1:] if line[:2] == "20"]
    assert [r[0] for r in rows] == ["register"] * 3 + ["alias", "alias", "alias", "rollback", "unalias"]
    assert [re.split(r"\s{2,}", r[1])[0] for r in rows[3:]] == [
        "champion none -> v1", "champion v1 -> v2", "prod none -> v2", "champion v2 -> v1", "prod v2 -> none"]
    at = shown.index(next(line for line in shown if "beats v1" in line))
    column = shown[at].index("beats v1")
    rest = [line for line in shown[at + 1:at + 4] if line.startswith(" " * column)]
    assert " ".join([shown[at][column:], *(line.strip() for line in rest)]) == \
        "beats v1 on the canary by a wide margin, see the ticket"  # the reason wraps under its own column
    listed = json.loads(run("history", "triage", "--alias", "champion", "--json", "--registry", db).output)
    assert [(e["action"], e["version"], e["previous"], e["user"]) for e in listed] == [
        ("alias", 1, None, ME), ("alias", 2, 1, ME), ("rollback", 1, 2, ME)]


@pytest.mark.parametrize("args, message", [
    (("alias", "triage@latest", "2"), "'latest' is a reserved alias"),
    (("alias", "triage", "2"), "triage: expected NAME@ALIAS"),
    (("alias", "triage@champion", "x"), "triage:x: the version must be a number from 1"),
    (("promote", "triage"), "triage: name the version, e.g. triage:1 or triage@champion"),
    (("promote", "triage:7"), "no model 'triage:7'"),
    (("show", "triage@prod"), "no alias 'prod' for triage"),
    (("rollback", "triage"), "triage@champion: no earlier version to roll back to"),
    (("tag", "triage:1", "novalue"), "'novalue': expected KEY=VALUE"),
    (("tag", "triage:1", "--delete", "owner"), "triage:1 has no tag 'owner'"),
])
def test_bad_input_is_one_line_and_exit_2(db: str, args: tuple[str, ...], message: str) -> None:
    result = run(*args, "--registry", db)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_tags_set_and_delete(db: str, sq: SqliteRegistry) -> None:
    assert run("tag", "triage:1", "owner=ml-team", "ticket=ML-7", "--registry", db).output == \
        "triage:1 tags: owner=ml-team, ticket=ML-7\n"
    assert run("tag", "triage:1", "--delete", "owner", "--registry", db).output == "triage:1 tags: ticket=ML-7\n"
    assert sq.get("triage", 1).tags == {"ticket": "ML-7"}
    assert [(e.action, e.details) for e in sq.history("triage")][-3:] == [
        ("tag", {"key": "owner", "value": "ml-team", "deleted": False}),
        ("tag", {"key": "ticket", "value": "ML-7", "deleted": False}),
        ("tag", {"key": "owner", "value": None, "deleted": True})]


def deploy(store: Path, v: ModelVersion, traffic: int = 100) -> None:
    request = DeployRequest(version=v, strategy="blue-green", traffic_new=traffic, store=store)
    slots.record(request, Provisioned(backend="local"), v.run_id)


def test_archive_is_refused_for_a_served_or_aliased_version(db: str, sq: SqliteRegistry, tmp_path: Path) -> None:
    store = tmp_path / "deployments.db"
    deploy(store, sq.get("triage", 1))
    deploy(store, sq.get("triage", 2), traffic=0)  # the standby slot: still what a rollback would route to
    for n, slot in ((1, "blue 100%"), (2, "green 0%")):
        refused = run("archive", f"triage:{n}", "--deployments", str(store), "--registry", db)
        assert refused.exit_code == 2 and f"triage:{n} is deployed (slot {slot} in {store})" in refused.stderr
    sq.set_alias("triage", "challenger", 3)
    held = run("archive", "triage:3", "--deployments", str(store), "--registry", db)
    assert held.exit_code == 2 and "triage:3 holds alias challenger; move it" in held.stderr
    sq.delete_alias("triage", "challenger")
    done = run("archive", "triage:3", "--reason", "leaky data", "--deployments", str(store), "--registry", db)
    assert done.output == "triage:3 archived\n" and sq.get("triage", 3).archived
    assert run("list", "--registry", db).output.splitlines()[3].split()[:3] == ["triage", "3", "(archived)"]
    assert run("alias", "triage@champion", "3", "--registry", db).exit_code == 2
    assert run("archive", "triage:3", "--undo", "--registry", db).output == "triage:3 not archived\n"
    assert [(e.action, e.version, e.reason) for e in sq.history("triage")][-2:] == [
        ("archive", 3, "leaky data"), ("unarchive", 3, "")]
    assert slots.live_versions(store, "triage") == {1: {"blue": 100}, 2: {"green": 0}}
    assert slots.live_versions(tmp_path / "none.db", "triage") == {}


def test_diff_from_the_command_line(tmp_path: Path) -> None:
    reg = SqliteRegistry(tmp_path / "r.db")
    for n, low, high in ((1, 0.05, 0.15), (2, 0.10, 0.30)):
        v = compared(n, low, high)
        reg.register(v.model_copy(update={"model": v.model.model_copy(update={"path": Path(f"/srv/models/ticket-triage/adapter-{n}")})}))
    out = run("diff", "triage:1", "triage:2", "--registry", reg.location).output
    assert out.splitlines() == [
        "a = triage:1   b = triage:2", "metrics",
        "  test.fine-tuned.exact_match  0.6000 -> 0.7000  (+0.1000)",
        "      a vs base +0.1000 [+0.0500, +0.1500]", "      b vs base +0.2000 [+0.1000, +0.3000]",
        "hyperparameters", "  lr                           0.1000 -> 0.2000  (+0.1000)",
        "data", "  train                        111111111111... -> 222222222222...",
        "model", "  artifact",  # too long for one line: a, then b
        "      a: /srv/models/ticket-triage/adapter-1", "      b: /srv/models/ticket-triage/adapter-2",
        "  run_id                       20260101-120001-ab11 -> 20260101-120002-ab12"]
    assert "lora.r                       8 (same)" in run("diff", "triage:1", "triage:2", "--all", "--registry",
                                                         reg.location, columns=120).output
    data = json.loads(run("diff", "triage:1", "triage@latest", "--json", "--registry", reg.location).output)
    assert (data["a"], data["b"], data["changes"][2]) == ("triage:1", "triage:2", {
        "section": "data", "key": "train", "a": "1" * 64, "b": "2" * 64, "delta": None, "a_interval": None,
        "b_interval": None})
    assert run("diff", "triage:1", "triage:1", "--registry", reg.location).output.startswith(
        "triage:1 and triage:1: nothing differs")


def long_registry(tmp_path: Path) -> SqliteRegistry:
    reg = SqliteRegistry(tmp_path / "long.db")
    for n in (1, 2):
        metrics = {"exact_match": 0.8125, "token_f1": 0.9, "rouge_l": 0.85, "chrf": 61.25, "json_parse_rate": 1.0}
        reg.register(version(n, name="ticket-triage-long-name").model_copy(
            update={"metrics": {"test": {"fine-tuned": metrics}}}))
    reg.set_alias("ticket-triage-long-name", "champion", 1)
    reg.set_alias("ticket-triage-long-name", "challenger", 1)
    return reg


def check_list(text: str) -> None:
    """80 columns, nothing cut: the metrics go on the lines below each version when they cannot fit."""
    assert all(len(line) <= 80 for line in text.splitlines()), [line for line in text.splitlines() if len(line) > 80]
    assert text.splitlines() == [
        "NAME                     VER  ALIASES              RUN                   BACKEND",
        "    TEST (fine-tuned)",
        "ticket-triage-long-name  1    challenger           20260101-120001-ab11  local",
        "                              champion",
        "    chrf 61.2500, exact_match 0.8125, json_parse_rate 1.0000, rouge_l 0.8500",
        "    token_f1 0.9000",
        "ticket-triage-long-name  2    -                    20260101-120002-ab12  local",
        "    chrf 61.2500, exact_match 0.8125, json_parse_rate 1.0000, rouge_l 0.8500",
        "    token_f1 0.9000"]


def test_wide_terminals_get_one_line_per_version(tmp_path: Path) -> None:
    lines = run("list", "--registry", long_registry(tmp_path).location, columns=200).output.splitlines()
    assert lines[1] == ("ticket-triage-long-name  1    challenger, champion  20260101-120001-ab11  local    "
                        "chrf 61.2500, exact_match 0.8125, json_parse_rate 1.0000, rouge_l 0.8500, token_f1 0.9000")
    assert len(lines) == 3


def test_list_and_show_fit_80_columns(tmp_path: Path) -> None:
    reg = long_registry(tmp_path)
    check_list(run("list", "--registry", reg.location).output)
    shown = run("show", "ticket-triage-long-name@champion", "--registry", reg.location).output
    assert all(len(line) <= 80 for line in shown.splitlines())
    assert "aliases:\n- challenger\n- champion\n" in shown and "version: 1\n" in shown
    listed = json.loads(run("list", "ticket-triage-long-name", "--json", "--registry", reg.location).output)
    assert [(v["version"], v["aliases"]) for v in listed] == [(1, ["challenger", "champion"]), (2, [])]
    assert run("list", "other", "--registry", reg.location).output == f"no model versions in {reg.location}\n"


def test_list_through_a_real_pipe(tmp_path: Path) -> None:
    reg = long_registry(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    piped = subprocess.run([sys.executable, "-m", "ftp", "models", "list", "--registry", reg.location],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=120, check=True)
    check_list(piped.stdout)
    history_out = subprocess.run([sys.executable, "-m", "ftp", "models", "history", "ticket-triage-long-name",
                                  "--registry", reg.location], capture_output=True, text=True, env=env, timeout=120)
    assert history_out.returncode == 0 and "challenger none -> v1" in history_out.stdout


def test_a_pipeline_file_names_the_registry_and_the_deployments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "a"}, '
                                                   '{"role": "assistant", "content": "b"}]}\n', encoding="utf-8")
    (tmp_path / "pipeline.yaml").write_text(
        "name: tiny\ndata:\n  train: data/train.jsonl\nmodel:\n  base: builtin:gemma-3-270m\n"
        "register:\n  store: reg/registry.db\ndeploy:\n  store: dep/deployments.db\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path / "data")  # the file's paths resolve against its own folder, not the CWD
    reg = SqliteRegistry(tmp_path / "reg" / "registry.db")
    reg.register(version(1))
    deploy(tmp_path / "dep" / "deployments.db", reg.get("triage", 1))
    pipeline = str(tmp_path / "pipeline.yaml")
    assert run("promote", "triage:1", "-p", pipeline).output == "triage@champion -> v1 (new alias)\n"
    assert reg.alias("triage", "champion") == 1
    reg.delete_alias("triage", "champion")
    refused = run("archive", "triage:1", "-p", pipeline)
    assert refused.exit_code == 2 and "triage:1 is deployed (slot blue 100% in" in refused.stderr


def test_the_register_step_sets_the_files_alias_and_refuses_a_reserved_one(project: Path) -> None:
    from conftest import invoke

    bad = invoke("run", "pipeline.yaml", "--set", "register.alias=latest")
    assert bad.exit_code == 2 and "register.alias" in bad.stderr and "reserved" in bad.stderr
    ok = invoke("run", "pipeline.yaml", "--quiet", "--set", "register.alias=challenger")
    assert ok.exit_code == 0, ok.output + ok.stderr
    from ftp.plugins.registry_sqlite import SqliteRegistry

    reg = SqliteRegistry(project / ".ftp" / "registry.db")
    assert reg.alias("tiny-model", "challenger") == 1
    # the register step's alias, then deploy.alias (champion) following the version that took all the traffic
    assert [(e.action, e.alias) for e in reg.history("tiny-model")] == [("register", None), ("alias", "challenger"),
                                                                         ("alias", "champion")]
