"""The GPU benchmarks' harness on the CPU: interleaved rounds (benchmarks/bench_rounds.py), the training
throughput benchmark (train_gpu.py) on the tiny shape, and the small model's whole pipeline
(pipeline_gpu.py) on a tiny Gemma-like model. The numbers are CPU smoke numbers; what is checked is that
the harness runs, records, skips, resumes and summarises as the H200 runs will need."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _bench_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


rounds = _bench_module("bench_rounds")


def test_rounds_warm_up_first_then_rotate() -> None:
    order = rounds.plan(["a", "b", "c"], repeats=3, warmup=1)
    assert order == [(0, "a"), (0, "b"), (0, "c"), (1, "a"), (1, "b"), (1, "c"),
                     (2, "b"), (2, "c"), (2, "a"), (3, "c"), (3, "a"), (3, "b")]
    # more repeats later extend the same plan, so a resumed run keeps the order it started with
    assert rounds.plan(["a", "b", "c"], repeats=5, warmup=1)[:12] == order
    assert rounds.plan(["ftp", "trl"], repeats=2, warmup=0) == [(0, "ftp"), (0, "trl"), (1, "trl"), (1, "ftp")]


def test_warm_up_runs_are_named_with_their_machine() -> None:
    """Resumed on a freshly started machine, the warm-up round runs again there; timed rounds do not."""
    here = rounds.machine()
    assert rounds.run_key(0, "ftp", warmup=1) == f"r0/ftp@{here}" and rounds.run_key(1, "ftp", warmup=1) == "r1/ftp"
    pooled = [{"key": "r1/a", "config": "a", "host": "m1", "x": 1.0}, {"key": "r2/a", "config": "a", "host": "m2", "x": 3.0}]
    split = rounds.by_machine(pooled, lambda rs: rounds.summarise(rs, ["x"]))
    assert {h: s["a"]["x"]["median"] for h, s in split.items()} == {"m1": 1.0, "m2": 3.0}
    assert rounds.by_machine(pooled[:1], lambda rs: {}) == {}  # one machine: nothing to split


def test_summary_excludes_warm_up_and_failures() -> None:
    runs = [{"key": "r0/a", "config": "a", "warmup": True, "x": 1.0},
            {"key": "r1/a", "config": "a", "warmup": False, "x": 10.0},
            {"key": "r2/a", "config": "a", "warmup": False, "x": 14.0},
            {"key": "r3/a", "config": "a", "warmup": False, "x": 11.0},
            {"key": "r4/a", "config": "a", "warmup": False, "error": "exit 1", "x": 99.0},
            {"key": "r1/b", "config": "b", "warmup": False, "x": None}]
    s = rounds.summarise(runs, ["x"])
    assert s["a"]["x"] == {"median": 11.0, "min": 10.0, "max": 14.0, "n": 3, "spread": round(4 / 11, 3)}
    assert s["b"]["x"] is None
    assert rounds.fmt(s["a"]["x"]) == "11 [10-14]"


def test_a_hung_run_is_stopped_and_recorded(tmp_path: Path) -> None:
    r = rounds.run_process([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
                           tmp_path / "result.json", 1.5, tmp_path / "log.txt")
    assert r["error"] == "timed out after 2s" and "started" in r["log_tail"] and r["process_wall_s"] < 30
    failed = rounds.run_process([sys.executable, "-c", "raise SystemExit(4)"], None, 30, tmp_path / "log.txt")
    assert failed["error"] == "exit 4"


def run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    # one thread: a 2-core CI machine shared with other work makes two OpenMP threads wait on each other
    env = {**os.environ, "FTP_CACHE_DIR": str(cwd / "cache"), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


@pytest.mark.slow
def test_train_benchmark_on_cpu(tmp_path: Path) -> None:
    """Three configurations of the tiny shape, one round; a GPU-only configuration reported skipped; an
    existing results file kept unless --resume; --resume runs only what the file lacks."""
    out, work = tmp_path / "train.json", tmp_path / "work"
    args = [str(BENCH / "train_gpu.py"), "--shape", "tiny", "--steps", "6", "--repeats", "1", "--warmup", "0",
            "--configs", "ftp,trl-defaults,trl-packing,trl-packing-liger", "--work", str(work), "--out", str(out)]
    proc = run(args, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    s = results["summary"]
    assert set(s["configs"]) == {"ftp", "trl-defaults", "trl-packing"} and results["complete"] is True
    for stats in s["configs"].values():
        assert stats["tokens_per_s"]["n"] == 1 and stats["tokens_per_s"]["median"] > 0
        assert stats["peak_gib"] is None  # no GPU: no peak memory, rather than a made-up one
    fastest = s["fastest_trl"]
    assert fastest in ("trl-defaults", "trl-packing")
    assert s["fastest_trl_median_tokens_per_s"] == max(s["configs"][c]["tokens_per_s"]["median"]
                                                       for c in ("trl-defaults", "trl-packing"))
    assert s["ftp_vs_fastest_trl"]["ftp"] == round(s["configs"]["ftp"]["tokens_per_s"]["median"]
                                                   / s["fastest_trl_median_tokens_per_s"], 3)
    assert s["skipped"]["trl-packing-liger"].startswith("skipped: needs CUDA")
    assert "LoRA on this CPU" in results["note"] and results["identity"]["method_used"] == "lora"
    assert [r["key"] for r in results["runs"]] == ["r0/ftp", "r0/trl-defaults", "r0/trl-packing"]
    assert results["runs"][1]["optimizer"] == "adamw_torch_fused"  # TRL's default, recorded as resolved
    assert "| trl-packing-liger | - | skipped: needs CUDA" in out.with_suffix(".md").read_text()

    again = run(args, tmp_path)  # the file exists: refuse rather than overwrite finished runs
    assert again.returncode == 2 and "--resume" in again.stderr
    other = run([*args, "--resume", "--steps", "7"], tmp_path)
    assert other.returncode == 2 and "steps: 6 there, 7 now" in other.stderr

    results["runs"] = [r for r in results["runs"] if r["key"] != "r0/trl-packing"]
    out.write_text(json.dumps(results))
    resumed = run([*args, "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    started = [line.split("start ")[1] for line in resumed.stdout.splitlines() if "] start " in line]
    assert started == ["r0/trl-packing"]
    after = json.loads(out.read_text())
    assert sorted(r["key"] for r in after["runs"]) == ["r0/ftp", "r0/trl-defaults", "r0/trl-packing"]
    assert after["runs"][0] == results["runs"][0]  # the finished runs kept as they were


@pytest.mark.slow
def test_pipeline_benchmark_on_cpu(tmp_path: Path) -> None:
    """ftp run against the TRL script + generate on a tiny model: a budget that starts nothing, then --resume
    runs both sides; train, evaluate and total for each, and B / A."""
    from test_quality_benchmark import build_tiny_gemma

    model = build_tiny_gemma(tmp_path / "tiny-gemma")
    out = tmp_path / "pipeline.json"
    args = [str(BENCH / "pipeline_gpu.py"), "--model", str(model), "--device", "cpu", "--sizes", "40,10,10",
            "--repeats", "1", "--warmup", "0", "--work", str(tmp_path / "work"), "--out", str(out)]
    none = run([*args, "--budget-s", "0.001"], tmp_path)
    assert none.returncode == 3, none.stdout[-3000:] + none.stderr[-3000:]
    assert json.loads(out.read_text())["runs"] == [] and "--resume" in none.stdout
    proc = run([*args, "--resume"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    s = results["summary"]
    assert results["complete"] is True and [r["key"] for r in results["runs"]] == ["r0/ftp", "r0/trl"]
    for side in ("ftp", "trl"):
        for metric in ("train_s", "evaluate_s", "total_s"):
            assert s["sides"][side][metric]["n"] == 1 and s["sides"][side][metric]["median"] > 0
    for metric in ("train_s", "evaluate_s", "total_s"):
        assert s["trl_over_ftp"][metric] == round(s["sides"]["trl"][metric]["median"]
                                                  / s["sides"]["ftp"][metric]["median"], 3)
    a, b = results["runs"]
    assert a["steps"] == b["steps"] == 15  # 40 examples, batch 8, 3 epochs on both sides
    assert set(a["step_seconds"]) == {"validate", "split", "train", "review", "evaluate"}
    assert a["total_s"] >= a["train_s"] + a["evaluate_s"] and b["total_s"] >= b["train_s"] + b["evaluate_s"]
    assert set(b["eval"]) == set(a["eval"]) == {"fine-tuned", "base"}
    pipeline = (tmp_path / "work" / "runs" / "r0-ftp" / "pipeline.yaml").read_text()
    assert [line.split(":")[0] for line in pipeline.splitlines() if not line.startswith(" ")] == ["name", "data", "model"]
    assert "| train step |" in out.with_suffix(".md").read_text()


@pytest.mark.slow
def test_two_gpu_benchmark_on_cpu_processes(tmp_path: Path) -> None:
    """benchmarks/train_ddp.py with gloo processes for GPUs: the 2-process run keeps the losses of one
    process with the same batch, the summary has its scaling, and a killed and resumed run trains every
    step once with the uninterrupted run's losses."""
    out = tmp_path / "ddp.json"
    done = run([str(ROOT / "benchmarks" / "train_ddp.py"), "--shape", "tiny", "--cpu", "--steps", "8", "--per-gpu", "4", "--repeats",
                "1", "--warmup", "0", "--configs", "1,1-double,2-ddp", "--kill-resume", "--work", str(tmp_path / "w"),
                "--out", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    summary = result["summary"]
    assert set(summary) == {"1", "1-double", "2-ddp"}
    assert summary["2-ddp"]["scaling_over_1"] > 0 and summary["2-ddp"]["max_loss_diff_vs_1_gpu_same_batch"] < 2e-3
    kill = result["kill_resume"]
    assert kill["every_step_once"] and kill["max_loss_diff_vs_uninterrupted"] < 2e-3 and kill["killed_at_step"] >= 1


def test_pipeline_benchmark_names_the_sides_it_can_run(tmp_path: Path) -> None:
    """A side it does not know is refused before anything is built, with the ones it does."""
    proc = run([str(BENCH / "pipeline_gpu.py"), "--out", str(tmp_path / "o.json"), "--sides", "ftp,ftp-fast"], tmp_path)
    assert proc.returncode == 2 and "choose from ftp, trl, ftp-unfused" in proc.stderr
    assert not (tmp_path / "o.json").exists()


def test_memory_trace_finds_what_is_alive_at_each_parts_peak() -> None:
    """benchmarks/memory_trace.py's replay of an allocator trace: parts split at the marker allocations,
    each part's peak and the allocations alive then, summed by the line that made them."""
    trace = _bench_module("memory_trace")
    MARK_BASE, MARK_UNIT, replay, summary = trace.MARK_BASE, trace.MARK_UNIT, trace.replay, trace.summary

    def alloc(addr: int, size: int, line: int) -> dict[str, object]:
        frames = [{"filename": "/x/torch/nn/functional.py", "line": 1, "name": "linear"},
                  {"filename": "/x/ftp/backends/local/loss.py", "line": line, "name": "_chunk"}]
        return {"action": "alloc", "addr": addr, "size": size, "frames": frames}

    def free(addr: int) -> dict[str, object]:
        return {"action": "free_requested", "addr": addr}

    marker = {"action": "alloc", "addr": 99, "size": (MARK_BASE + 0) * MARK_UNIT}
    marker2 = {"action": "alloc", "addr": 98, "size": (MARK_BASE + 1) * MARK_UNIT}
    events = [alloc(1, 100, 10), marker, alloc(2, 1000, 20), alloc(3, 500, 30), free(2), alloc(4, 200, 40),
              marker2, free(3), alloc(5, 3000, 50), alloc(6, 1000, 50), free(5), free(6)]
    parts = replay(events, ["warm-up", "capture"])
    assert [p.label for p in parts] == ["before the first marker", "warm-up", "capture"]
    assert [p.peak for p in parts] == [100, 1600, 4300]  # totals since recording began
    top = summary(parts[2])["top"]
    assert top[0]["site"] == "loss.py:50 _chunk [linear]" and top[0]["tensors"] == 2
    assert {row["site"] for row in top} == {"loss.py:50 _chunk [linear]", "loss.py:10 _chunk [linear]",
                                            "loss.py:40 _chunk [linear]"}
