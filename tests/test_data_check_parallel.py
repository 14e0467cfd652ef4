"""A data file read in byte ranges by several processes gives exactly the report one process gives.

The files here are small, so the minimum range size is forced down (``parallel.MIN_PART_BYTES``, read
by the parent only) and each file is cut into two or three ranges; every kind of finding lands on both
sides of the cuts, and several codes pass the cap of 50 findings.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke, write_jsonl

from ftp.data import parallel
from ftp.data.check import check_data
from ftp.data.checks import DataCheck, Record
from ftp.data.lines import read_records
from ftp.data.sources import bundle
from ftp.hooks import default_hooks
from ftp.types import DataBundle, DatasetRef, Finding

WORDS = ("refund order parcel invoice login password crash screen billing charge late broken missing "
         "courier tracking label warranty receipt battery charger cable screen update").split()


def example(user: str, answer: str, system: str = "Triage the ticket as JSON.") -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user},
                         {"role": "assistant", "content": answer}]}


def ticket(rng: random.Random, i: int, words: int = 40) -> str:
    return f"Ticket {i}: " + " ".join(rng.choice(WORDS) for _ in range(words))


def answer(rng: random.Random, i: int) -> str:
    if i % 23 == 0:
        return "I think this is a billing issue."  # a format outlier (more than 50 of them)
    if i % 29 == 0:
        return json.dumps({"category": "bug", "priority": "low", f"extra{i % 9}": 1})  # other key sets
    if i % 31 == 0:
        return f"label{i % 13}"  # short answers: candidate labels
    return json.dumps({"category": rng.choice(["billing", "bug", "account"]), "priority": rng.choice(["low", "high"])})


def lines_for(seed: int, n: int, kinds: bool = True) -> list[bytes]:
    """``n`` lines with every hygiene problem, PII, duplicates and near duplicates spread through the file."""
    rng = random.Random(seed)
    out: list[bytes] = []
    kept: list[str] = []
    for i in range(n):
        text = ticket(rng, i)
        if kinds and i % 17 == 3:
            text += f" Mail me at person{i}@example.com"  # pii-email, more than 50
        if kinds and i % 41 == 5:
            text += " or call +44 20 7946 0958."
        if kinds and i % 97 == 11:
            text += " key AKIAIOSFODNN7EXAMPLE"  # a secret
        if kept and i % 19 == 7:
            text = kept[rng.randrange(len(kept))]  # an exact duplicate of an earlier input
        elif kept and i % 37 == 9:
            words = kept[rng.randrange(len(kept))].split()
            words[rng.randrange(3, len(words))] = "changed"
            text = " ".join(words)  # a near duplicate
        kept.append(text)
        line = json.dumps(example(text, answer(rng, i))).encode()
        if not kinds:
            out.append(line + b"\n")
            continue
        if i % 13 == 2:
            line = line[: len(line) // 2]  # invalid JSON, more than 50
        elif i % 53 == 4:
            line = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}'  # not UTF-8
        elif i % 61 == 6:
            line = json.dumps({"messages": [{"role": "user", "content": text}]}).encode()  # no answer
        elif i % 71 == 8:
            line = json.dumps({"messages": [{"role": "assistant", "content": "x"}, {"role": "system",
                                                                                     "content": text}]}).encode()
        elif i % 89 == 10:
            line = b'{"messages": [{"role": "user", "content": "' + b"long " * 400 + b'"}]}'  # over max_line_mb
        elif i % 11 == 1:
            line = json.dumps(example(text, answer(rng, i) + " " + "padding " * 120)).encode()  # too many tokens
        ending = b"\r\n" if i % 7 == 0 else b"\n"
        out.append(line + ending + (b"\n" if i % 43 == 12 else b""))  # CRLF lines, blank lines
    return out


def write(path: Path, lines: list[bytes], bom: bool = False, trailing_newline: bool = True) -> Path:
    data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(lines)
    path.write_bytes(data if trailing_newline else data.rstrip(b"\r\n"))
    return path


SETTINGS: dict[str, Any] = {"model": {}, "data": {"provenance": "synthetic"},
                            "validate": {"hygiene": {"max_line_mb": 0.0015}, "length": {"max_tokens": 160}}}


def report(data: DataBundle, workers: int, settings: dict[str, Any] | None = None) -> str:
    return json.dumps(check_data(default_hooks(), data, settings or SETTINGS, "local", workers).to_json(), default=str)


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "MIN_PART_BYTES", 4096)


@pytest.fixture
def three_files(tmp_path: Path) -> DataBundle:
    train_lines = lines_for(1, 900)
    train = write(tmp_path / "train.jsonl", train_lines, bom=True, trailing_newline=False)
    rng = random.Random(5)
    leaked = [line for line in train_lines if b'"assistant"' in line and b"\r" not in line]
    validation = write(tmp_path / "validation.jsonl", lines_for(2, 300, kinds=False) + rng.sample(leaked, 60))
    test_lines = lines_for(3, 300) + rng.sample(leaked, 70)  # leakage: more than 50 findings
    test = write(tmp_path / "test.jsonl", test_lines + [b'{"messages": [{"role": "user", "content": "cut'])
    return bundle(train, validation, test)


@pytest.mark.parametrize("workers, in_parent", [(2, False), (3, False), (4, True)])
def test_the_report_is_the_one_process_report(three_files: DataBundle, small_ranges: None, workers: int,
                                              in_parent: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from ftp.plugins import output_format, phrasing

    # small caps (in the parent: a worker imports the real ones): short answers and key sets past them
    monkeypatch.setattr(output_format, "MAX_VALUES", 5)
    monkeypatch.setattr(output_format, "MAX_SHAPES", 4)
    monkeypatch.setattr(phrasing, "TRAIN_CAP", 300)  # a 1-in-3 sample of training, and of the others
    monkeypatch.setattr(phrasing, "EVAL_CAP", 150)
    monkeypatch.setattr(phrasing, "NGRAM_CAP", 9000)  # reached in the middle of the file
    if in_parent:  # every range read by the parent, as when workers fail: every part with the small caps
        monkeypatch.setattr(parallel, "_receive", lambda proc: None)
    one = report(three_files, 1)
    assert report(three_files, workers) == one
    found = json.loads(one)
    codes = {f["code"] for f in found["findings"]}
    assert {"invalid-json", "not-utf8", "line-too-long", "truncated-last-line", "blank-lines", "crlf", "bom",
            "pii-email", "pii-phone", "secret-aws-access-key", "duplicate-inputs", "near-duplicate-inputs",
            "format-outlier", "too-long", "leakage", "no-assistant", "system-not-first"} <= codes
    overflowed = {f["message"] for f in found["findings"] if "not listed" in f["message"]}
    assert len(overflowed) >= 4  # invalid-json, pii-email, too-long, leakage, format-outlier past 50
    summaries = found["summaries"]
    assert summaries["phrasing"]["ngrams_capped"] and summaries["phrasing"]["train_stride"] == 3
    assert summaries["output_format"]["shapes"]


def test_the_cuts_fall_between_lines_and_the_ranges_read_what_one_pass_reads(three_files: DataBundle) -> None:
    ref = three_files.train
    size = ref.path.stat().st_size
    ranges = parallel.cut(ref, size, 7)
    data = ref.path.read_bytes()
    assert ranges[0][0] == 0 and ranges[-1][1] == size and len(ranges) == 7
    assert all(a < b and data[a - 1:a] == b"\n" for a, b in ranges[1:])
    assert all(prev[1] == nxt[0] for prev, nxt in zip(ranges, ranges[1:]))
    whole = [(r.line, r.raw, r.problem, r.newline) for r in read_records(ref, 2048)]
    pieces = [(r.line, r.raw, r.problem, r.newline) for start, end in ranges
              for r in read_records(ref, 2048, start, end, parallel.count_newlines(ref, start) + 1)]
    assert pieces == whole and whole[0][1].startswith(b'{"messages"')  # the BOM is the first range's only


def test_a_cut_inside_an_overlong_line_moves_past_it(tmp_path: Path) -> None:
    path = write(tmp_path / "long.jsonl", [b"a" * 10_000 + b"\n", b"{}\n", b"b" * 10_000, b"\n{}\n"])
    ref = DatasetRef(path=path, sha256="0" * 64, examples=4)
    ranges = parallel.cut(ref, path.stat().st_size, 3)
    assert [b - a for a, b in ranges] == [10_001, 10_004, 3]
    second = [(r.line, r.problem) for r in read_records(ref, 4096, *ranges[1], first_line=2)]
    assert second == [(2, None), (3, "line-too-long")]


class CountingCheck(DataCheck):
    """A third-party check that does not say it can run in parts."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []

    def observe(self, record: Record) -> list[Finding] | None:
        self.lines.append(record.line)
        return self.finding("info", "seen", "a line", record) if record.line % 100 == 0 else None

    def summary(self) -> dict[str, Any]:
        return {"lines": len(self.lines), "ordered": self.lines == sorted(self.lines)}


