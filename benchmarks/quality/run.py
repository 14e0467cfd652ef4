"""Quality: ftp's defaults against a hand-written TRL script (and the base model), on four narrow tasks.

    python benchmarks/quality/run.py --out results/quality.json                # the whole benchmark, one GPU
    python benchmarks/quality/run.py --variant noes:train.early_stopping=null --variant last:train.loss_on=last_assistant
    python benchmarks/quality/run.py --model PATH --tasks intent --sizes 40,10,10 --seeds 1 --device cpu --skip-trl

Generates the tasks' data (tasks.py), then trains, per task and seed: ftp with the shortest pipeline
file (``name``, ``data: {train, validation, test}``, ``model: {base}``, nothing else) through
``python -m ftp run pipeline.yaml --backend local --json --set train.seed=N``, each ftp variant
(the same with more ``--set``), and the TRL reference (trl_sft.py). Trainings and evaluations run
concurrently as separate processes (``--parallel``), each with its log in the work folder. Every
candidate, the base model included, is scored by the same function (evaluate.py). Results are
rewritten after every finished job, so a time-out keeps what finished; running again with the same
``--work`` folder skips what is done.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import evaluate as ev  # noqa: E402
import tasks as task_data  # noqa: E402

PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "tokenizers", "gguf")


@dataclass
class Config:
    name: str
    kind: str  # base, ftp, trl
    sets: list[str] = field(default_factory=list)


@dataclass
class Job:
    key: str  # task/config/sSEED, or eval:task/config/sSEED
    cmd: list[str]
    folder: Path
    done_file: Path
    after: str | None = None  # the training an evaluation waits for
    proc: Any = None
    started: float = 0.0


def parse_variant(text: str) -> Config:
    name, sep, rest = text.partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in ("base", "ftp", "trl"):
        raise SystemExit(f"--variant {text!r}: expected NAME:KEY=VALUE[,KEY=VALUE...] with a new name")
    sets = [s for s in re.split(r",(?=[\w.-]+=)", rest) if s]
    if not sets or any("=" not in s for s in sets):
        raise SystemExit(f"--variant {text!r}: expected NAME:KEY=VALUE[,KEY=VALUE...]")
    return Config(name, "ftp", sets)


def ftp_env(work: Path) -> tuple[dict[str, str], Path | None]:
    """PYTHONPATH under which ``import ftp`` is this checkout (a folder of links when ftp is not installed)."""
    probe = subprocess.run([sys.executable, "-c", "import ftp, os; print(os.path.realpath(ftp.__file__))"],
                           capture_output=True, text=True, cwd=str(work))
    paths, shim_root = os.environ.get("PYTHONPATH", ""), None
    if probe.returncode != 0 or Path(probe.stdout.strip()).parent != (ROOT / "core").resolve():
        shim = work / "ftp-shim" / "ftp"
        if not shim.exists():
            shim.mkdir(parents=True)
            for entry in (ROOT / "core").iterdir():
                if entry.name != "__pycache__":
                    (shim / entry.name).symlink_to(entry)
            (shim / "plugins").symlink_to(ROOT / "plugins")
            (shim / "backends").symlink_to(ROOT / "backends")
        shim_root = shim.parent
        paths = os.pathsep.join(p for p in (str(shim_root), paths) if p)
    return {"PYTHONPATH": paths}, shim_root


def resolve_model(spec: str) -> Path:
    """A model folder: ``builtin:gemma-3-270m`` through ftp's own resolver (converted once, cached)."""
    if spec.startswith("builtin:"):
        from ftp.backends.local.models import resolve

        return resolve(spec).resolve()
    return Path(spec).resolve()


def versions(packages: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def commit(given: str | None) -> dict[str, Any]:
    if given:
        return {"commit": given, "source": "--commit"}
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        return {"commit": head.stdout.strip(), "dirty": bool(dirty), "source": "git"}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "source": "unavailable (pass --commit)"}


