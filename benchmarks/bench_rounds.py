"""Interleaved, repeated benchmark runs for the GPU benchmarks (train_gpu.py, pipeline_gpu.py): the order of
the runs, the results file rewritten after every run, resuming, and per-configuration medians and spread.

Why rounds: the same code's speed varied by up to ~25% between runs on one machine, and the first run on a
freshly started machine is slow (idle clocks), so one run per configuration cannot rank configurations. A
warm-up round runs every configuration once and is excluded; each timed round runs every configuration once,
in an order rotated per round (A B C, B C A, C A B), so that none always runs first or after the same one.
Why a file per run: a device lease can end at any moment; what finished is kept and ``--resume`` goes on.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, NoReturn


def user_error(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def plan(configs: list[str], repeats: int, warmup: int) -> list[tuple[int, str]]:
    """(round, configuration) in running order: ``warmup`` rounds in the given order, then ``repeats``
    rounds rotated by one configuration each. The rotation depends on the round number only, so a
    later call with more ``--repeats`` extends the same plan."""
    out = [(r, c) for r in range(warmup) for c in configs]
    for i in range(repeats):
        k = i % len(configs) if configs else 0
        out += [(warmup + i, c) for c in configs[k:] + configs[:k]]
    return out


def machine() -> str:
    """This machine, for the record: the host name and the boot (device machines may share a host name)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        boot = "?"
    return f"{socket.gethostname()}:{boot}"


def run_key(round_: int, config: str, warmup: int) -> str:
    """A run's name in the results file. A warm-up run is named with its machine: resumed on a freshly
    started machine (idle clocks, cold caches), the warm-up round runs again there."""
    return f"r{round_}/{config}" + (f"@{machine()}" if round_ < warmup else "")


def pending(order: list[tuple[int, str]], warmup: int, results: "ResultsFile", retry_failed: bool) -> list[tuple[int, str]]:
    """The planned runs the results file does not have yet (with ``retry_failed``, failed ones too)."""
    return [(r, c) for r, c in order if not results.done(run_key(r, c, warmup), retry_failed)]


