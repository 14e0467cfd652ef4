"""Time the data checks over a big file: as a user runs them, and each check's share of the time.

    python benchmarks/data_check_speed.py /tmp/big.jsonl                  # `ftp data check FILE`, default checks
    python benchmarks/data_check_speed.py /tmp/big.jsonl --workers 1      # the same in one process
    python benchmarks/data_check_speed.py /tmp/big.jsonl --shares         # one process: each check's share
    python benchmarks/data_check_speed.py /tmp/big.jsonl --only length --model builtin:gemma-3-270m --limit 200000
    python benchmarks/data_check_speed.py /tmp/big.jsonl --out results.jsonl     # also append the JSON line

The default runs the ``ftp data check`` command line in a child process (start-up included) and samples
the resident memory of it and all its worker processes together every 20 ms (``/usr/bin/time`` reports
the largest single process, not their sum). ``--shares`` runs ``check_data`` in this process with every
check's ``begin``/``observe``/``end``/``finish``/``summary`` timed, plus a separate pass that only reads
and parses the file, and the hashing and counting of the file (``dataset_ref``). Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

TIMED = ("begin", "observe", "end", "finish", "summary", "overflow")


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every descendant, from /proc (Linux)."""
    children: dict[int, list[int]] = defaultdict(list)
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as fh:
                rss[int(entry)] = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError):
            continue
        children[int(fields[1])].append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def run_cli(args: argparse.Namespace) -> dict[str, Any]:
    """``ftp data check FILE --json`` as a user runs it: wall seconds and the sampled peak of all its processes."""
    cmd = [str(Path(sys.executable).with_name("ftp")), "data", "check", str(args.file), "--json"]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    if args.model:
        cmd += ["--model", args.model]
    for name in args.disable or ():
        cmd += ["--disable", name]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    sampler.join()
    if proc.returncode not in (0, 1, 2) or not out:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    report = json.loads(out)
    return {"command": " ".join(cmd[1:]), "workers": args.workers or "auto", "examples": report["files"][0]["examples"],
            "wall_s": round(seconds, 1), "examples_per_min": round(60 * report["files"][0]["examples"] / seconds),
            "peak_rss_all_processes_mib": round(peak[0] / 2**20),
            "counts": report["counts"], "load_average_before": round(load, 2)}


def _timed(check: Any, totals: dict[str, float]) -> None:
    """Wrap the check's hooks on the instance, adding each call's seconds to ``totals``."""
    clock = time.perf_counter
    for name in TIMED:
        method = getattr(check, name)

        def timed(*a: Any, _method: Any = method, _name: str = name) -> Any:
            t = clock()
            try:
                return _method(*a)
            finally:
                totals[_name] += clock() - t

        setattr(check, name, timed)


def run_shares(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """One process: reading and parsing alone, then every check's time with the scan."""
    from ftp.data import check as check_module
    from ftp.data.check import check_data
    from ftp.data.files import dataset_ref
    from ftp.data.scan import read_records
    from ftp.hooks import default_hooks
    from ftp.types import DataBundle

    hooks = default_hooks()
    load = os.getloadavg()[0]
    t = time.perf_counter()
    bundle = DataBundle(train=dataset_ref(path, "train"))
    ref_s = time.perf_counter() - t
    t = time.perf_counter()
    for _ in read_records(bundle.train):
        pass
    read_s = time.perf_counter() - t
    per_check: dict[str, dict[str, float]] = {}
    configure = check_module.configure

    def configure_timed(checks: Any, context: Any) -> Any:
        active = configure(checks, context)
        for item in active:
            _timed(item.check, per_check.setdefault(item.check.name, defaultdict(float)))
        return active

    check_module.configure = configure_timed  # type: ignore[assignment]
    t = time.perf_counter()
    try:
        report = check_data(hooks, bundle, _settings(args), "local", workers=1)
    except TypeError:  # a checkout from before the parallel scan (for before/after): one process anyway
        report = check_data(hooks, bundle, _settings(args), "local")
    total = time.perf_counter() - t
    checks_s = sum(sum(v.values()) for v in per_check.values())
    whole = ref_s + total
    shares = {"hash and count (dataset_ref)": ref_s, "read and parse": read_s, **{
        name: sum(v.values()) for name, v in per_check.items()}, "scan loop and the rest": total - checks_s - read_s}
    return {"mode": "shares, one process", "examples": bundle.train.examples, "seconds": round(whole, 1),
            "examples_per_min": round(60 * bundle.train.examples / whole),
            "shares": {k: {"s": round(v, 2), "share": round(v / whole, 3)} for k, v in shares.items()},
            "per_hook_s": {name: {k: round(s, 2) for k, s in v.items() if s >= 0.005} for name, v in per_check.items()},
            "counts": report.counts(), "load_average_before": round(load, 2)}


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"model": {"base": args.model} if args.model else {}, "data": {},
            "validate": {n: {"enabled": False} for n in args.disable or ()}}


def _limited(path: Path, limit: int | None) -> Path:
    if not limit:
        return path
    out = Path(f"/tmp/ftp-bench-{limit}.jsonl")
    with path.open("rb") as src, out.open("wb") as dst:
        for i, line in enumerate(src):
            if i >= limit:
                break
            dst.write(line)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--workers", default=None, help="processes for `ftp data check --workers` (default: auto)")
    parser.add_argument("--shares", action="store_true", help="one process, each check's share of the time")
    parser.add_argument("--disable", action="append", help="turn a check off (repeatable)")
    parser.add_argument("--only", default=None, help="run only this check")
    parser.add_argument("--model", default=None, help="count tokens with this model's tokenizer")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N lines (copied to a temp file)")
    parser.add_argument("--out", type=Path, default=None, help="also append the JSON line to this file")
    args = parser.parse_args()
    path = _limited(args.file, args.limit)
    args.file = path
    if args.only:
        from ftp.hooks import default_hooks

        names = [c.name for _, c in default_hooks().data_checks(_probe_context(path))]
        args.disable = [n for n in names if n != args.only]
    result = run_shares(args, path) if args.shares else run_cli(args)
    line = json.dumps({"file": str(path), **result})
    print(line)
    if args.out:
        with args.out.open("a") as fh:
            fh.write(line + "\n")


def _probe_context(path: Path) -> Any:
    """A throwaway context to list the checks' names."""
    from ftp.data.files import dataset_ref
    from ftp.types import CheckContext, DataBundle

    return CheckContext(backend="local", settings={}, data=DataBundle(train=dataset_ref(path, "train")))


if __name__ == "__main__":
    main()