def plugin_of(check: type[DataCheck]) -> Any:
    """A plugin whose ``ftp_data_checks`` builds one ``check`` per scan, as an installed plugin would."""
    from ftp import hookimpl

    class Plugin:
        @staticmethod
        @hookimpl
        def ftp_data_checks(context: Any) -> list[DataCheck]:
            return [check()]

    return Plugin()


def test_a_check_without_parts_gets_the_whole_file_in_one_process(three_files: DataBundle, small_ranges: None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []
    monkeypatch.setattr(parallel, "_start", lambda job: started.append(job))
    hooks = default_hooks()
    hooks.pm.register(plugin_of(CountingCheck), name="counting")
    out = check_data(hooks, three_files, SETTINGS, "local", workers=3).to_json()
    assert not started  # no worker: the scan fell back to one process
    lines = [sum(1 for _ in read_records(ref)) for ref in three_files.files()]
    assert out["summaries"]["counting"] == {"lines": sum(lines), "ordered": False}  # every line, file by file
    assert sum(f["code"] == "seen" for f in out["findings"]) == sum(n // 100 for n in lines)


class PidCheck(DataCheck):
    """Runs in parts, but its parts fail in any process other than the one that made them."""

    name = "pid"

    def __init__(self) -> None:
        super().__init__()
        self.pid = os.getpid()
        self.n = 0

    def observe(self, record: Record) -> None:
        if os.getpid() != self.pid:
            raise RuntimeError("not in a worker")
        self.n += 1

    def part(self) -> DataCheck:
        part = self.part_copy()
        part.n = 0
        return part

    def merge(self, part: DataCheck) -> None:
        assert isinstance(part, PidCheck)
        self.n += part.n

    def summary(self) -> dict[str, Any]:
        return {"lines": self.n}


def test_a_failing_worker_is_replaced_by_the_parent_reading_its_range(three_files: DataBundle, small_ranges: None,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[bool] = []
    receive = parallel._receive
    monkeypatch.setattr(parallel, "_receive", lambda proc: received.append(receive(proc) is not None))
    hooks = default_hooks()
    hooks.pm.register(plugin_of(PidCheck), name="pid")
    one = check_data(hooks, three_files, SETTINGS, "local", 1).to_json()
    three = check_data(hooks, three_files, SETTINGS, "local", 3).to_json()
    assert received == [False] * 6  # two workers for each file, each failed
    assert three == one
    assert one["summaries"]["pid"]["lines"] == sum(sum(1 for _ in read_records(ref)) for ref in three_files.files())


def test_when_no_process_can_start_the_parent_reads_every_range(three_files: DataBundle, small_ranges: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("Resource temporarily unavailable")

    one = report(three_files, 1)
    monkeypatch.setattr(parallel.subprocess, "Popen", refuse)
    assert report(three_files, 3) == one


def test_parts_a_fresh_interpreter_cannot_import_keep_the_file_in_one_process(tmp_path: Path) -> None:
    import importlib.util
    import sys

    source = tmp_path / "local_check.py"
    source.write_text("from ftp.data.checks import DataCheck\n\nclass LocalCheck(DataCheck):\n    name = 'local'\n")
    spec = importlib.util.spec_from_file_location("ftp_local_plugins.local_check", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as ftp.config.local_plugins registers a project-local file
    try:
        spec.loader.exec_module(module)
        ref = DatasetRef(path=source, sha256="0" * 64, examples=1)
        assert parallel._payload(ref, [module.LocalCheck().part_copy()]) is None
        assert parallel._payload(ref, [PidCheck().part_copy()]) is not None  # a test module is on sys.path
    finally:
        del sys.modules[spec.name]


def test_the_cap_keeps_the_first_findings_by_line_across_ranges(tmp_path: Path, small_ranges: None) -> None:
    lines = [json.dumps(example(f"Write to user{i}@example.com about {ticket(random.Random(i), i, 30)}", "ok")).encode()
             + b"\n" for i in range(400)]
    data = bundle(write(tmp_path / "pii.jsonl", lines), None, None)
    out = json.loads(report(data, 3, {"validate": {"duplicates": {"enabled": False}}}))
    emails = [f["line"] for f in out["findings"] if f["code"] == "pii-email" and f["line"]]
    assert emails == list(range(1, 51))
    assert any(f["message"] == "350 more findings of this kind not listed" for f in out["findings"])


def test_small_files_and_one_worker_stay_in_one_process(three_files: DataBundle, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []
    monkeypatch.setattr(parallel, "_start", lambda job: started.append(job))
    check_data(default_hooks(), three_files, SETTINGS, "local", workers=4)  # under two ranges of 32 MiB
    assert not started


def test_workers_setting_and_flag(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from ftp.plugins.hygiene import HygieneSettings

    assert parallel.resolve_workers("auto") == len(os.sched_getaffinity(0)) and parallel.resolve_workers(3) == 3
    assert HygieneSettings().workers == "auto" and HygieneSettings(workers=2).workers == 2
    for bad in (0, True, "two", 1.5):
        with pytest.raises(ValidationError, match="give auto or a number of processes, at least 1"):
            HygieneSettings(workers=bad)
    train = write_jsonl(tmp_path / "t.jsonl", [example(f"question {i}", "answer") for i in range(20)])
    result = invoke("data", "check", str(train), "--workers", "0")
    assert result.exit_code == 2 and "--workers 0: give auto or a number of processes" in result.output
    for workers in ("2", "auto"):
        assert invoke("data", "check", str(train), "--workers", workers, "--json").exit_code == 0