def make_data(work: Path, names: list[str], seed: int, sizes: tuple[int, int, int]) -> dict[str, Any]:
    """Generate the tasks; refuse a work folder whose earlier results came from other data."""
    folder, info = work / "data", {}
    for name in names:
        info[name] = task_data.write_task(folder, name, seed, sizes)
        info[name]["sha256"] = {s: hashlib.sha256((folder / name / f"{s}.jsonl").read_bytes()).hexdigest()
                                for s in task_data.SPLITS}
    stamp = work / "data.json"
    if stamp.exists():
        old = json.loads(stamp.read_text())
        changed = [n for n in names if n in old and old[n]["sha256"] != info[n]["sha256"]]
        if changed:
            raise SystemExit(f"{work}: earlier results were made on other data for {changed}; use --fresh or another --work")
        info = {**old, **info}
    stamp.write_text(json.dumps(info, indent=1))
    return info


def pipeline_yaml(task: str, data: Path, model: str) -> str:
    q = json.dumps  # JSON strings are YAML strings
    return (f"name: {task}\ndata:\n  train: {q(str(data / 'train.jsonl'))}\n  validation: {q(str(data / 'validation.jsonl'))}\n"
            f"  test: {q(str(data / 'test.jsonl'))}\nmodel:\n  base: {q(model)}\n")


def plan(args: argparse.Namespace, configs: list[Config], model_dir: Path, work: Path) -> list[Job]:
    py, jobs, trainings, evals = sys.executable, [], {}, []
    for seed in args.seed_list:
        for task in args.task_list:
            data = work / "data" / task
            for c in configs:
                if c.kind == "base":
                    continue
                folder = work / "jobs" / task / c.name / f"s{seed}"
                if c.kind == "ftp":
                    sets = [*args.ftp_set, *c.sets, f"train.seed={seed}"]
                    if args.device == "cpu":
                        sets.append("backends.local.devices=cpu")
                    cmd = [py, "-m", "ftp", "run", "pipeline.yaml", "--backend", "local", "--json"]
                    cmd += ["--steps", args.ftp_steps] if args.ftp_steps else []
                    cmd += [a for s in sets for a in ("--set", s)]
                else:
                    cmd = [py, str(HERE / "trl_sft.py"), "--model", str(model_dir), "--train", str(data / "train.jsonl"),
                           "--validation", str(data / "validation.jsonl"), "--out", str(folder / "adapter"),
                           "--seed", str(seed), "--device", args.device, *c.sets]
                key = f"{task}/{c.name}/s{seed}"
                trainings[key] = Job(key, cmd, folder, folder / "done.json")
                evals.append((key, task, folder, "adapter" if c.kind == "trl" else "model"))
    base_evals = [(f"{t}/base/s0", t, work / "jobs" / t / "base" / "s0", "") for t in args.task_list]
    for key, task, folder, adapter in base_evals + evals:
        cmd = [py, str(HERE / "evaluate.py"), "--base", str(model_dir), "--test", str(work / "data" / task / "test.jsonl"),
               "--out", str(folder / "eval.json"), "--device", args.device, "--dtype", args.eval_dtype,
               "--batch-size", str(args.eval_batch)]
        after = None if key.endswith("/base/s0") else key
        if after:
            cmd += ["--adapter", str(folder / adapter)]
        jobs.append(Job(f"eval:{key}", cmd, folder, folder / "eval.json", after=after))
    train_jobs = list(trainings.values())
    first_wave = len(args.task_list) * (len(configs) - 1)
    return train_jobs[:first_wave] + jobs[:len(base_evals)] + train_jobs[first_wave:] + jobs[len(base_evals):]


