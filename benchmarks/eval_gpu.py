"""Evaluation cost: ``ftp eval`` (base and fine-tuned, every metric, paired intervals, the report) against
a plain hand-written ``generate`` loop over the same model, adapter, test split and answer budget.

On one GPU (what issue 13 asks: the whole command no slower than the fastest plain loop):

    python benchmarks/eval_gpu.py --work /tmp/ev --out results/eval_gpu.json --task intent --repeats 3

Against an older ftp too (the same rounds run that checkout's ``ftp eval`` as well, e.g. the commit
before a speed-up; make it with ``git worktree add /tmp/ftp-before COMMIT`` or ``git archive``):

    python benchmarks/eval_gpu.py --work /tmp/ev --out results/eval_gpu.json --baseline /tmp/ftp-before

On a CPU, with an adapter already trained (``make quickstart``'s, or a quality-benchmark run's):

    python benchmarks/eval_gpu.py --device cpu --adapter runs/NAME/RUN/model --test data/test.jsonl --plain 8

1. Trains an adapter once with ftp's shortest pipeline file (the quality benchmark's task data,
   ``backends.local.compile=false``), so both sides answer with a real fine-tuned model; ``--adapter``
   and ``--test`` skip this and use the given adapter folder and test split.
2. Then rounds of A [A'] B C, each in a fresh process, in an order rotated from round to round (so that
   none always follows the same one): A = ``ftp eval MODEL --data test.jsonl`` (model load, both
   candidates' answers, every metric, 10,000-resample comparisons, eval.json/eval.html); A' = the
   same with the ``--baseline`` checkout's ftp; B and C = the plain loop
   (``benchmarks/quality/evaluate.py``'s loader and batched ``generate``: bf16 on a GPU, left padding,
   longest prompts first, greedy) at batch 8 and with the whole split in one batch (``--plain``),
   answering the fine-tuned model and then the base model with the adapter switched off (one load, as
   ftp does). Round 0 is the warm-up and is excluded; medians and ranges of the rest, and the ratio of
   each ftp to the fastest plain loop.

Timing: ``wall_s`` runs from before each side's first heavy import (``ftp.cli`` and click for ftp; torch
and the loop's helpers for the plain loop) to its last answer or written report, so neither side's
imports go uncounted; ``process_s`` is the child process from start to exit, as the parent saw it.
The results files written before this (results/eval_gpu_intent_run*.json) started the plain loop's clock
after ``import torch``, which favoured it by that import (about 1 s on a CPU, 3 s on the H200 machines).
ftp's ``phases`` (load, generate, score, compare, report) come from its eval.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "quality"))
PHASES = ("load", "generate", "score", "compare", "report")


def train_adapter(work: Path, task: str, model: str, extra: list[str]) -> tuple[Path, Path]:
    """The fine-tuned adapter and the test split (trained once per work folder)."""
    import tasks
    from run import pipeline_yaml

    data = work / "data"
    tasks.write_task(data, task)
    folder = work / "train"
    folder.mkdir(parents=True, exist_ok=True)
    done = sorted(folder.glob(f"runs/{task}/*/model/adapter_config.json"))
    if not done:
        (folder / "pipeline.yaml").write_text(pipeline_yaml(task, data / task, model), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "ftp", "run", "pipeline.yaml", "--backend", "local", "--quiet",
                               "--steps", "validate,split,train", "--set", "backends.local.compile=false",
                               *[x for e in extra for x in ("--set", e)]],
                              cwd=folder, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"training failed: {proc.stderr[-2000:]}")
        done = sorted(folder.glob(f"runs/{task}/*/model/adapter_config.json"))
    return done[-1].parent, data / task / "test.jsonl"


def one_ftp(adapter: Path, test: Path, report: Path) -> dict[str, Any]:
    start = time.perf_counter()
    from click.testing import CliRunner

    from ftp.cli import cli

    result = CliRunner().invoke(cli, ["eval", str(adapter), "--data", str(test), "--report", str(report), "--json"],
                                catch_exceptions=False)
    wall = time.perf_counter() - start
    if result.exit_code != 0:
        raise SystemExit(result.output)
    payload = json.loads((report / "eval.json").read_text())
    return {"wall_s": wall, "generate_s": {k: v["seconds"] for k, v in payload["timing"].items()},
            "decoding": payload["decoding"], "exact_match": {c: m.get("exact_match") for c, m in payload["metrics"].items()},
            "loss": {c: m.get("loss") for c, m in payload["metrics"].items()},
            "metrics": payload["metrics_chosen"]["names"], "phases": payload.get("phases", {})}


def one_plain(adapter: Path, test: Path, batch: int, max_new_tokens: int, device: str) -> dict[str, Any]:
    start = time.perf_counter()
    import torch
    from evaluate import generate, load_candidate, load_tokenizer, read_conversations, render_prompt
    from run import resolve_model

    meta = json.loads((adapter / "ftp_model.json").read_text())
    base_dir = resolve_model(meta["base_model"])
    tok = load_tokenizer(base_dir)
    model = load_candidate(base_dir, adapter, device, "bfloat16" if device == "cuda" else "float32")
    loaded = time.perf_counter()
    conversations = read_conversations(test)
    prompts = [render_prompt(tok, c) for c in conversations]
    size = len(prompts) if batch <= 0 else batch
    timing, answers = {}, {}
    for label in ("fine-tuned", "base"):
        t0 = time.perf_counter()
        if label == "base":
            with model.disable_adapter():
                answers[label] = generate(model, tok, prompts, max_new_tokens, size, device)
        else:
            answers[label] = generate(model, tok, prompts, max_new_tokens, size, device)
        if device == "cuda":
            torch.cuda.synchronize()
        timing[label] = time.perf_counter() - t0
    refs = [c[-1]["content"].strip() for c in conversations]
    exact = {k: sum(a.strip() == r for a, r in zip(v, refs)) / len(refs) for k, v in answers.items()}
    return {"wall_s": time.perf_counter() - start, "load_s": loaded - start, "generate_s": timing,
            "batch": size, "exact_match": exact}


def child(args: argparse.Namespace) -> None:
    adapter, test = Path(args.adapter), Path(args.test)
    if args.one.startswith("ftp"):
        out = one_ftp(adapter, test, Path(args.report))
    else:
        out = one_plain(adapter, test, int(args.one.split(":")[1]), args.max_new_tokens, args.device)
    print("RESULT " + json.dumps(out))


def shim(root: Path, folder: Path) -> Path:
    """A folder under which ``import ftp`` is the checkout ``root`` (its core/, plugins/ and backends/)."""
    package = folder / "ftp"
    if not package.exists():
        package.mkdir(parents=True)
        for entry in (root / "core").iterdir():
            if entry.name != "__pycache__":
                (package / entry.name).symlink_to(entry.resolve())
        (package / "plugins").symlink_to((root / "plugins").resolve())
        (package / "backends").symlink_to((root / "backends").resolve())
    return folder


def run_child(config: str, adapter: Path, test: Path, report: Path, max_new_tokens: int, device: str,
              pythonpath: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", config, "--adapter", str(adapter), "--test", str(test),
           "--report", str(report), "--max-new-tokens", str(max_new_tokens), "--device", device]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": pythonpath})
    took = time.perf_counter() - start
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{config} failed: {proc.stderr[-3000:]}")
    return {**json.loads(line[len("RESULT "):]), "process_s": took}


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/eval-bench", help="folder for the task data, the training run and reports")
    ap.add_argument("--out", default="eval_gpu.json", help="the results file")
    ap.add_argument("--task", default="intent", help="the quality benchmark's task to train and test on")
    ap.add_argument("--model", default="builtin:gemma-3-270m", help="the base model to train the adapter on")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (after one warm-up round)")
    ap.add_argument("--commit", default="", help="recorded in the results file")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu (float32, ftp's CPU defaults)")
    ap.add_argument("--plain", default="8,0", help="batch sizes of the plain loop (0: the whole split at once)")
    ap.add_argument("--train-set", action="append", default=[], help="extra --set for the training run")
    ap.add_argument("--adapter", default=None, help="an adapter folder ftp trained (ftp_model.json names its base): no training")
    ap.add_argument("--test", default=None, help="with --adapter: the test split (JSONL chat examples)")
    ap.add_argument("--baseline", default=None,
                    help="another ftp checkout (a folder with core/, plugins/, backends/) whose ftp eval runs too, as ftp@baseline")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--report", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--max-new-tokens", type=int, default=0, help=argparse.SUPPRESS)
    return ap.parse_args()


def both_generated(run: dict[str, Any]) -> float:
    """Seconds spent answering as both candidates: ftp's generate phase (which counts a joint batch, whose
    candidates share one timing, once), else the sum of the candidates' timings."""
    phases = run.get("phases") or {}
    return float(phases["generate"]) if "generate" in phases else float(sum(run["generate_s"].values()))


