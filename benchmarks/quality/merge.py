"""Paired comparisons across results files of the same data (e.g. a variant run after the main run).

    python benchmarks/quality/merge.py results/quality_defaults_trl_final_neft.json results/quality_fp32_weights.json

Every configuration of every file is compared with the first file's ``trl`` (and ``ftp``) on the same test
examples (the data's sha256 must match), with the same paired bootstrap as run.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import evaluate as ev  # noqa: E402


def vectors(config: dict[str, Any]) -> list[list[int]]:
    return [run["correct"] for _, run in sorted(config["runs"].items())]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    results = [json.loads(p.read_text()) for p in args.files]
    first = results[0]
    print("| task | configuration | file | exact match per seed (%) | mean | vs TRL (95% CI) | vs ftp defaults (95% CI) |")
    print("|---|---|---|---|---|---|---|")
    for task, block in first["tasks"].items():
        refs = {name: vectors(block["configs"][name]) for name in ("trl", "ftp") if name in block["configs"]}
        for path, result in zip(args.files, results):
            if task not in result["tasks"]:
                continue
            if result["data"][task]["sha256"] != first["data"][task]["sha256"]:
                raise SystemExit(f"{path}: {task} was measured on other data")
            for name, config in result["tasks"][task]["configs"].items():
                if config["kind"] == "base" or not config.get("runs"):
                    continue
                mine = vectors(config)
                per_seed = ", ".join(f"{100 * run['exact_match']:.1f}" for _, run in sorted(config["runs"].items()))
                cells = []
                for ref in ("trl", "ftp"):
                    if ref not in refs or (ref == name and path == args.files[0]):
                        cells.append("")
                        continue
                    d = ev.bootstrap_diff(mine, refs[ref])
                    cells.append(f"{100 * d['diff']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]")
                print(f"| {task} | {name} | {path.name} | {per_seed} | {100 * config['mean']:.1f} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