def finish_training(job: Job, rc: int, wall: float) -> dict[str, Any]:
    """What a finished training left, as done.json (or the failure, not written, so a rerun retries)."""
    log = (job.folder / "log.txt").read_text(errors="replace")
    if rc != 0:
        return {"error": f"exit {rc}", "log_tail": log[-2000:]}
    if job.cmd[1].endswith("trl_sft.py"):
        result = json.loads((job.folder / "adapter" / "train_result.json").read_text())
        done = {"train_wall_s": result["wall_seconds"], "steps": result["steps"], "process_wall_s": round(wall, 1),
                "train_loss": result["metrics"].get("train_loss")}
    else:
        events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        run_dir = job.folder / next(e["run_dir"] for e in events if e.get("run_dir"))  # absolute stays absolute
        train = json.loads((run_dir / "state.json").read_text())["steps"]["train"]["outputs"]
        report = json.loads((run_dir / "eval.json").read_text()).get("metrics", {}) if (run_dir / "eval.json").exists() else {}
        if (job.folder / "model").is_symlink() or (job.folder / "model").exists():
            (job.folder / "model").unlink()
        (job.folder / "model").symlink_to(run_dir / "model")
        done = {"run_dir": str(run_dir), "train_wall_s": train.get("wall_seconds"), "steps": train.get("steps"),
                "best_step": train.get("best_step"), "stopped_early": train.get("stopped_early"),
                "process_wall_s": round(wall, 1), "train_loss": train.get("metrics", {}).get("train_loss"),
                "eval_loss": train.get("metrics", {}).get("eval_loss"),
                "ftp_reported_exact_match": {k: v.get("exact_match") for k, v in report.items() if isinstance(v, dict)}}
    job.done_file.write_text(json.dumps(done, indent=1))
    return done


def schedule(jobs: list[Job], args: argparse.Namespace, env: dict[str, str], on_change: Any) -> dict[str, Any]:
    failures: dict[str, Any] = {}
    done = {j.key for j in jobs if j.done_file.exists()}
    pending = [j for j in jobs if j.key not in done]
    running: list[Job] = []
    start = time.perf_counter()
    while pending or running:
        elapsed = time.perf_counter() - start
        over = args.deadline and elapsed > args.deadline
        if args.stop_after and elapsed > args.stop_after:
            for job in running:  # left unfinished: the next invocation with this --work starts them again
                job.proc.terminate()
                job.proc.wait()
            print(f"--stop-after: stopped {len(running)} running and left {len(pending)} pending job(s); "
                  "run again with the same --work to continue", flush=True)
            failures["incomplete"] = {"running": [j.key for j in running], "pending": [j.key for j in pending]}
            break
        failed = {k.split(":", 1)[-1] for k in failures}
        pending = [j for j in pending if j.after not in failed]
        ready = [j for j in pending if j.after is None or j.after in done]
        ready.sort(key=lambda j: not j.after)  # evaluations of finished trainings first: results come in early
        while ready and len(running) < args.parallel and not over:
            job = ready.pop(0)
            pending.remove(job)
            if not job.key.startswith("eval:"):
                shutil.rmtree(job.folder, ignore_errors=True)  # a half-done attempt starts over
                job.folder.mkdir(parents=True)
                (job.folder / "pipeline.yaml").write_text(pipeline_yaml(job.key.split("/")[0],
                                                          Path(args.work) / "data" / job.key.split("/")[0], args.model_spec))
            job.folder.mkdir(parents=True, exist_ok=True)
            log = open(job.folder / ("eval_log.txt" if job.key.startswith("eval:") else "log.txt"), "w")
            job.proc = subprocess.Popen(job.cmd, cwd=job.folder, env=env, stdout=log, stderr=subprocess.STDOUT)
            job.started = time.perf_counter()
            running.append(job)
            print(f"[{time.perf_counter() - start:7.1f}s] start {job.key}", flush=True)
        if over and not running:
            print(f"--deadline: {len(pending)} job(s) not started; run again with the same --work to continue", flush=True)
            failures["incomplete"] = {"running": [], "pending": [j.key for j in pending]}
            break
        time.sleep(0.5)
        for job in [j for j in running if j.proc.poll() is not None]:
            running.remove(job)
            rc, wall = job.proc.returncode, time.perf_counter() - job.started
            if job.key.startswith("eval:"):
                ok = rc == 0 and job.done_file.exists()
                info = {} if ok else {"error": f"exit {rc}",
                                      "log_tail": (job.folder / "eval_log.txt").read_text(errors="replace")[-2000:]}
            else:
                info = finish_training(job, rc, wall)
                ok = "error" not in info
            (done.add(job.key) if ok else failures.__setitem__(job.key, info))
            print(f"[{time.perf_counter() - start:7.1f}s] {'done' if ok else 'FAILED'} {job.key} ({wall:.0f}s)", flush=True)
            on_change(failures)
    return failures