class ResultsFile:
    """The results JSON: what is measured (``identity``, checked on ``--resume``), every run so far, and the
    summary; rewritten atomically after every run."""

    def __init__(self, path: Path, identity: dict[str, Any], meta: dict[str, Any], resume: bool, fresh: bool) -> None:
        self.path, self.identity, self.meta = path, identity, meta
        self.runs: list[dict[str, Any]] = []
        if path.exists() and not fresh:
            if not resume:
                user_error(f"{path} exists: pass --resume to continue it, --fresh to start over, or another --out")
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                user_error(f"{path}: cannot read the results to resume ({exc}); pass --fresh to start over")
            differ = sorted(k for k in set(identity) | set(old.get("identity", {}))
                            if old.get("identity", {}).get(k) != identity.get(k))
            if differ:
                shown = ", ".join(f"{k}: {old.get('identity', {}).get(k)!r} there, {identity.get(k)!r} now" for k in differ)
                user_error(f"{path}: was measured with other settings ({shown}); use the same settings, or --fresh")
            self.runs = list(old.get("runs", []))

    def done(self, key: str, retry_failed: bool) -> bool:
        return any(r["key"] == key and not (retry_failed and "error" in r) for r in self.runs)

    def add(self, record: dict[str, Any]) -> None:
        self.runs = [r for r in self.runs if r["key"] != record["key"]] + [record]

    def write(self, summary: dict[str, Any], table: str, complete: bool) -> None:
        payload = {**self.meta, "identity": self.identity, "complete": complete, "summary": summary,
                   "machines": sorted({r.get("host", "?") for r in self.runs}), "runs": self.runs,
                   "written": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
        tmp.replace(self.path)
        self.path.with_suffix(".md").write_text(table + "\n", encoding="utf-8")


def stats(values: list[float]) -> dict[str, Any] | None:
    """Median, min, max and the spread (max - min) / median of a configuration's timed runs."""
    if not values:
        return None
    med = statistics.median(values)
    return {"median": round(med, 3), "min": round(min(values), 3), "max": round(max(values), 3), "n": len(values),
            "spread": round((max(values) - min(values)) / med, 3) if med else None}


def by_machine(runs: list[dict[str, Any]], summary: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> dict[str, Any]:
    """``summary`` of each machine's runs apart, when the runs came from more than one (a lease that ended
    and a resume elsewhere): configurations rank differently between machines, so the pooled medians are
    not the whole story."""
    hosts = sorted({r.get("host", "?") for r in runs})
    return {h: summary([r for r in runs if r.get("host", "?") == h]) for h in hosts} if len(hosts) > 1 else {}


def summarise(runs: list[dict[str, Any]], metrics: list[str]) -> dict[str, dict[str, Any]]:
    """Per configuration and metric, the stats of the timed (not warm-up), successful runs."""
    out: dict[str, dict[str, Any]] = {}
    for r in runs:
        if r.get("warmup") or "error" in r:
            continue
        entry = out.setdefault(r["config"], {m: [] for m in metrics})
        for m in metrics:
            if isinstance(r.get(m), (int, float)):
                entry[m].append(float(r[m]))
    return {c: {m: stats(v) for m, v in entry.items()} for c, entry in out.items()}


def run_process(command: list[str], result_file: Path | None, timeout_s: float, log: Path, cwd: Path | None = None,
                env: dict[str, str] | None = None) -> dict[str, Any]:
    """One run in a process of its own, timed from start to exit: what it wrote to ``result_file`` (none:
    nothing), or the failure (exit code, log tail, time-out)."""
    if result_file is not None:
        result_file.unlink(missing_ok=True)
    start = time.perf_counter()
    with log.open("w") as fh:
        # a session of its own: on a time-out the whole group goes, workers included, and frees the GPU
        proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True)
        try:
            code: int | str = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = f"timed out after {timeout_s:.0f}s"
    wall = round(time.perf_counter() - start, 2)
    if code == 0 and result_file is None:
        return {"process_wall_s": wall}
    if code == 0 and result_file is not None and result_file.exists():
        return {**json.loads(result_file.read_text(encoding="utf-8")), "process_wall_s": wall}
    tail = log.read_text(errors="replace")[-1500:]
    return {"error": f"exit {code}" if isinstance(code, int) else code, "log_tail": tail, "process_wall_s": wall}


def execute(todo: list[tuple[int, str]], warmup: int, results: ResultsFile, run_one: Callable[[int, str], dict[str, Any]],
            budget_s: float, started: float, after_each: Callable[[], None]) -> list[str]:
    """Run ``todo`` in order, recording each run as it ends; start none after ``budget_s`` seconds (0: no
    limit) since ``started``. Returns the keys left undone."""
    for i, (round_, config) in enumerate(todo):
        elapsed = time.perf_counter() - started
        if budget_s and elapsed > budget_s:
            left = [run_key(r, c, warmup) for r, c in todo[i:]]
            print(f"--budget-s {budget_s:.0f}: {len(left)} run(s) not started; run again with --resume to continue",
                  flush=True)
            return left
        key = run_key(round_, config, warmup)
        print(f"[{elapsed:7.1f}s] start {key}{' (warm-up, excluded)' if round_ < warmup else ''}", flush=True)
        record = {"key": key, "round": round_, "warmup": round_ < warmup, "config": config,
                  "host": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"), **run_one(round_, config)}
        results.add(record)
        after_each()
        status = f"FAILED ({record['error']})" if "error" in record else "done"
        print(f"[{time.perf_counter() - started:7.1f}s] {status} {key} ({record.get('process_wall_s', 0):.0f}s)", flush=True)
    return []


def fmt(s: dict[str, Any] | None, digits: int = 0) -> str:
    """A stats entry as a table cell: median [min-max]."""
    if not s:
        return "-"
    return f"{s['median']:,.{digits}f} [{s['min']:,.{digits}f}-{s['max']:,.{digits}f}]"


def provenance(commit: str | None, packages: tuple[str, ...]) -> dict[str, Any]:
    """The commit measured (``--commit`` where the device has no git) and the versions that matter, as the
    quality benchmark records them (its ``source`` named ``commit_source`` here)."""
    run = quality_run()
    out = run.commit(commit)
    out["commit_source"] = out.pop("source")
    return {**out, "versions": run.versions(packages)}


def quality_run() -> Any:
    """benchmarks/quality/run.py (its pipeline file, model resolver and ftp import path), loaded by its path."""
    spec = importlib.util.spec_from_file_location("quality_run", Path(__file__).resolve().parent / "quality" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def use_this_checkout(work: Path) -> None:
    """This process and its children import this checkout's ftp, installed or not (on the device it is not):
    quality/run.py's folder of links on PYTHONPATH."""
    env, shim = quality_run().ftp_env(work)
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]
    if shim is not None:
        sys.path.insert(0, str(shim))
