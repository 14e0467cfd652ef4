"""Comparisons across results files of the same data (variants or more seeds run after the main run).

    python benchmarks/quality/merge.py results/quality_defaults_trl_final_neft.json results/quality_fp32_weights.json
    python benchmarks/quality/merge.py --pool results/quality_*.json            # seeds of a name pooled
    python benchmarks/quality/merge.py --pool --by gift_yes,gift_no results/...  # where the errors are

Default: every configuration of every file against the first file's ``trl`` and ``ftp``, with run.py's
paired bootstrap (seeds pooled). ``--pool``: the runs of one configuration name are gathered from every
file (the same ``--set`` values are required, and a seed measured twice is an error), and each is
compared with TRL by the two-stage bootstrap over seeds and test examples
(``evaluate.seeds_and_examples_diff``), which includes seed-to-seed variance. ``--by PARTS``: exact
match per test phrasing of those template parts (tasks.py records them), per seed, which shows whether
a configuration misses a phrasing altogether. The data's sha256 must match across files.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import evaluate as ev  # noqa: E402
import tasks as task_data  # noqa: E402


def vectors(config: dict[str, Any]) -> list[list[int]]:
    return [run["correct"] for _, run in sorted(config["runs"].items(), key=lambda kv: int(kv[0]))]


def checked(results: list[dict[str, Any]], files: list[Path]) -> None:
    first = results[0]
    for path, result in zip(files, results):
        for task in result["tasks"]:
            if task in first["data"] and result["data"][task]["sha256"] != first["data"][task]["sha256"]:
                raise SystemExit(f"{path}: {task} was measured on other data than {files[0]}")


def side_by_side(results: list[dict[str, Any]], files: list[Path]) -> None:
    print("| task | configuration | file | exact match per seed (%) | mean | vs TRL (95% CI) | vs ftp defaults (95% CI) |")
    print("|---|---|---|---|---|---|---|")
    for task, block in results[0]["tasks"].items():
        refs = {name: vectors(block["configs"][name]) for name in ("trl", "ftp") if name in block["configs"]}
        for path, result in zip(files, results):
            for name, config in result["tasks"].get(task, {}).get("configs", {}).items():
                if config["kind"] == "base" or not config.get("runs"):
                    continue
                per_seed = ", ".join(f"{100 * sum(v) / len(v):.1f}" for v in vectors(config))
                cells = ["" if ref not in refs or (ref == name and path == files[0])
                         else ev.interval(ev.bootstrap_diff(vectors(config), refs[ref])) for ref in ("trl", "ftp")]
                print(f"| {task} | {name} | {path.name} | {per_seed} | {100 * config['mean']:.1f} | {cells[0]} | {cells[1]} |")


def pooled(results: list[dict[str, Any]], files: list[Path]) -> dict[str, dict[str, dict[str, Any]]]:
    """task -> configuration name -> {"sets", "runs": {seed: run}} gathered from every file."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for path, result in zip(files, results):
        for task, block in result["tasks"].items():
            for name, config in block["configs"].items():
                if config["kind"] == "base" or not config.get("runs"):
                    continue
                entry = out.setdefault(task, {}).setdefault(name, {"sets": config.get("sets", []), "runs": {}})
                if entry["sets"] != config.get("sets", []):
                    raise SystemExit(f"{path}: {task}/{name} has other settings than before: {config.get('sets')}")
                for seed, run in config["runs"].items():
                    if seed in entry["runs"]:
                        raise SystemExit(f"{path}: {task}/{name} seed {seed} is in two files")
                    entry["runs"][seed] = run
    return out


def print_pooled(table: dict[str, dict[str, dict[str, Any]]]) -> None:
    print("| task | configuration | seeds | exact match per seed (%) | mean | SD over seeds | worst seed | "
          "vs TRL (95% CI, seeds and examples) |")
    print("|---|---|---|---|---|---|---|---|")
    for task, configs in table.items():
        ref = vectors(configs["trl"]) if "trl" in configs else None
        for name, config in configs.items():
            seeds = sorted(config["runs"], key=int)
            scores = [100 * config["runs"][s]["exact_match"] for s in seeds]
            sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
            vs = "" if ref is None or name == "trl" else ev.interval(ev.seeds_and_examples_diff(vectors(config), ref))
            print(f"| {task} | {name} | {','.join(seeds)} | {', '.join(f'{x:.1f}' for x in scores)} | "
                  f"{statistics.mean(scores):.1f} | {sd:.1f} | {min(scores):.1f} | {vs} |")


def print_by_part(table: dict[str, dict[str, dict[str, Any]]], results: list[dict[str, Any]], parts: list[str]) -> None:
    settings = results[0]["settings"]
    sizes = tuple(int(x) for x in str(settings["sizes"]).split(","))
    for task, configs in table.items():
        test = task_data.generate(task, int(settings["data_seed"]), sizes)["test"]  # type: ignore[arg-type]
        groups = [next((f"{p}: {tpl.strip()[:40]}" for p, pool, tpl in ex.parts if p in parts and pool != "none"),
                       "other") for ex in test]
        names = sorted(set(groups))
        if names == ["other"]:
            continue
        print(f"\n{task}: exact match per test phrasing (examples) and seed\n")
        print("| configuration | seed | " + " | ".join(f"{g} ({groups.count(g)})" for g in names) + " |")
        print("|---|---|" + "---|" * len(names))
        for name, config in configs.items():
            for seed in sorted(config["runs"], key=int):
                correct = config["runs"][seed]["correct"]
                cells = [100 * sum(c for c, g in zip(correct, groups) if g == n) / groups.count(n) for n in names]
                print(f"| {name} | {seed} | " + " | ".join(f"{x:.0f}" for x in cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--pool", action="store_true", help="gather each configuration's seeds from every file")
    parser.add_argument("--by", default="", help="with --pool: template parts to break exact match down by")
    args = parser.parse_args()
    results = [json.loads(p.read_text()) for p in args.files]
    checked(results, args.files)
    if not args.pool:
        side_by_side(results, args.files)
        return
    table = pooled(results, args.files)
    print_pooled(table)
    if args.by:
        print_by_part(table, results, [p.strip() for p in args.by.split(",")])


if __name__ == "__main__":
    main()
