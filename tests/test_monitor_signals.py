"""The monitor's parts against hand-computed values: the request log's second schema, prompt features,
windows, exact percentiles, Wilson and Newcombe intervals, feedback joined to requests, the retraining
rules with their consecutive windows and cooldown, and the rollout comparison."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ftp.config.monitor_settings import AutoRollbackSettings, RetrainSettings, seconds
from ftp.deploy.slots import State
from ftp.errors import UserError
from ftp.monitor import decisions
from ftp.monitor.features import INVALID, answer_checker, answer_sha256, prompt_features
from ftp.monitor.feedback import Feedback, add_feedback, import_feedback, labels, read_feedback
from ftp.monitor.quality import difference, wilson
from ftp.monitor.rollout import compare, reasons, rollout_of
from ftp.monitor.service import percentiles, service_rows
from ftp.monitor.triggers import Facts, cooldown_until, decide, evaluate
from ftp.monitor.windows import Period
from ftp.serve.request_log import MIGRATIONS, RequestLog, RequestRecord, read_requests
from ftp.types import AnswerFormat

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def row(**given: Any) -> dict[str, Any]:
    base = {"ts": "2026-12-01T12:30:00.000+00:00", "request_id": "r", "slot": "blue", "model_version": 1,
            "mirrored": 0, "status": 200, "latency_ms": 100.0, "ttft_ms": None, "prompt_tokens": 10,
            "completion_tokens": 5, "output_sha256": None, "endpoint": "m"}
    return {**base, **given}


# --- the log's second schema ---------------------------------------------------------------------


def test_a_first_schema_log_is_read_and_then_migrated(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    for statement in MIGRATIONS[1]:
        db.execute(statement)
    db.execute("INSERT INTO schema_version VALUES (1, 'then')")
    db.execute("INSERT INTO requests (ts, request_id, model, status, latency_ms) VALUES "
               "('2026-12-01T12:00:00.000+00:00', 'old', 'm', 200, 5)")
    db.commit()
    db.close()
    (old,) = read_requests(path)  # a reader does not migrate: the new columns read as None
    assert old["request_id"] == "old" and old["prompt_words"] is None and old["answer_label"] is None
    log = RequestLog(path, log_content=False, retention_days=1e6, max_rows=10_000)
    log.append(RequestRecord(request_id="new", model="m", status=200, latency_ms=1.0, prompt_words=4,
                             answer_in_format=True, answer_label="red"))
    log.close()
    rows = {r["request_id"]: r for r in read_requests(path)}
    assert rows["new"]["prompt_words"] == 4 and rows["new"]["answer_in_format"] == 1 and rows["new"]["answer_label"] == "red"
    assert [v for (v,) in sqlite3.connect(path).execute("SELECT version FROM schema_version")] == [1, 2]


# --- features, windows, percentiles ---------------------------------------------------------------


def test_prompt_features_by_hand() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Héllo 42!"}]
    f = prompt_features(messages)
    # non-space characters: Be brief. Héllo42!  -> B e b r i e f . H é l l o 4 2 ! = 16, letters 12
    assert f["prompt_nonletter"] == pytest.approx(1 - 12 / 16, abs=1e-6)
    assert f["prompt_nonascii"] == pytest.approx(1 / 12, abs=1e-6)  # é among the 12 letters
    assert f["prompt_words"] == 4 and f["prompt_turns"] == 1  # be, brief, héllo, 42; one user turn
    assert f["prompt_chars"] == len(json.dumps([{"content": "Be brief.", "role": "system"},
                                                 {"content": "Héllo 42!", "role": "user"}],
                                                ensure_ascii=False, separators=(",", ":")))


def test_answer_checks_follow_the_label_set_and_hash_like_exact_match() -> None:
    check = answer_checker(AnswerFormat(kind="label", labels=["Billing", "Outage"]))
    assert check(" billing ") == (True, "Billing") and check("refund") == (False, INVALID)
    assert answer_checker(None)("x") == (None, None)
    assert answer_sha256("Outage") == answer_sha256(" outage ")  # basic normalisation: case, outer space
    assert answer_sha256("Outage") != answer_sha256("Outages")


def test_windows_end_at_until_and_percentiles_interpolate() -> None:
    period = Period.ending(T0, seconds("1h"), seconds("20m"))
    assert period.labels() == ["2026-12-01T11:00:00.000+00:00", "2026-12-01T11:20:00.000+00:00",
                               "2026-12-01T11:40:00.000+00:00"]
    assert period.index("2026-12-01T11:19:59.999+00:00") == 0 and period.index("2026-12-01T11:59:00Z") == 2
    assert period.index("2026-12-01T11:20:00Z") == 1  # a window holds its start
    assert period.index("2026-12-01T12:00:00Z") is None and period.index("2026-12-01T10:59:00Z") is None
    # 1..100: p50 at rank 49.5 -> 50.5; p95 at 94.05 -> 95.05; p99 at 98.01 -> 99.01
    assert percentiles([float(v) for v in range(100, 0, -1)]) == {"p50": 50.5, "p95": 95.05, "p99": 99.01}
    rows = [row(ts="2026-12-01T11:05:00Z", status=500), row(ts="2026-12-01T11:06:00Z", latency_ms=300.0),
            row(ts="2026-12-01T11:45:00Z", slot="green", model_version=2, completion_tokens=12)]
    windowed, totals = service_rows(rows, period)
    first = windowed[0]
    assert (first["requests"], first["errors"], first["error_rate"], first["latency_ms"]["p50"]) == (2, 1, 0.5, 300.0)
    assert first["tokens_per_s"] == round(5 / 1200, 3)
    assert [(t["slot"], t["requests"]) for t in totals] == [("blue", 2), ("green", 1)]


# --- intervals --------------------------------------------------------------------------------------


def test_wilson_and_newcombe_match_published_values() -> None:
    low, high = wilson(8, 10)  # Wilson (1927) as in Newcombe (1998), table I: 0.4902, 0.9433
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    d, low, high = difference(56, 70, 48, 80)  # Newcombe (1998), method 10: 0.2000, 0.0524 to 0.3339
    assert (round(d, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)
    assert wilson(0, 0) == (0.0, 1.0)


# --- feedback ---------------------------------------------------------------------------------------


def test_feedback_is_stored_joined_and_checked(tmp_path: Path) -> None:
    log = tmp_path / "requests.db"
    add_feedback(log, [Feedback(request_id="a", name="expected", value="Outage"),
                       Feedback(request_id="b", name="correct", value=True),
                       Feedback(request_id="b", name="expected", value="nothing like it"),
                       Feedback(request_id="c", name="score", value=0.25),
                       Feedback(request_id="d", name="comment", value="fine")])
    stored = read_feedback(log)
    assert [f["name"] for f in stored] == ["expected", "correct", "expected", "score", "comment"]
    requests = [row(request_id="a", output_sha256=answer_sha256("outage")), row(request_id="b"),
                row(request_id="c"), row(request_id="d"), row(request_id="e")]
    got = {x.request["request_id"]: x for x in labels(requests, stored)}
    assert got["a"].correct is True and got["a"].expected == "Outage"
    assert got["b"].correct is True  # an explicit verdict wins over an expected answer
    assert got["c"].correct is False and got["c"].score == 0.25
    assert "d" not in got and "e" not in got  # a comment is kept, not a verdict


def test_a_bad_feedback_line_names_file_and_line_and_stores_nothing(tmp_path: Path) -> None:
    log, file = tmp_path / "requests.db", tmp_path / "labels.jsonl"
    file.write_text('{"request_id": "a", "name": "correct", "value": true}\n'
                    '{"request_id": "b", "name": "score", "value": 3}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"labels.jsonl:2: score: value must be a number from 0 to 1"):
        import_feedback(log, file)
    assert read_feedback(log) == []
    file.write_text('{"name": "expected", "value": "x"}\n', encoding="utf-8")
    with pytest.raises(UserError, match="give request_id .* or messages"):
        import_feedback(log, file)
    file.write_text('{"messages": [{"role": "user", "content": "hi"}], "name": "expected", "value": "x"}\n')
    assert import_feedback(log, file) == 1


# --- triggers ---------------------------------------------------------------------------------------


class Version:
    version, created_at, base_model, backend = 1, "2026-11-01T00:00:00+00:00", "gpt-4o-mini-2024-07-18", "azure"


def facts(**given: Any) -> Facts:
    base: dict[str, Any] = dict(live=Version(), champion_accuracy=None, new_examples=0, retirement=None,
                                today=T0.date(), now=T0)
    return Facts(**{**base, **given})


def drift_summary(pattern: list[list[str]]) -> dict[str, Any]:
    windows = [f"2026-12-01T1{i}:00:00.000+00:00" for i in range(len(pattern))]
    results = [{"window": w, "feature": f, "verdict": "drift"} for w, found in zip(windows, pattern) for f in found]
    return {"windows": windows, "drift": {"results": results}, "service": []}


def test_drift_fires_only_on_consecutive_windows_with_enough_features() -> None:
    rule = RetrainSettings.model_validate({"drift": {"consecutive_windows": 2, "any_of": 2}})
    fired = lambda pattern: evaluate(rule, drift_summary(pattern), [], facts())[0].fired  # noqa: E731
    assert fired([[], ["a", "b"], ["a", "c"]]) is True
    assert fired([["a", "b"], [], ["a", "c"]]) is False  # not consecutive
    assert fired([["a"], ["a", "b"], ["c"]]) is False  # one feature in the last window: fewer than any_of
    assert fired([["a", "b"]]) is False  # one window only


def test_schedule_new_data_and_the_azure_retirement_date() -> None:
    from ftp.hooks import default_hooks

    retirement = default_hooks().base_retirement("azure", "gpt-4o-mini-2024-07-18")
    assert retirement == date(2027, 4, 1)  # existing customers' last training day (backends/azure/retirement.py)
    assert default_hooks().base_retirement("local", "anything") is None
    settings = RetrainSettings.model_validate({"schedule": {"max_days": 20}, "new_data": {"min_examples": 5},
                                               "base_retirement": {"within_days": 150}})
    got = {r.rule: r for r in evaluate(settings, drift_summary([]), [], facts(new_examples=5, retirement=retirement))}
    assert got["schedule"].fired and got["schedule"].value == 30.5  # 2026-11-01 to 2026-12-01 12:00
    assert got["new_data"].fired
    assert got["base_retirement"].value == 121 and got["base_retirement"].fired  # days to 2027-04-01
    assert not evaluate(settings, drift_summary([]), [], facts(new_examples=4))[0].fired  # new_data comes first


def test_the_cooldown_holds_a_second_trigger(tmp_path: Path) -> None:
    log = tmp_path / "requests.db"
    settings = RetrainSettings.model_validate({"new_data": {"min_examples": 1}, "cooldown": "2h"})
    results = evaluate(settings, drift_summary([]), [], facts(new_examples=3))
    assert decide(settings, results, [], T0)["fired"] is True
    decisions.record(log, "m", "retrain", True, "started", {"reasons": ["new_data"]})
    earlier = decisions.read(log, "m")
    started = datetime.fromisoformat(earlier[0]["at"])
    assert cooldown_until(settings, earlier) == started + timedelta(hours=2)
    held = decide(settings, results, earlier, started + timedelta(minutes=30))
    assert held["fired"] is False and held["held_by_cooldown"] is True and "cooldown" in held["reasons"][-1]
    assert decide(settings, results, earlier, started + timedelta(hours=3))["fired"] is True
    assert decide(RetrainSettings(), [], [], T0) == {"fired": False, "held_by_cooldown": False,
                                                     "reasons": ["retrain_when: has no rules"], "rules": []}


# --- the rollout --------------------------------------------------------------------------------------


def test_a_worse_new_slot_is_named_and_a_small_sample_is_not() -> None:
    state = State({"blue": (1, 80), "green": (2, 20)})
    assert rollout_of(state) == (("blue", 1), ("green", 2))
    assert rollout_of(State({"blue": (1, 0), "green": (2, 100)})) is None
    rows = [row(slot="blue", status=200) for _ in range(60)] + \
           [row(slot="green", model_version=2, status=500 if i % 2 else 200) for i in range(60)]
    settings = AutoRollbackSettings(min_samples=50)
    found = compare(state, rows, [], settings)
    assert found is not None
    errors = next(s for s in found["signals"] if s["signal"] == "error_rate")
    assert (errors["old"], errors["new"], errors["verdict"]) == (0.0, 0.5, "worse") and errors["low"] > 0
    assert reasons(found) == ["error_rate 0.5 in green v2 vs 0 in blue v1 (n 60 / 60; threshold 0.05)"]
    few = compare(state, rows[:30] + rows[60:90], [], settings)
    assert few is not None and {s["verdict"] for s in few["signals"]} == {"insufficient_data"}


# --- the summary ------------------------------------------------------------------------------------


def test_output_drift_and_the_checks_of_the_last_window() -> None:
    from collections import Counter

    from ftp.config.monitor_settings import MonitorSettings
    from ftp.monitor.reference import Reference
    from ftp.monitor.summary import Inputs, build_summary, crossed

    reference = Reference(version=1, examples=300, sha256="ab", numeric={"answer_chars": [5.0] * 300},
                          answer_format=AnswerFormat(kind="label", labels=["billing", "outage"]),
                          labels=["billing"] * 150 + ["outage"] * 150, in_format=1.0, vocabulary=Counter())
    period = Period.ending(T0, seconds("2h"), seconds("1h"))

    def served(hour: int, i: int, label: str, status: int = 200) -> dict[str, Any]:
        return row(ts=f"2026-12-01T1{hour}:{i % 60:02d}:00Z", request_id=f"{hour}-{i}", status=status,
                   answer_label=label, answer_in_format=label != INVALID, output_chars=5, prompt_turns=None,
                   prompt_words=None, prompt_chars=None, prompt_nonletter=None, prompt_nonascii=None)

    calm = [served(0, i, "billing" if i % 2 else "outage") for i in range(60)]
    # the last hour: four answers in five outside the label set, and one request in four a 5xx
    late = [served(1, i, INVALID if i % 5 else "outage", 500 if i % 4 == 0 else 200) for i in range(80)]
    inputs = Inputs(name="m", period=period, requests=calm + late, labels=[], reference=reference, rollout=None,
                    settings=MonitorSettings(min_samples=50))
    summary = build_summary(inputs)
    last = summary["windows"][-1]
    assert {d["feature"] for d in summary["drift"]["results"] if d["window"] == last and d["verdict"] == "drift"} == {
        "answer_label", "answer_in_format"}
    assert {d["feature"] for d in summary["drift"]["results"] if d["window"] != last and d["verdict"] == "drift"} == set()
    messages = crossed(summary)
    assert any(m.startswith("error rate 25.0% in blue v1 (last window, 80 requests)") for m in messages)
    assert any("2 features drifted in the last window (answer_in_format, answer_label)" in m for m in messages)


def test_feedback_import_on_the_command_line(project: Path) -> None:
    from conftest import invoke

    good = project / "labels.jsonl"
    good.write_text('{"messages": [{"role": "user", "content": "my car is red"}], "name": "expected", '
                    '"value": "{\\"colour\\": \\"red\\"}", "model": "tiny-model"}\n', encoding="utf-8")
    done = invoke("feedback", "import", str(good), "-p", "pipeline.yaml")
    assert done.exit_code == 0 and "imported 1 feedback items" in done.output
    assert read_feedback(project / ".ftp" / "requests.db")[0]["model"] == "tiny-model"
    bad = project / "bad.jsonl"
    bad.write_text("not json\n", encoding="utf-8")
    refused = invoke("feedback", "import", str(bad), "-p", "pipeline.yaml")
    assert refused.exit_code == 2 and "bad.jsonl:1: not JSON" in refused.stderr
    unknown = invoke("monitor", "nothing-here", "-p", "pipeline.yaml")
    assert unknown.exit_code == 2 and "no deployment named 'nothing-here'" in unknown.stderr


def test_out_of_vocabulary_is_leave_one_out_for_training_and_plain_for_traffic() -> None:
    from collections import Counter

    from ftp.config.monitor_settings import MonitorSettings
    from ftp.monitor.reference import Reference, out_of_vocabulary
    from ftp.monitor.summary import Inputs, build_summary

    vocabulary = Counter({"my": 3, "car": 2, "is": 3, "red": 1, "blue": 2})
    # "my car is red": red only in this prompt -> 1 of 4 words new to the other prompts
    assert out_of_vocabulary(["my", "car", "is", "red"], vocabulary) == 0.25
    reference = Reference(version=1, examples=40, sha256="ab", numeric={"prompt_oov": [0.0] * 30 + [0.25] * 10},
                          vocabulary=vocabulary)

    def logged(text: str, i: int) -> dict[str, Any]:
        return row(ts=f"2026-12-01T11:{i % 60:02d}:00Z", request_id=str(i), prompt_text=json.dumps(
            [{"role": "user", "content": text}]), output_chars=None, answer_label=None, answer_in_format=None,
            prompt_turns=None, prompt_words=None, prompt_chars=None, prompt_nonletter=None, prompt_nonascii=None)

    period = Period.ending(T0, seconds("1h"), seconds("1h"))
    # like the training prompts: one in four brings a word none of them has (as each training prompt with
    # "red" has a word none of the others has)
    calm = [logged("my car is blue" if i % 4 else "my car is green", i) for i in range(40)]
    strange = [logged("la voiture est rouge", i) for i in range(40)] + [logged("my car", 99)]
    for rows, verdict in ((calm, "no_drift"), (strange, "drift")):
        summary = build_summary(Inputs(name="m", period=period, requests=rows, labels=[], reference=reference,
                                       rollout=None, settings=MonitorSettings(min_samples=30)))
        (oov,) = [d for d in summary["drift"]["results"] if d["feature"] == "prompt_oov"]
        assert oov["verdict"] == verdict and oov["n_current"] == len(rows)
    without_text = [dict(r, prompt_text=None) for r in strange]
    summary = build_summary(Inputs(name="m", period=period, requests=without_text, labels=[], reference=reference,
                                   rollout=None, settings=MonitorSettings(min_samples=30)))
    assert [d["verdict"] for d in summary["drift"]["results"] if d["feature"] == "prompt_oov"] == ["insufficient_data"]


def test_many_labels_are_judged_by_chi_square() -> None:
    from collections import Counter

    from ftp.config.monitor_settings import MonitorSettings
    from ftp.monitor.reference import Reference
    from ftp.monitor.summary import Inputs, build_summary

    names = [f"label{i}" for i in range(20)]
    reference = Reference(version=1, examples=400, sha256="ab", numeric={}, labels=names * 20, vocabulary=Counter())
    rows = [row(ts=f"2026-12-01T11:{i % 60:02d}:00Z", answer_label=names[i % 20], answer_in_format=None,
                output_chars=None) for i in range(200)]
    summary = build_summary(Inputs(name="m", period=Period.ending(T0, 3600, 3600), requests=rows, labels=[],
                                   reference=reference, rollout=None, settings=MonitorSettings()))
    (label,) = [d for d in summary["drift"]["results"] if d["feature"] == "answer_label"]
    assert label["metric"] == "pearsons_chi_squared_test" and label["verdict"] == "no_drift"


def test_rollout_quality_and_latency_signals() -> None:
    from ftp.monitor.feedback import Label

    state = State({"blue": (1, 50), "green": (2, 50)})
    old = [row(request_id=f"o{i}", slot="blue", latency_ms=100.0) for i in range(60)]
    new = [row(request_id=f"n{i}", slot="green", model_version=2, latency_ms=350.0) for i in range(60)]
    judged = [Label(r, True, None, None, r["ts"]) for r in old] + \
             [Label(r, i % 2 == 0, None, None, r["ts"]) for i, r in enumerate(new)]  # 100% vs 50% right
    found = compare(state, old + new, judged, AutoRollbackSettings(min_samples=50))
    assert found is not None
    signals = {s["signal"]: s for s in found["signals"]}
    assert signals["p95_latency_ms"]["verdict"] == "worse"  # 350 > 2 x 100
    assert signals["accuracy"]["verdict"] == "worse" and signals["accuracy"]["high"] < 0
    assert signals["error_rate"]["verdict"] == "ok"
    relaxed = compare(state, old + new, judged, AutoRollbackSettings(min_samples=50, latency_ratio=4.0, quality_drop=0.6))
    assert relaxed is not None and reasons(relaxed) == []
