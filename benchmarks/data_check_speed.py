"""Time the data checks over a big file in one process, with peak memory.

    python benchmarks/data_check_speed.py /tmp/big.jsonl                    # the checklist without length
    python benchmarks/data_check_speed.py /tmp/big.jsonl --only length --model builtin:gemma-3-270m --limit 200000

Prints one JSON line: examples, seconds, examples per second, peak RSS, findings per severity.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--only", default=None, help="run only this check (and nothing else)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N lines (copied to a temp file)")
    args = parser.parse_args()

    from ftp.data.check import check_data
    from ftp.data.files import dataset_ref
    from ftp.hooks import default_hooks
    from ftp.types import DataBundle

    path = args.file
    if args.limit:
        path = Path(f"/tmp/ftp-bench-{args.limit}.jsonl")
        with args.file.open("rb") as src, path.open("wb") as dst:
            for i, line in enumerate(src):
                if i >= args.limit:
                    break
                dst.write(line)
    hooks = default_hooks()
    names = [c.name for _, c in hooks.data_checks(_probe_context(path))]
    off = [n for n in names if (args.only and n != args.only) or (not args.only and n == "length")]
    settings = {"model": {"base": args.model} if args.model else {}, "data": {"provenance": "mixed"},
                "validate": {n: {"enabled": False} for n in off}}
    start = time.perf_counter()
    bundle = DataBundle(train=dataset_ref(path, "train"))
    report = check_data(hooks, bundle, settings, "local")
    seconds = time.perf_counter() - start
    n = bundle.train.examples
    print(json.dumps({"file": str(path), "checks": [x for x in names if x not in off], "examples": n,
                      "seconds": round(seconds, 1), "examples_per_s": round(n / seconds),
                      "examples_per_min": round(60 * n / seconds),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "findings": report.counts()}))


def _probe_context(path: Path):  # noqa: ANN202 - a throwaway context to list the checks' names
    from ftp.data.files import dataset_ref
    from ftp.types import CheckContext, DataBundle

    return CheckContext(backend="local", settings={}, data=DataBundle(train=dataset_ref(path, "train")))


if __name__ == "__main__":
    main()
