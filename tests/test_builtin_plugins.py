"""Built-in plugins on their own: format validation, split, metrics, gate, registry, deployments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_examples, write_jsonl

from ftp.data.files import dataset_ref
from ftp.deploy import slots as deploy_slots
from ftp.plugins import gate, metrics, split
from ftp.plugins.registry_sqlite import SqliteRegistry
from ftp.types import EvalReport, ModelRef, ModelVersion


def codes(path: Path) -> list[tuple[int | None, str]]:
    """Error codes and lines from every data check, through the real plugin manager."""
    from ftp.data.check import check_data
    from ftp.hooks import Hooks
    from ftp.plugin_manager import get_plugin_manager
    from ftp.types import DataBundle

    report = check_data(Hooks(get_plugin_manager()), DataBundle(train=dataset_ref(path, "train")),
                          {"validate": {"quantity": {"enabled": False}}}, "local")
    return [(f.line, f.code) for f in report.sorted_findings() if f.severity == "error"]


def test_format_findings_name_line_and_problem(tmp_path: Path) -> None:
    rows = [
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}',
        "",
        '{"messages": [{"role": "user", "content": "hi"}]}',
        '{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "assistant", "content": "c"}]}',
        '{"messages": [{"role": "robot", "content": "a"}, {"role": "assistant", "content": 5}]}',
        '{"input": {}, "preferred_output": [], "non_preferred_output": []}',
        '[1, 2]',
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 2}]}',
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}',
        '{"messages": [{"role": "user", "content": "a"',
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert codes(path) == [(3, "no-assistant"), (4, "system-not-first"), (5, "bad-role"), (5, "bad-content"),
                           (6, "preference-data"), (7, "not-object"), (8, "bad-weight"), (9, "last-not-assistant"),
                           (10, "invalid-json")]


def test_invalid_utf8_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"messages": []}\n\xff\xfe broken\n')
    assert ("not-utf8" in [c for _, c in codes(path)])


def test_split_is_deterministic_disjoint_and_group_aware(tmp_path: Path) -> None:
    rows = make_examples(100)
    rows += [rows[0]] * 5  # duplicates of one prompt must stay together
    src = write_jsonl(tmp_path / "all.jsonl", rows)
    a = split.ftp_split(dataset=dataset_ref(src), ratios=(0.8, 0.1, 0.1), seed=7, out_dir=tmp_path / "a")
    b = split.ftp_split(dataset=dataset_ref(src), ratios=(0.8, 0.1, 0.1), seed=7, out_dir=tmp_path / "b")
    c = split.ftp_split(dataset=dataset_ref(src), ratios=(0.8, 0.1, 0.1), seed=8, out_dir=tmp_path / "c")
    assert [r.sha256 for r in (a.train, a.validation, a.test)] == [r.sha256 for r in (b.train, b.validation, b.test)]
    assert a.test.sha256 != c.test.sha256
    assert a.train.examples + a.validation.examples + a.test.examples == 105
    assert abs(a.test.examples - 10) <= 6 and abs(a.validation.examples - 10) <= 6
    keys = {}
    for part in ("train", "validation", "test"):
        for line in getattr(a, part).path.read_text().splitlines():
            keys.setdefault(split.prompt_key(json.loads(line)), set()).add(part)
    assert all(len(parts) == 1 for parts in keys.values())
    manifest = json.loads(a.manifest.read_text())
    assert manifest["files"]["test"]["sha256"] == a.test.sha256 and manifest["seed"] == 7


@pytest.mark.parametrize("pred, ref, same", [
    ('{"a": 1, "b": "x"}', '{"b": "x",  "a": 1}', True),
    ("  hello   world ", "hello world", True),
    ('{"a": 1}', '{"a": 2}', False),
])
def test_exact_match_compares_json_by_value(pred: str, ref: str, same: bool) -> None:
    assert metrics.exact_match([pred], [ref]) == (1.0 if same else 0.0)


def report(ft: dict, base: dict) -> EvalReport:
    return EvalReport(metrics={"fine-tuned": ft, "base": base}, higher_is_better={"exact_match": True, "loss": False}, n=10)


def test_gate_direction_follows_the_metric() -> None:
    r = report({"exact_match": 0.6, "loss": 0.5}, {"exact_match": 0.1, "loss": 2.0})
    checks = gate.ftp_gate(report=r, thresholds={"exact_match": {"min_gain_over_base": 0.05, "min": 0.5},
                                                  "loss": {"min_gain_over_base": 1.0, "max": 1.0}}, confidence=None)
    assert all(c.passed for c in checks) and len(checks) == 4
    bad = gate.ftp_gate(report=report({"exact_match": 0.12}, {"exact_match": 0.1}),
                        thresholds={"exact_match": {"min_gain_over_base": 0.05}}, confidence=None)
    assert not bad[0].passed and "gain over base +0.0200" in bad[0].reason


def version(run_id: str, name: str = "m") -> ModelVersion:
    return ModelVersion(name=name, version=0, created_at="t", run_id=run_id, backend="local", base_model="b",
                        model=ModelRef(kind="adapter", base="b", backend="local", path=Path("runs/m/1/model")),
                        data_sha256={"train": "x"}, hyperparameters={"r": 8}, metrics={"test": {}},
                        pipeline_sha256="p", code_version="c")


def test_a_registry_written_before_model_references_reads_as_references(tmp_path: Path) -> None:
    """Older registries stored a bare ``artifact`` (no ``model`` column); their versions come back with the
    reference the location implies, and new versions go in beside them."""
    import sqlite3

    full = tmp_path / "runs" / "m" / "1" / "model"
    full.mkdir(parents=True)
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute("CREATE TABLE versions (name TEXT NOT NULL, version INTEGER NOT NULL, created_at TEXT NOT NULL, "
                   "run_id TEXT NOT NULL, backend TEXT NOT NULL, base_model TEXT NOT NULL, artifact TEXT NOT NULL, "
                   "data_sha256 TEXT NOT NULL, hyperparameters TEXT NOT NULL, metrics TEXT NOT NULL, "
                   "pipeline_sha256 TEXT NOT NULL, code_version TEXT NOT NULL, PRIMARY KEY (name, version))")
        row = ("t", "run", "{}", '{"method": "full"}', "{}", "p", "c")
        db.execute("INSERT INTO versions VALUES ('m', 1, ?, ?, 'local', 'b', ?, ?, ?, ?, ?, ?)", (row[0], row[1], str(full), *row[2:]))
        db.execute("INSERT INTO versions VALUES ('c', 1, 't', 'run2', 'azure', 'gpt', 'gpt-ft:ckpt', '{}', '{}', '{}', 'p', 'c')")
    reg = SqliteRegistry(tmp_path / "old.db")
    old = reg.get("m", 1)
    assert old is not None and old.model == ModelRef(kind="full", base="b", backend="local", path=full)
    cloud = reg.get("c")
    assert cloud is not None and (cloud.model.kind, cloud.model.cloud_id, cloud.artifact) == ("cloud", "gpt-ft:ckpt", "gpt-ft:ckpt")
    assert reg.register(version("run3")).version == 2
    assert reg.get("m", 2) == version("run3").model_copy(update={"version": 2})


def test_registry_numbers_versions_and_is_idempotent_per_run(tmp_path: Path) -> None:
    reg = SqliteRegistry(tmp_path / "r.db")
    assert reg.list() == [] and not (tmp_path / "r.db").exists()
    assert reg.register(version("run1")).version == 1
    assert reg.register(version("run2")).version == 2
    assert reg.register(version("run1")).version == 1  # a resumed run does not register twice
    assert reg.register(version("run3", name="other")).version == 1
    assert [v.version for v in reg.list("m")] == [1, 2]
    assert reg.get("m").run_id == "run2" and reg.get("m", 1).hyperparameters == {"r": 8}


def test_blue_green_plan() -> None:
    assert deploy_slots.plan({}, 1, "blue-green", 10) == ("blue", {"blue": (1, 100)})
    slot, slots = deploy_slots.plan({"blue": (1, 100)}, 2, "blue-green", 10)
    assert slot == "green" and slots == {"blue": (1, 90), "green": (2, 10)}
    slot, slots = deploy_slots.plan({"blue": (1, 10), "green": (2, 90)}, 3, "blue-green", 25)
    assert slot == "blue" and slots == {"green": (2, 75), "blue": (3, 25)}
    assert deploy_slots.plan({"blue": (1, 90), "green": (2, 10)}, 2, "blue-green", 10)[0] == "green"
    assert deploy_slots.plan({"blue": (1, 100)}, 2, "replace", 10) == ("blue", {"blue": (2, 100)})


def test_near_duplicate_inputs_land_in_one_split(tmp_path: Path) -> None:
    rows = make_examples(200)
    base = "firmware update " + " ".join(f"word{i}" for i in range(80))  # one-word edits keep Jaccard near 0.93
    variants = [base, base.replace("word40", "other"), base.replace("word7", "else"), base + " thanks"]
    rows += [{"messages": [{"role": "user", "content": v}, {"role": "assistant", "content": "bug"}]} for v in variants]
    src = write_jsonl(tmp_path / "all.jsonl", rows)
    for seed in range(8):  # by chance all four would share a split for few seeds; grouped, for all
        result = split.ftp_split(dataset=dataset_ref(src), ratios=(0.6, 0.2, 0.2), seed=seed, out_dir=tmp_path / "s")
        counts = [getattr(result, p).path.read_text().count("firmware update") for p in ("train", "validation", "test")]
        assert sorted(counts) == [0, 0, 4], (seed, counts)
