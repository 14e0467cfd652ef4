"""The LLM judge plugin against a real local HTTP server speaking OpenAI's (and Azure's) chat API."""

from __future__ import annotations

import json
import math
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from judge_server import JudgeServer, Reply, first_judge, running, section

from ftp.errors import UserError
from ftp.plugins import judge, judge_client
from ftp.plugins.judge_client import extract_json
from ftp.types import EvalRequest, ModelRef, ScoredTable

GOOD = '{"reason": "fine", "score": 5, "pass": true}'


@pytest.fixture(autouse=True)
def fresh_memory() -> Iterator[None]:
    """Which endpoints refused response_format is remembered per process; each test starts clean."""
    judge_client._NO_RESPONSE_FORMAT.clear()
    yield
    judge_client._NO_RESPONSE_FORMAT.clear()


@pytest.fixture
def server() -> Iterator[JudgeServer]:
    with running(JudgeServer()) as s:
        yield s


def pipeline(base_url: str, **judge_keys: Any) -> dict[str, Any]:
    return {"evaluate": {"judge": {"base_url": base_url, "model": "judge-model", "cache": None, **judge_keys}}}


def example(i: int) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": "Answer with the code."},
                         {"role": "user", "content": f"What is code {i}?"},
                         {"role": "assistant", "content": f"r{i:02d}"}]}


def request(settings: dict[str, Any], predictions: list[str], metrics: tuple[str, ...] = ("judge_score",),
            candidate: str = "fine-tuned") -> EvalRequest:
    n = len(predictions)
    return EvalRequest(candidate=candidate, model=ModelRef(kind="base", base="tiny", backend="local"),
                       examples=[example(i) for i in range(n)], predictions=predictions,
                       references=[f"r{i:02d}" for i in range(n)], metrics=list(metrics), settings=settings)


def table(settings: dict[str, Any], ours: list[str], theirs: list[str], seed: int = 7) -> ScoredTable:
    n = len(ours)
    return ScoredTable(n=n, candidates=["fine-tuned", "base"], metrics=[], examples=[example(i) for i in range(n)],
                       references=[f"r{i:02d}" for i in range(n)], predictions={"fine-tuned": ours, "base": theirs},
                       resamples=1000, confidence=0.95, seed=seed, settings=settings)


# --- pointwise ---