def summarise(rounds: list[dict[str, Any]], configs: list[str], plains: list[str]) -> dict[str, Any]:
    """Medians of the timed rounds, ftp's phases, and the ratios to the fastest plain loop."""
    timed = [r for r in rounds if not r["warmup"]]
    out: dict[str, Any] = {}
    for config in configs:
        gen = [both_generated(r[config]) for r in timed]
        out[config] = {"wall_s": summary([r[config]["wall_s"] for r in timed]),
                       "process_s": summary([r[config]["process_s"] for r in timed]), "generate_both_s": summary(gen)}
        if config.startswith("ftp"):
            out[config]["phases_s"] = {p: statistics.median(r[config]["phases"].get(p, 0.0) for r in timed) for p in PHASES}
        else:
            out[config]["load_s"] = summary([r[config]["load_s"] for r in timed])
    fastest = min(plains, key=lambda c: out[c]["wall_s"]["median"])
    out["fastest_plain"] = fastest
    for config in (c for c in configs if c.startswith("ftp")):
        suffix = "" if config == "ftp" else "_" + config.replace("@", "_")
        for key, field in (("wall", "wall_s"), ("process", "process_s"), ("generate", "generate_both_s")):
            out[f"ratio_{key}{suffix}_over_fastest_plain"] = out[config][field]["median"] / out[fastest][field]["median"]
    return out


