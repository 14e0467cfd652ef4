"""Blind side-by-side review: ``ftp review export`` / ``ftp review import`` on a run directory built by
hand (state.json through ftp.run.store, eval files in the documented shapes, a version in a real
SQLite registry). Expected numbers are worked out by hand; the bootstrap interval is checked against
the exact bootstrap distribution, enumerated."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sqlite3
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ftp.cli.main import cli
from ftp.errors import UserError
from ftp.eval.review_sheet import bootstrap_interval, export_sheet, paired_examples, prompt_text, side
from ftp.plugins.registry_sqlite import SqliteRegistry
from ftp.run.store import RunDir, RunState, now
from ftp.types import ModelRef, ModelVersion

RUN_ID = "20260101-120000-abcd"
N = 12
NAMES = ("fine-tuned", "base")


def ft_answer(i: int) -> str:
    return f"alpha answer {i}: \"quoted\", comma & <tag>"


def other_answer(i: int) -> str:
    return f"omega answer {i}\nsecond line"


def make_run(root: Path, candidates: tuple[str, ...] = NAMES, examples: bool = True) -> tuple[Path, SqliteRegistry]:
    """runs/demo/RUN_ID with state.json, pipeline.resolved.yaml, eval.json, eval/examples.jsonl and v1
    of ``demo`` in root/.ftp/registry.db."""
    run_path = root / "runs" / "demo" / RUN_ID
    run_path.mkdir(parents=True)
    registry = SqliteRegistry(root / ".ftp" / "registry.db")
    version = registry.register(ModelVersion(
        name="demo", version=0, created_at=now(), run_id=RUN_ID, backend="local", base_model="tiny",
        model=ModelRef(kind="adapter", base="tiny", backend="local", path=run_path / "adapter"), data_sha256={},
        hyperparameters={}, metrics={}, pipeline_sha256="x", code_version="y"))
    state = RunState(run_id=RUN_ID, pipeline_name="demo", pipeline_file=str(root / "pipeline.yaml"), pipeline_sha256="x",
                     backend="local", created_at=now(), updated_at=now())
    state.steps["register"].status = "done"
    state.steps["register"].outputs = version.model_dump(mode="json")
    RunDir(run_path, state).save()
    (run_path / "pipeline.resolved.yaml").write_text(yaml.safe_dump(
        {"name": "demo", "evaluate": {"seed": 5}, "register": {"registry": "sqlite", "store": str(registry.path)}}))
    rows = []
    for i in range(N):
        prompt = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": f"Question {i}?"}]
        for c in candidates:
            rows.append({"id": i, "example_id": f"t-{i}", "candidate": c, "prompt": prompt, "reference": f"ref {i}",
                         "answer": ft_answer(i) if c == "fine-tuned" else other_answer(i), "scores": {}})
    if examples:
        (run_path / "eval").mkdir()
        (run_path / "eval" / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_path / "eval.json").write_text(json.dumps({"n": N, "candidates": list(candidates), "metrics": {},
                                                     "seed": 5, "resamples": 10_000, "confidence": 0.95}))
    return run_path, registry


def ftp(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture()
def run(tmp_path: Path) -> tuple[Path, SqliteRegistry]:
    return make_run(tmp_path)


def export(tmp_path: Path, out: str = "sheet", *extra: str) -> Path:
    result = ftp("review", "export", RUN_ID, "--out", str(tmp_path / out), "--runs-dir", str(tmp_path / "runs"), *extra)
    assert result.exit_code == 0, result.output
    return tmp_path / out


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# Rows 0-5: the reviewer prefers the alpha (fine-tuned) answer; 6-7 the other one; 8-9 tie; 10 both bad;
# 11 left empty. So 6 wins, 2 losses, 2 ties, 1 both_bad, n = 11, win rate (6 + 2/2) / 10 = 0.7.
PLAN = ["ft"] * 6 + ["other"] * 2 + ["tie"] * 2 + ["both_bad", ""]


def choose(row: dict[str, str], want: str) -> str:
    if want in ("tie", "both_bad", ""):
        return want
    alpha_is_1 = row["response_1"].startswith("alpha")
    return "1" if alpha_is_1 == (want == "ft") else "2"


def exact_bootstrap_quantiles(values: list[float], confidence: float) -> tuple[float, float]:
    """The bootstrap distribution of the mean of ``values`` computed exactly (multinomial over the
    distinct values), and its percentile bounds."""
    counts = {v: values.count(v) for v in set(values)}
    n, support = len(values), sorted(counts)
    dist: dict[float, float] = {}

    def walk(k: int, left: int, total: float, prob: float) -> None:
        if k == len(support) - 1:
            p = prob * (counts[support[k]] / n) ** left
            mean = round((total + support[k] * left) / n, 9)
            dist[mean] = dist.get(mean, 0.0) + p * math.factorial(n) / math.factorial(left)
            return
        for take in range(left + 1):
            walk(k + 1, left - take, total + support[k] * take,
                 prob * (counts[support[k]] / n) ** take / math.factorial(take))

    walk(0, n, 0.0, 1.0)
    cdf, low, high = 0.0, None, None
    for mean in sorted(dist):
        cdf += dist[mean]
        if low is None and cdf >= (1 - confidence) / 2:
            low = mean
        if high is None and cdf >= 1 - (1 - confidence) / 2:
            high = mean
    assert low is not None and high is not None
    return low, high


def test_export_is_blind_and_complete(run: tuple[Path, SqliteRegistry], tmp_path: Path) -> None:
    run_path, _ = run
    sheet = export(tmp_path)
    assert sorted(p.name for p in sheet.iterdir()) == sorted(
        ["review.html", "review.csv", "label_studio.json", "label_studio.xml", "argilla.json"])
    for path in sheet.iterdir():
        text = path.read_text(encoding="utf-8").lower()
        assert "fine-tuned" not in text and "base" not in text and "fine_tuned" not in text, path.name
    rows = read_csv(sheet / "review.csv")
    assert list(rows[0]) == ["id", "prompt", "reference", "response_1", "response_2", "choice", "comment"]
    assert [r["id"] for r in rows] == [f"t-{i}" for i in range(N)]
    assert rows[3]["prompt"] == "[system]\nAnswer briefly.\n\n[user]\nQuestion 3?"
    assert {r["choice"] for r in rows} == {""}
    mapping = json.loads((run_path / "review" / "mapping.json").read_text())
    assert mapping["seed"] == 5 and mapping["candidates"] == list(NAMES)  # the run's evaluate seed
    for r in rows:
        one = mapping["rows"][r["id"]]["response_1"]
        assert r["response_1"] == (ft_answer(int(r["id"][2:])) if one == "fine-tuned" else other_answer(int(r["id"][2:])))
        assert (one == "fine-tuned") == side(5, r["id"])
    tasks = json.loads((sheet / "label_studio.json").read_text())
    assert tasks[0]["data"] == {"id": "t-0", "prompt": rows[0]["prompt"], "reference": "ref 0",
                                "response_1": rows[0]["response_1"], "response_2": rows[0]["response_2"]}
    assert 'toName="response_1,response_2"' in (sheet / "label_studio.xml").read_text()
    argilla = json.loads((sheet / "argilla.json").read_text())
    assert [f["name"] for f in argilla["settings"]["fields"]][:3] == ["prompt", "response_1", "response_2"]
    assert argilla["settings"]["questions"][0] == {"name": "preference", "title": "Which response is better?",
                                                   "type": "label_selection", "labels": ["1", "2", "tie", "both_bad"],
                                                   "required": True}
    assert argilla["records"][2]["fields"]["response_2"] == rows[2]["response_2"]


def test_sides_follow_the_seed(run: tuple[Path, SqliteRegistry], tmp_path: Path) -> None:
    first = (export(tmp_path, "a", "--seed", "7") / "review.csv").read_text()
    again = (export(tmp_path, "b", "--seed", "7") / "review.csv").read_text()
    assert first == again
    refused = ftp("review", "export", RUN_ID, "--out", str(tmp_path / "c"), "--seed", "8", "--runs-dir", str(tmp_path / "runs"))
    assert refused.exit_code == 2 and "--force" in refused.output
    other = (export(tmp_path, "c", "--seed", "8", "--force") / "review.csv").read_text()
    assert other != first
    assert [side(7, f"t-{i}") for i in range(N)] != [side(8, f"t-{i}") for i in range(N)]
    # --limit keeps each example's side: the coin depends on (seed, id) only
    limited = read_csv(export(tmp_path, "d", "--seed", "8", "--limit", "4") / "review.csv")
    assert [r["response_1"] for r in limited] == [r["response_1"] for r in read_csv(tmp_path / "c" / "review.csv")[:4]]


def test_import_csv_win_rate_eval_json_and_registry_tag(run: tuple[Path, SqliteRegistry], tmp_path: Path) -> None:
    run_path, registry = run
    sheet = export(tmp_path)
    rows = read_csv(sheet / "review.csv")
    for row, want in zip(rows, PLAN):
        row["choice"] = choose(row, want)
    rows[0]["comment"] = "clearer"
    write_csv(tmp_path / "alice.csv", rows)
    result = ftp("review", "import", RUN_ID, str(tmp_path / "alice.csv"), "--reviewer", "alice",
                 "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    assert "alice: fine-tuned vs base win rate 0.700" in result.output and "1 empty skipped" in result.output
    review = json.loads((run_path / "eval.json").read_text())["human_review"]
    alice = review["by_reviewer"]["alice"]
    assert {k: alice[k] for k in ("wins", "losses", "ties", "both_bad", "n", "skipped")} == \
        {"wins": 6, "losses": 2, "ties": 2, "both_bad": 1, "n": 11, "skipped": 1}
    assert alice["win_rate"] == pytest.approx(0.7)
    low, high = exact_bootstrap_quantiles([1.0] * 6 + [0.0] * 2 + [0.5] * 2, 0.95)
    # P(mean <= 0.40) = 0.0197 and P(mean <= 0.45) = 0.0442 (convolving ten draws by hand-checked fractions)
    assert (low, high) == (0.45, 0.95)
    assert alice["low"] == pytest.approx(low, abs=0.05) and alice["high"] == pytest.approx(high, abs=0.05)
    assert review["pooled"]["win_rate"] == pytest.approx(0.7) and review["reviewers"] == ["alice"]
    assert review["method"] == "percentile bootstrap over examples" and review["resamples"] == 10_000
    tag = registry.get("demo", 1).tags["human_review"]
    assert tag["win_rate"] == pytest.approx(0.7) and tag["reviewers"] == ["alice"] and tag["run_id"] == RUN_ID
    stored = json.loads((run_path / "review" / "reviews.json").read_text())["reviewers"]["alice"]["outcomes"]
    assert stored["t-0"] == {"choice": choose(rows[0], "ft"), "outcome": "win", "comment": "clearer"}


def test_tampered_or_unknown_rows_are_rejected(run: tuple[Path, SqliteRegistry], tmp_path: Path) -> None:
    sheet = export(tmp_path)
    rows = read_csv(sheet / "review.csv")
    rows[4]["response_2"] += " (edited)"
    rows[4]["choice"] = "1"
    write_csv(tmp_path / "bad.csv", rows)
    result = ftp("review", "import", RUN_ID, str(tmp_path / "bad.csv"), "--runs-dir", str(tmp_path / "runs"))
    # every record spans 6 physical lines (4 line breaks in the prompt, 1 in one response): row 4
    # starts at line 2 + 4 * 6
    assert result.exit_code == 2
    assert "bad.csv line 26 (id t-4): response_2 differs from the exported sheet" in result.output
    rows = read_csv(sheet / "review.csv")
    rows[1]["id"] = "t-99"
    write_csv(tmp_path / "unknown.csv", rows)
    result = ftp("review", "import", RUN_ID, str(tmp_path / "unknown.csv"), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2 and "line 8 (id t-99): id 't-99' is not on the exported sheet" in result.output
    rows = read_csv(sheet / "review.csv")
    rows[0]["choice"] = "maybe"
    write_csv(tmp_path / "choice.csv", rows)
    result = ftp("review", "import", RUN_ID, str(tmp_path / "choice.csv"), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2 and "choice 'maybe' is not one of 1, 2, tie, both_bad" in result.output


def test_label_studio_round_trip_pools_reviewers(run: tuple[Path, SqliteRegistry], tmp_path: Path) -> None:
    run_path, registry = run
    sheet = export(tmp_path)
    rows = read_csv(sheet / "review.csv")
    for row, want in zip(rows, PLAN):
        row["choice"] = choose(row, want)
    write_csv(tmp_path / "alice.csv", rows)
    assert ftp("review", "import", RUN_ID, str(tmp_path / "alice.csv"), "--reviewer", "alice",
               "--runs-dir", str(tmp_path / "runs")).exit_code == 0
    # bob, in Label Studio: prefers alpha on rows 0-2, the other on 3-8 (by a click), ties 9 with the verdict
    # choice (which outranks a stray click), cancels 10, leaves 11 unannotated: 3 wins, 6 losses, 1 tie
    tasks = json.loads((sheet / "label_studio.json").read_text())
    for i, task in enumerate(tasks):
        task["id"] = 500 + i  # Label Studio numbers tasks its own way
        alpha_left = task["data"]["response_1"].startswith("alpha")
        picked = "left" if alpha_left == (i < 3) else "right"
        result: list[dict[str, Any]] = [{"from_name": "preference", "to_name": ["response_1", "response_2"],
                                         "type": "pairwise", "value": {"selected": picked}}]
        if i == 9:
            result.append({"from_name": "verdict", "to_name": "prompt", "type": "choices", "value": {"choices": ["tie"]}})
        if i == 0:
            result.append({"from_name": "comment", "to_name": "prompt", "type": "textarea", "value": {"text": ["good"]}})
        task["annotations"] = [] if i == 11 else [{"id": i, "completed_by": {"id": 3, "email": "bob@example.com"},
                                                   "was_cancelled": i == 10, "result": result}]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    out = ftp("review", "import", RUN_ID, str(tmp_path / "ls.json"), "--runs-dir", str(tmp_path / "runs"), "--json")
    assert out.exit_code == 0, out.output
    review = json.loads(out.output)["human_review"]
    bob = review["by_reviewer"]["bob@example.com"]
    assert (bob["wins"], bob["losses"], bob["ties"], bob["n"]) == (3, 6, 1, 10)
    assert bob["win_rate"] == pytest.approx(3.5 / 10)
    pooled = review["pooled"]  # alice 6/2/2/1 + bob 3/6/1/0
    assert (pooled["wins"], pooled["losses"], pooled["ties"], pooled["both_bad"], pooled["n"]) == (9, 8, 3, 1, 21)
    assert pooled["win_rate"] == pytest.approx((9 + 1.5) / 20) and pooled["examples"] == 11
    assert pooled["low"] < pooled["win_rate"] < pooled["high"]
    assert review["reviewers"] == ["alice", "bob@example.com"]
    assert json.loads((run_path / "eval.json").read_text())["human_review"]["pooled"] == pooled
    assert registry.get("demo", 1).tags["human_review"]["reviewers"] == ["alice", "bob@example.com"]
    comment = json.loads((run_path / "review" / "reviews.json").read_text())["reviewers"]["bob@example.com"]
    assert comment["outcomes"]["t-0"]["comment"] == "good" and comment["skipped"] == 0


def test_interval_edges() -> None:
    assert bootstrap_interval([(1.0, 1)] * 5, 1000, 0.95, 0) == (1.0, 1.0)
    assert bootstrap_interval([(0.5, 1)], 1000, 0.95, 0) == (0.5, 0.5)
    # 400 examples, 240 wins and 160 losses: close to the normal interval 0.6 +- 1.96 * sqrt(0.24 / 400)
    low, high = bootstrap_interval([(1.0, 1)] * 240 + [(0.0, 1)] * 160, 10_000, 0.95, 1)
    assert low == pytest.approx(0.6 - 0.048, abs=0.006) and high == pytest.approx(0.6 + 0.048, abs=0.006)
    assert bootstrap_interval([(1.0, 1)] * 3 + [(0.0, 1)] * 2, 2000, 0.95, 3) == \
        bootstrap_interval([(1.0, 1)] * 3 + [(0.0, 1)] * 2, 2000, 0.95, 3)
    assert prompt_text([{"role": "user", "content": "hi"}]) == "hi"


def test_runs_without_answers_or_a_candidate(tmp_path: Path) -> None:
    make_run(tmp_path, examples=False)
    with pytest.raises(UserError, match="run the evaluate step"):
        export_sheet(tmp_path / "runs" / "demo" / RUN_ID, tmp_path / "out", NAMES, 0)
    other = tmp_path / "other"
    make_run(other, candidates=("fine-tuned",))
    result = ftp("review", "export", RUN_ID, "--out", str(tmp_path / "o"), "--runs-dir", str(other / "runs"))
    assert result.exit_code == 2 and "no answers from base" in result.output and "it has: fine-tuned" in result.output
    result = ftp("review", "export", RUN_ID, "--out", str(tmp_path / "o"), "--candidates", "fine-tuned,fine-tuned",
                 "--runs-dir", str(other / "runs"))
    assert result.exit_code == 2 and "two different candidates" in result.output
    result = ftp("review", "export", RUN_ID, "--out", str(tmp_path / "runs" / "demo" / RUN_ID / "review"),
                 "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2 and "unblind" in result.output


def test_a_report_folder_of_ftp_eval(tmp_path: Path) -> None:
    """A folder ``ftp eval --report`` wrote (no state.json) works too; it has no registry to tag."""
    run_path, registry = make_run(tmp_path)
    report = tmp_path / "report"
    shutil.copytree(run_path / "eval", report / "eval")
    shutil.copy(run_path / "eval.json", report / "eval.json")
    sheet = tmp_path / "sheet"
    assert ftp("review", "export", str(report), "--out", str(sheet), "--limit", "2").exit_code == 0
    rows = read_csv(sheet / "review.csv")
    rows[0]["choice"], rows[1]["choice"] = choose(rows[0], "ft"), choose(rows[1], "ft")
    write_csv(tmp_path / "r.csv", rows)
    out = ftp("review", "import", str(report), str(tmp_path / "r.csv"), "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["registry"] is None and data["human_review"]["pooled"]["win_rate"] == 1.0
    assert (data["human_review"]["pooled"]["low"], data["human_review"]["pooled"]["high"]) == (1.0, 1.0)
    assert registry.get("demo", 1).tags == {}


def test_only_examples_both_answered_and_positions_for_repeated_ids() -> None:
    rows = [{"id": i, "example_id": "same", "candidate": c, "prompt": [], "reference": "r", "answer": f"{c}{i}"}
            for i in range(3) for c in NAMES if (i, c) != (1, "base")]
    pairs = paired_examples(rows, NAMES)
    assert [(e["id"], e["answers"]["base"]) for e in pairs] == [("0", "base0"), ("2", "base2")]


def test_old_registry_gains_the_tags_column(tmp_path: Path) -> None:
    _, registry = make_run(tmp_path)
    with sqlite3.connect(registry.path) as db:
        db.execute("ALTER TABLE versions DROP COLUMN tags")
    assert registry.get("demo", 1).tags == {}
    assert registry.set_tag("demo", 1, "k", {"a": 1}).tags == {"k": {"a": 1}}
    assert registry.set_tag("demo", 1, "j", "v").tags == {"k": {"a": 1}, "j": "v"}
    with pytest.raises(UserError, match="no version demo v9"):
        registry.set_tag("demo", 9, "k", 1)


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections, self.scripts = 0, 0
        self.radios: list[str | None] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.sections += tag == "section"
        self.scripts += tag == "script"
        if tag == "input" and a.get("type") == "radio":
            self.radios.append(a.get("value"))
        assert not (a.get("src") or a.get("href") or ""), f"{tag} loads {a}"

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def test_html_parses_and_stays_offline(run: tuple[Path, SqliteRegistry], tmp_path: Path) -> None:
    page_text = (export(tmp_path) / "review.html").read_text(encoding="utf-8")
    page = Page()
    page.feed(page_text)
    assert page.sections == N and page.radios == ["1", "2", "tie", "both_bad"] * N and page.scripts == 2
    assert "http://" not in page_text and "https://" not in page_text
    assert "<tag>" not in page_text.split('<script type="application/json"')[0]  # answers escaped
    assert any("alpha answer 0: \"quoted\", comma & <tag>" in t for t in page.texts)  # and shown as written
    assert "0 of 12 chosen" in page_text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium")
def test_the_page_writes_a_csv_that_imports(run: tuple[Path, SqliteRegistry], tmp_path: Path) -> None:
    """In a real browser: click choices, let the page build review.csv, import that CSV."""
    run_path, _ = run
    sheet = export(tmp_path)
    clicks = ("var s=document.querySelectorAll('section');"
              "s[0].querySelector('input[value=\"1\"]').click();s[1].querySelector('input[value=\"tie\"]').click();"
              "var t=s[1].querySelector('textarea');t.value='a \"quoted\", comment';t.dispatchEvent(new Event('input',{bubbles:true}));"
              "var o=document.createElement('pre');o.id='out';o.textContent=window.ftpReviewCsv();document.body.appendChild(o);"
              "document.body.setAttribute('data-progress',document.getElementById('progress').textContent);")
    probe = tmp_path / "probe.html"
    probe.write_text((sheet / "review.html").read_text().replace("</body>", f"<script>{clicks}</script></body>"))
    dom = subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    page = Page()
    page.feed(dom.split('<pre id="out">', 1)[1].split("</pre>", 1)[0].join(["<pre>", "</pre>"]))
    assert 'data-progress="2 of 12 chosen"' in dom
    (tmp_path / "browser.csv").write_text("".join(page.texts), encoding="utf-8")
    rows = read_csv(tmp_path / "browser.csv")
    assert [r["choice"] for r in rows[:3]] == ["1", "tie", ""] and rows[1]["comment"] == 'a "quoted", comment'
    result = ftp("review", "import", RUN_ID, str(tmp_path / "browser.csv"), "--reviewer", "carol",
                 "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    carol = json.loads((run_path / "eval.json").read_text())["human_review"]["by_reviewer"]["carol"]
    first_wins = json.loads((run_path / "review" / "mapping.json").read_text())["rows"]["t-0"]["response_1"] == "fine-tuned"
    assert (carol["wins"], carol["losses"], carol["ties"], carol["skipped"]) == (int(first_wins), int(not first_wins), 1, 10)