def test_pointwise_scores_against_the_reference_and_records_a_clean_request(
        server: JudgeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTP_TEST_JUDGE_KEY", "secret-123")
    settings = pipeline(server.url, api_key_env="FTP_TEST_JUDGE_KEY", max_tokens=123, rubric="Be exact.")
    [metric] = judge.ftp_evaluate(request(settings, ["r00", "r01", "wrong"]))
    assert metric.name == "judge_score" and metric.candidate == "fine-tuned"
    assert metric.value == pytest.approx(11 / 3)  # scores 5, 5, 1
    assert metric.scores == [5.0, 5.0, 1.0] and metric.n == 3
    d = metric.details
    assert {k: d[k] for k in ("judge_errors", "n_judged", "judge", "mode", "scale", "pass_rate")} == {
        "judge_errors": 0, "n_judged": 3, "judge": "judge-model", "mode": "pointwise", "scale": "1-5",
        "pass_rate": pytest.approx(2 / 3)}
    assert d["rubric_sha256"] == judge_client.sha256("Be exact.") and "warning" not in d
    assert len(server.requests) == 3
    for r in server.requests:
        body = r["body"]
        assert r["path"] == "/v1/chat/completions"
        assert r["headers"]["authorization"] == "Bearer secret-123"
        assert body["model"] == "judge-model" and body["temperature"] == 0
        assert body["max_tokens"] == 123 and "max_completion_tokens" not in body
        assert body["response_format"]["type"] == "json_schema"
        assert body["messages"][0]["role"] == "system"
    prompt = server.requests[2]["body"]["messages"][1]["content"]
    assert "Be exact." in prompt and section(prompt, "reference") == "r02" and section(prompt, "answer") == "wrong"
    assert section(prompt, "conversation") == "system: Answer with the code.\n\nuser: What is code 2?"


def test_malformed_and_truncated_verdicts_are_retried_then_judge_errors_never_zero(server: JudgeServer) -> None:
    server.script = [Reply("I think it is good."),  # example 0: not JSON
                     Reply('{"reason": "ok", "pass": true}'),  # no score
                     Reply(GOOD),  # the third and last attempt: judged 5
                     Reply('{"reason": "the answer is', "length"),  # example 1: three truncated replies
                     Reply('{"reason": "cut', "length"),
                     Reply(GOOD, "length")]  # parseable but cut by max_tokens: still malformed
    [metric] = judge.ftp_evaluate(request(pipeline(server.url), ["r00", "r01", "wrong"]))
    assert metric.value == pytest.approx(3.0)  # (5 + 1) / 2: the error is left out, not scored 0
    assert metric.n == 2 and metric.scores is None
    assert metric.details["judge_errors"] == 1 and metric.details["n_judged"] == 2
    assert "1 verdict(s) are judge_error" in metric.details["warning"]
    assert [row["verdict"] for row in metric.details["per_example"]] == ["judged", "judge_error", "judged"]
    assert metric.details["per_example"][1]["score"] is None
    assert len(server.requests) == 3 + 3 + 1
    retry = server.requests[1]["body"]["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert retry[2]["content"] == "I think it is good."


def test_fenced_and_prose_wrapped_verdicts_are_read(server: JudgeServer) -> None:
    server.script = [Reply('Sure!\n```json\n{"reason": "fine", "score": 4, "pass": true}\n```'),
                     Reply('My verdict: {"reason": "a } brace", "score": 2, "pass": false} - done')]
    [metric] = judge.ftp_evaluate(request(pipeline(server.url), ["a", "b"]))
    assert metric.scores == [4.0, 2.0] and len(server.requests) == 2


def test_extract_json() -> None:
    assert extract_json('```\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('text {"a": {"b": "}"}} more {"c": 2}') == {"a": {"b": "}"}}
    assert extract_json("[1, 2]") is None and extract_json("no object") is None and extract_json(None) is None
    assert extract_json('{"a": 1') is None


def test_a_server_error_is_retried(server: JudgeServer) -> None:
    server.script = [Reply(status=500)]
    [metric] = judge.ftp_evaluate(request(pipeline(server.url), ["r00"]))
    assert metric.scores == [5.0] and metric.details["judge_errors"] == 0
    assert "1 judge call(s) failed, first: HTTP 500" in metric.details["warning"]
    assert len(server.requests) == 2


def test_a_server_that_rejects_response_format_is_asked_without_it_from_then_on() -> None:
    with running(JudgeServer(reject_response_format=True)) as server:
        [metric] = judge.ftp_evaluate(request(pipeline(server.url), ["r00", "x", "r02"]))
    assert metric.scores == [5.0, 1.0, 5.0]
    assert ["response_format" in b for b in server.bodies()] == [True, False, False, False]


def test_max_examples_and_when_the_judge_runs(server: JudgeServer) -> None:
    [metric] = judge.ftp_evaluate(request(pipeline(server.url, max_examples=2), ["r00", "x", "r02"]))
    assert metric.n == 2 and metric.value == pytest.approx(3.0) and metric.scores is None  # not every example
    assert len(server.requests) == 2
    assert judge.ftp_evaluate(request({"evaluate": {}}, ["r00"])) == []  # no judge configured
    assert judge.ftp_evaluate(request(pipeline(server.url), ["r00"], metrics=("exact_match",))) == []  # pairwise
    [metric] = judge.ftp_evaluate(request(pipeline(server.url, mode="pointwise"), ["r00"], metrics=("exact_match",)))
    assert metric.value == 5.0
    assert judge.ftp_compare(table(pipeline(server.url, mode="pointwise"), ["r00"], ["x"])) == []


def test_a_missing_key_variable_is_a_user_error(server: JudgeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FTP_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(UserError, match=r"evaluate\.judge\.api_key_env.*FTP_TEST_NO_SUCH_KEY"):
        judge.ftp_evaluate(request(pipeline(server.url, api_key_env="FTP_TEST_NO_SUCH_KEY"), ["r00"]))
    assert server.requests == []


def test_an_unreachable_judge_is_said_once_and_not_called_for_every_example() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    [metric] = judge.ftp_evaluate(request(pipeline(f"http://127.0.0.1:{port}/v1"), [f"r{i:02d}" for i in range(10)]))
    assert math.isnan(metric.value) and metric.n == 0 and metric.scores is None
    d = metric.details
    assert d["judge_errors"] == 10 and d["n_judged"] == 0
    assert d["warning"].count("could not connect") == 1 and f"127.0.0.1:{port}" in d["warning"]
    assert d["calls"] == judge_client.UNREACHABLE_AFTER * 3  # then no more attempts (1 + 2 retries each)


def test_azure_deployment_path_key_header_and_completion_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTP_TEST_AZURE_KEY", "azure-key")
    with running(JudgeServer()) as server:
        settings = pipeline(server.endpoint, model="judge-deploy", api_version="2024-10-21",
                            api_key_env="FTP_TEST_AZURE_KEY", max_tokens=50)
        [metric] = judge.ftp_evaluate(request(settings, ["r00", "x"]))
    assert metric.scores == [5.0, 1.0] and metric.details["judge"] == "judge-deploy"
    r = server.requests[0]
    assert r["path"] == "/openai/deployments/judge-deploy/chat/completions"
    assert r["query"]["api-version"] == ["2024-10-21"] and r["headers"]["api-key"] == "azure-key"
    assert r["body"]["max_completion_tokens"] == 50 and "max_tokens" not in r["body"]
    assert r["body"]["temperature"] == 0


# --- pairwise ---


def test_pairwise_preference_both_orders_bootstrap_and_sign_test(server: JudgeServer) -> None:
    ours = [f"r{i:02d}" for i in range(11)] + ["x"]  # right on 0-10, wrong on 11
    theirs = ["wrong!"] * 10 + ["r10", "r11"]  # right on 10 (a tie) and 11 (a loss)
    [c] = judge.ftp_compare(table(pipeline(server.url), ours, theirs))
    assert (c.metric, c.candidate, c.baseline, c.n) == ("judge_preference", "fine-tuned", "base", 12)
    assert (c.wins, c.ties, c.losses) == (10, 1, 1)
    assert c.difference == pytest.approx(9 / 12)
    assert c.p_value == pytest.approx(24 / 2048)  # 2 * P(X >= 10), X ~ Binomial(11, 1/2)
    assert c.test == "sign_test_exact" and c.resamples == 1000 and c.seed == 7
    assert 0 < c.low < c.difference < c.high <= 1
    d = c.details
    assert d["win_rate"] == pytest.approx(10.5 / 12) and d["position_consistency"] == 1.0
    assert d["mean_length"] == {"fine-tuned": pytest.approx(34 / 12), "base": pytest.approx(66 / 12)}
    assert d["judge_errors"] == 0 and d["n_judged"] == 12 and d["judge"] == "judge-model" and d["mode"] == "pairwise"
    assert [row["verdict"] for row in d["per_example"]] == ["candidate"] * 10 + ["tie", "baseline"]
    assert len(server.requests) == 24
    orders = [judge.candidate_first(i, 7) for i in range(12)]
    assert True in orders and False in orders
    for i, row in enumerate(d["per_example"]):
        first, second = (server.requests[2 * i + k]["body"]["messages"][1]["content"] for k in (0, 1))
        assert section(first, "answer_1") == section(second, "answer_2")  # the same pair, swapped
        if i < 10:
            assert (section(first, "answer_1") == ours[i]) == orders[i] == row["candidate_first"]
        assert [json.loads(raw)["winner"] for raw in row["raw"]] == (
            ["1" if orders[i] else "2", "2" if orders[i] else "1"] if i < 10 else ["tie", "tie"] if i == 10
            else ["2" if orders[i] else "1", "1" if orders[i] else "2"])
    again = judge.ftp_compare(table(pipeline(server.url), ours, theirs))[0]
    assert (again.low, again.high) == (c.low, c.high)


def test_a_position_biased_judge_gives_only_ties() -> None:
    with running(JudgeServer(judge=first_judge)) as server:
        [c] = judge.ftp_compare(table(pipeline(server.url), ["r00", "r01", "x", "y"], ["a", "b", "r02", "r03"]))
    assert (c.wins, c.ties, c.losses, c.difference, c.low, c.high) == (0, 4, 0, 0.0, 0.0, 0.0)
    assert c.p_value == 1.0 and c.details["position_consistency"] == 0.0 and c.details["win_rate"] == 0.5


def test_pairwise_judge_errors_are_left_out(server: JudgeServer) -> None:
    server.script = [Reply('{"reason": "?", "winner": "both"}')] * 3  # example 0, first order: never valid
    [c] = judge.ftp_compare(table(pipeline(server.url), ["r00", "r01", "r02"], ["x", "x", "r02"]))
    assert c.n == 2 and (c.wins, c.ties, c.losses) == (1, 1, 0) and c.difference == pytest.approx(0.5)
    assert c.details["judge_errors"] == 1 and c.details["per_example"][0]["verdict"] == "judge_error"
    assert "malformed" in c.details["per_example"][0]["error"]


# --- cache ---


def test_a_second_identical_evaluation_makes_no_calls(server: JudgeServer, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = pipeline(server.url, cache="cache/judge.db")  # relative to the current directory
    first = judge.ftp_evaluate(request(settings, ["r00", "x"]))[0]
    pair = judge.ftp_compare(table(settings, ["r00", "x"], ["x", "r01"]))[0]
    calls = len(server.requests)
    assert calls == 2 + 4
    again = judge.ftp_evaluate(request(settings, ["r00", "x"]))[0]
    pair_again = judge.ftp_compare(table(settings, ["r00", "x"], ["x", "r01"]))[0]
    assert len(server.requests) == calls
    assert (again.details["calls"], again.details["cached"], pair_again.details["cached"]) == (0, 2, 4)
    assert again.scores == first.scores and again.details["per_example"] == first.details["per_example"]
    assert (pair_again.wins, pair_again.losses, pair_again.details["per_example"]) == (
        pair.wins, pair.losses, pair.details["per_example"])
    with sqlite3.connect(tmp_path / "cache" / "judge.db") as conn:
        rows = conn.execute("SELECT base_url, model, template_sha256, raw, verdict FROM judge_verdicts").fetchall()
    assert len(rows) == 6 and {r[0] for r in rows} == {server.url} and {r[1] for r in rows} == {"judge-model"}
    assert {json.loads(r[4])["score"] for r in rows if "score" in r[4]} == {5.0, 1.0}
    judge.ftp_evaluate(request(pipeline(server.url, cache="cache/judge.db", rubric="Other."), ["r00", "x"]))
    assert len(server.requests) == calls + 2  # another rubric: other verdicts


def test_the_hooks_are_registered(pm: Any, server: JudgeServer) -> None:
    names = {spec.name for specs in pm.hook.ftp_metrics() for spec in specs}
    assert {"judge_score", "judge_preference"} <= names
    found = [c for cs in pm.hook.ftp_compare(table=table(pipeline(server.url), ["r00"], ["x"])) for c in cs
             if c.metric == "judge_preference"]
    assert len(found) == 1 and found[0].wins == 1