def collect(args: argparse.Namespace, configs: list[Config], work: Path, meta: dict[str, Any],
            failures: dict[str, Any]) -> dict[str, Any]:
    """Every number so far: per task and configuration, per seed; paired comparisons with bootstrap intervals."""
    out: dict[str, Any] = {**meta, "failures": failures, "tasks": {}}
    for task in args.task_list:
        entry: dict[str, Any] = {"data": meta["data"].get(task, {}).get("stats"), "configs": {}, "comparisons": {}}
        for c in configs:
            seeds = [0] if c.kind == "base" else args.seed_list
            runs = {}
            for s in seeds:
                folder = work / "jobs" / task / c.name / f"s{s}"
                if not (folder / "eval.json").exists():
                    continue
                result = json.loads((folder / "eval.json").read_text())
                train = json.loads((folder / "done.json").read_text()) if (folder / "done.json").exists() else {}
                runs[str(s)] = {**{k: result[k] for k in ("exact_match", "correct", "predictions", "max_new_tokens",
                                                         "template_agrees", "seconds")}, "train": train}
            if runs:
                ems = [r["exact_match"] for r in runs.values()]
                entry["configs"][c.name] = {"kind": c.kind, "sets": c.sets, "runs": runs, "mean": sum(ems) / len(ems),
                                            "train_wall_s": [r["train"].get("train_wall_s") for r in runs.values()]}
        vectors = {n: [r["correct"] for r in v["runs"].values()] for n, v in entry["configs"].items()}
        for name, v in entry["configs"].items():
            if v["kind"] == "base":
                continue
            for other in ("base", "trl"):
                if other in vectors and other != name and (v["kind"] == "ftp" or other == "base"):
                    cmp = ev.bootstrap_diff(vectors[name], vectors[other], args.resamples, args.bootstrap_seed)
                    if other == "trl":  # issue 11's goal: at least as good as TRL, and 5 points better
                        cmp["goal_5_points"] = cmp["diff"] >= 0.05
                    entry["comparisons"][f"{name} - {other}"] = cmp
        out["tasks"][task] = entry
    return out


def table(results: dict[str, Any]) -> str:
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}"  # noqa: E731
    rows = ["| task | configuration | exact match per seed (%) | mean | vs base (95% CI) | vs TRL (95% CI) | train s per seed |",
            "|---|---|---|---|---|---|---|"]
    for task, entry in results["tasks"].items():
        for name, c in entry["configs"].items():
            per = ", ".join(pct(r["exact_match"]) for r in c["runs"].values())
            cmp = [ev.interval(b) if (b := entry["comparisons"].get(f"{name} - {o}")) else "" for o in ("base", "trl")]
            walls = ", ".join("-" if w is None else f"{w:.0f}" for w in c["train_wall_s"]) if c["kind"] != "base" else ""
            label = name + (f" ({', '.join(c['sets'])})" if c["sets"] else "")
            rows.append(f"| {task} | {label} | {per} | {pct(c['mean'])} | {cmp[0]} | {cmp[1]} | {walls} |")
    return "\n".join(rows)


