"""The duplicates check: exact and near-duplicate inputs, the share threshold, settings, determinism, scale."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from conftest import write_jsonl
from ftp.data.files import dataset_ref
from ftp.plugins.duplicates import DuplicatesCheck, DuplicatesSettings
from ftp.types import DataBundle

WORDS = [f"word{i}" for i in range(3000)]


def chat(text: str, answer: str = "ok", system: str | None = None) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system else []
    return {"messages": messages + [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]}


def sentence(rng: random.Random, n: int = 20) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def report(tmp_path: Path, rows: list[dict[str, Any]], settings: dict[str, Any] | None = None, **splits: Any) -> Any:
    from ftp.data.check import check_data
    from ftp.hooks import Hooks
    from ftp.plugin_manager import get_plugin_manager

    train = dataset_ref(write_jsonl(tmp_path / "train.jsonl", rows), "train")
    others = {k: dataset_ref(write_jsonl(tmp_path / f"{k}.jsonl", v), k) for k, v in splits.items()}
    base = {"validate": {"quantity": {"enabled": False}, **((settings or {}).get("validate") or {})}}
    return check_data(Hooks(get_plugin_manager()), DataBundle(train=train, **others), base, "local")


def dup_findings(rep: Any) -> list[Any]:
    return [f for f in rep.findings if f.plugin == "ftp.plugins.duplicates"]


def test_exact_duplicates_name_their_lines(tmp_path: Path) -> None:
    rng = random.Random(1)
    rows = [chat(sentence(rng)) for _ in range(40)]
    rows[9] = chat(rows[2]["messages"][0]["content"].upper() + "  !!", answer="different answer")
    rows[30] = rows[2]
    rep = report(tmp_path, rows)
    found = dup_findings(rep)
    exact = [f for f in found if f.code == "duplicate-inputs"]
    assert len(exact) == 1
    assert exact[0].line == 3 and exact[0].file.endswith("train.jsonl")
    assert "3 examples" in exact[0].message and "lines 3, 10, 31" in exact[0].message
    assert not [f for f in found if f.code == "near-duplicate-inputs"]
    summary = rep.summaries["duplicates"]
    assert summary["duplicates"] == 2 and summary["exact_clusters"] == 1 and summary["examples"] == 40
    assert summary["largest_clusters"][0]["members"] == [["train", 3], ["train", 10], ["train", 31]]


def test_near_duplicates_found_unrelated_inputs_not_clustered(tmp_path: Path) -> None:
    rng = random.Random(2)
    rows = [chat(sentence(rng)) for _ in range(200)]
    bases = [5, 50, 120]
    for b in bases:  # a one-word edit of a 20-word input, a few lines later
        words = rows[b]["messages"][0]["content"].split()
        words[10] = "edited"
        rows[b + 3] = chat(" ".join(words))
    # a long input with a two-word edit (word shingles)
    long_words = sentence(rng, 60).split()
    rows[150] = chat(" ".join(long_words))
    long_words[20], long_words[40] = "x1", "x2"
    rows[170] = chat(" ".join(long_words))
    rep = report(tmp_path, rows)
    near = [f for f in dup_findings(rep) if f.code == "near-duplicate-inputs"]
    got = sorted((f.line, f.message) for f in near)
    assert [line for line, _ in got] == [6, 51, 121, 151]
    assert "lines 6, 9" in got[0][1] and "lines 151, 171" in got[3][1]
    assert rep.summaries["duplicates"]["near_clusters"] == 4
    assert rep.summaries["duplicates"]["exact_clusters"] == 0


def test_share_switches_warning_and_info(tmp_path: Path) -> None:
    rng = random.Random(3)
    rows = [chat(sentence(rng)) for _ in range(100)]
    for i in range(1, 4):
        rows[i] = rows[0]  # 3 of 100 = 3%
    shares = [f for f in dup_findings(report(tmp_path, rows)) if f.code == "duplicate-share"]
    assert len(shares) == 1 and shares[0].severity == "info" and "3.0%" in shares[0].message
    strict = report(tmp_path, rows, {"validate": {"duplicates": {"max_share": 0.02}}})
    shares = [f for f in dup_findings(strict) if f.code == "duplicate-share"]
    assert shares[0].severity == "warning"
    for i in range(4, 10):
        rows[i] = rows[0]  # 9%
    shares = [f for f in dup_findings(report(tmp_path, rows)) if f.code == "duplicate-share"]
    assert shares[0].severity == "warning"
    clean = [chat(sentence(rng)) for _ in range(100)]
    assert dup_findings(report(tmp_path, clean)) == []


def test_off_and_near_duplicates_off(tmp_path: Path) -> None:
    rng = random.Random(4)
    rows = [chat(sentence(rng)) for _ in range(30)]
    rows[7] = rows[1]
    words = rows[2]["messages"][0]["content"].split()
    words[3] = "edited"
    rows[8] = chat(" ".join(words))
    off = report(tmp_path, rows, {"validate": {"duplicates": {"enabled": False}}})
    assert dup_findings(off) == [] and "duplicates" not in off.summaries
    exact_only = report(tmp_path, rows, {"validate": {"duplicates": {"near_duplicates": False}}})
    assert sorted(f.code for f in dup_findings(exact_only)) == ["duplicate-inputs", "duplicate-share"]
    both = report(tmp_path, rows)
    assert sorted(f.code for f in dup_findings(both)) == ["duplicate-inputs", "duplicate-share",
                                                          "near-duplicate-inputs"]


def test_clusters_across_files_name_each_file(tmp_path: Path) -> None:
    rng = random.Random(5)
    train = [chat(sentence(rng)) for _ in range(30)]
    validation = [chat(sentence(rng)) for _ in range(10)]
    validation[4] = train[12]
    rep = report(tmp_path, train, validation=validation)
    exact = [f for f in dup_findings(rep) if f.code == "duplicate-inputs"]
    assert len(exact) == 1 and exact[0].line == 13 and exact[0].file.endswith("train.jsonl")
    assert "train lines 13; validation lines 5" in exact[0].message


def test_input_is_everything_before_the_answer(tmp_path: Path) -> None:
    rng = random.Random(6)
    text = sentence(rng)
    rows = [chat(sentence(rng)) for _ in range(20)]
    rows[0] = chat(text, system="be brief")
    rows[1] = chat(text, system="be verbose")  # different system prompt: a different input
    rows[2] = chat(text, answer="another answer", system="be brief")  # same input, different answer
    exact = [f for f in dup_findings(report(tmp_path, rows)) if f.code == "duplicate-inputs"]
    assert len(exact) == 1 and "lines 1, 3" in exact[0].message


def run_check(rows: list[dict[str, Any]], **settings: Any) -> DuplicatesCheck:
    from ftp.data.checks import Record

    check = DuplicatesCheck(DuplicatesSettings(**settings), len(rows))
    check.files, check.splits = ["mem.jsonl"], ["train"]
    for i, row in enumerate(rows, 1):
        check.observe(Record(file="mem.jsonl", split="train", line=i, raw=b"", example=row))
    return check


def test_deterministic(tmp_path: Path) -> None:
    rng = random.Random(7)
    rows = [chat(sentence(rng, rng.randint(5, 60))) for _ in range(3000)]
    for i in range(0, 3000, 37):
        words = rows[i]["messages"][0]["content"].split()
        words[len(words) // 2] = "zzz"
        rows[(i * 7 + 11) % 3000] = chat(" ".join(words))
    a, b = run_check(rows), run_check(rows)
    fa = [(f.code, f.line, f.message) for f in a.finish()]
    fb = [(f.code, f.line, f.message) for f in b.finish()]
    assert fa == fb and a.summary() == b.summary() and a.summary()["near_clusters"] > 0
    r1 = report(tmp_path, rows[:500])
    r2 = report(tmp_path, rows[:500])
    assert [f.message for f in dup_findings(r1)] == [f.message for f in dup_findings(r2)]


def test_scale_twenty_thousand_examples_in_seconds() -> None:
    rng = random.Random(8)
    rows = []
    for i in range(20_000):
        if i % 100 == 50:
            words = rows[i - 10]["messages"][0]["content"].split()
            words[25] = "changed"
            rows.append(chat(" ".join(words)))
        elif i % 100 == 60:
            rows.append(rows[i - 5])
        else:
            rows.append(chat(sentence(rng, 60)))
    start = time.perf_counter()
    check = run_check(rows)
    check.finish()
    elapsed = time.perf_counter() - start
    s = check.summary()
    assert s["exact_clusters"] == 200 and s["near_clusters"] >= 195  # MinHash recall at J~0.9 is ~99%
    assert s["clusters"] <= 400 and elapsed < 10, elapsed