def main() -> None:
    args = parse()
    if args.one:
        child(args)
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    from run import ftp_env

    here = ftp_env(work)[0]["PYTHONPATH"]  # children import this checkout's ftp
    os.environ["PYTHONPATH"] = here
    if args.adapter:
        if not args.test:
            raise SystemExit("--adapter needs --test (the test split to evaluate on)")
        adapter, test = Path(args.adapter).resolve(), Path(args.test).resolve()
    else:
        adapter, test = train_adapter(work, args.task, args.model, args.train_set)
    print(f"adapter {adapter}", flush=True)
    paths = {"ftp": here}
    if args.baseline:
        old = str(shim(Path(args.baseline), work / "baseline-shim"))
        paths["ftp@baseline"] = os.pathsep.join(p for p in (old, here) if p)  # its ftp first, the rest as for ours
    rounds: list[dict[str, Any]] = []
    budget = 0
    plains = [f"plain:{b.strip()}" for b in args.plain.split(",") if b.strip()]
    configs = [*paths, *plains]
    for r in range(args.repeats + 1):
        row: dict[str, Any] = {"round": r, "warmup": r == 0}
        # rotated, so that no config always follows the same one; round 0 starts with ftp, whose answer
        # budget the plain loop is given
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        row["order"] = order
        for config in order:
            row[config] = run_child(config, adapter, test, work / f"report-{config.replace('@', '-')}-{r}",
                                    0 if config in paths else budget, args.device, paths.get(config, here))
            budget = row[config]["decoding"]["max_new_tokens"] if config in paths else budget
        rounds.append(row)
        print(json.dumps({k: (round(v["wall_s"], 2) if isinstance(v, dict) else v) for k, v in row.items()}), flush=True)
    result: dict[str, Any] = {"task": args.task, "adapter": str(adapter), "device": args.device,
                              "test_examples": sum(1 for _ in test.open()), "commit": args.commit,
                              "baseline": args.baseline, "max_new_tokens": budget, "rounds": rounds,
                              **summarise(rounds, configs, plains)}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print("results: " + json.dumps({k: v for k, v in result.items() if k != "rounds"}), flush=True)


if __name__ == "__main__":
    main()