def write(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)
    path.with_suffix(".md").write_text(table(results) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality.json")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ftp-quality")
    p.add_argument("--fresh", action="store_true", help="delete the work folder first")
    p.add_argument("--model", default="builtin:gemma-3-270m", help="builtin:gemma-3-270m or a transformers model folder")
    p.add_argument("--tasks", default=",".join(task_data.TASKS))
    p.add_argument("--sizes", default="800,100,120", help="train,validation,test examples per task")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--seeds", default="1,2", help="training seeds of every trained configuration")
    p.add_argument("--ftp-set", action="append", default=[], metavar="KEY=VALUE", help="--set for every ftp run")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...", help="another ftp configuration")
    p.add_argument("--ftp-steps", default="validate,split,train",
                   help="ftp's steps (default: up to train; its own evaluation would repeat the shared one)")
    p.add_argument("--skip-ftp-default", action="store_true", help="only the --variant configurations of ftp")
    p.add_argument("--skip-trl", action="store_true", help="no TRL reference (when trl is not installed)")
    p.add_argument("--trl-ftp-start", action="store_true",
                   help="also TRL from ftp's LoRA start and example order for each seed (trl_ftpstart; ftp_start.py)")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--parallel", type=int, default=6, help="processes at once on the one machine")
    p.add_argument("--deadline", type=float, default=0, help="seconds after which no new job starts (0: none)")
    p.add_argument("--stop-after", type=float, default=0, help="seconds after which running jobs are stopped (0: none)")
    p.add_argument("--eval-dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--eval-batch", type=int, default=32)
    p.add_argument("--resamples", type=int, default=10_000)
    p.add_argument("--bootstrap-seed", type=int, default=0)
    p.add_argument("--commit", default=None, help="the commit measured, where git is not available")
    args = p.parse_args(argv)
    args.task_list = [t.strip() for t in args.tasks.split(",") if t.strip()]
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    sizes = tuple(int(x) for x in args.sizes.split(","))
    unknown = [t for t in args.task_list if t not in task_data.TASKS]
    if unknown or len(sizes) != 3:
        raise SystemExit(f"--tasks: unknown {unknown}; known {list(task_data.TASKS)}" if unknown else "--sizes: give 3 numbers")
    configs = [Config("base", "base")] + ([] if args.skip_ftp_default else [Config("ftp", "ftp")])
    configs += [parse_variant(v) for v in args.variant] + ([] if args.skip_trl else [Config("trl", "trl")])
    configs += [Config("trl_ftpstart", "trl", ["--ftp-start"])] if args.trl_ftp_start else []
    if not args.skip_trl and subprocess.run([sys.executable, "-c", "import trl, datasets"], capture_output=True).returncode:
        raise SystemExit("trl (and datasets) are not importable here: install them or pass --skip-trl")
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    work = args.work.resolve()
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    args.work = str(work)
    path_env, shim_root = ftp_env(work)
    env = {**os.environ, **path_env, "PYTHONUNBUFFERED": "1", "FTP_RUNS_DIR": "runs",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // max(1, args.parallel))))
    if shim_root:
        sys.path.insert(0, str(shim_root))
    model_dir = resolve_model(args.model)
    args.model_spec = args.model if args.model.startswith("builtin:") else str(model_dir)
    meta = {"benchmark": "quality", "commit": commit(args.commit), "versions": versions(), "model": args.model,
            "model_dir": str(model_dir), "device": args.device,
            "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
            "settings": {k: v for k, v in vars(args).items() if k not in ("task_list", "seed_list")},
            "configs": [vars(c) for c in configs], "data": make_data(work, args.task_list, args.data_seed, sizes),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    jobs = plan(args, configs, model_dir, work)
    write(args.out, collect(args, configs, work, meta, {}))
    failures = schedule(jobs, args, env, lambda f: write(args.out, collect(args, configs, work, meta, f)))
    results = collect(args, configs, work, meta, failures)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    results["complete"] = not failures
    write(args.out, results)
    print(table(results))
    print(f"results: {args.out}")
    failed = [k for k in failures if k != "incomplete"]
    if failed:
        print(f"{len(failed)} job(s) failed: {', '.join(failed)}", file=sys.stderr)
    if failed or "incomplete" in failures:
        sys.exit(1 if failed else 3)


if __name__ == "__main__":
    main()
