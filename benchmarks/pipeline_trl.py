"""Side B of the pipeline benchmark (pipeline_gpu.py), in one process as ``ftp run`` is one process: the
plain TRL script (quality/trl_sft.py: LoRA r=16, alpha 32, dropout 0.05, all linear layers, lr 2e-4,
batch 8, 3 epochs, validation each epoch) and then a plain batched ``generate`` evaluation
(quality/evaluate.py's loader and generation) of the base and the fine-tuned model on the test split.

    python benchmarks/pipeline_trl.py --model MODEL_DIR --data TASK_DIR --out ADAPTER_DIR --result result.json

Each part is timed on its own (imports, training, evaluation), so that the parent's process wall time
compares with ``ftp run``'s whole command, and the parts with ftp's train and evaluate steps.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

QUALITY = Path(__file__).resolve().parent / "quality"


def quality_module(name: str) -> Any:
    """A module of benchmarks/quality by its path (an installed ``evaluate`` package must not shadow it)."""
    import importlib.util

    sys.path.insert(0, str(QUALITY))  # evaluate.py imports trl_sft by name
    spec = importlib.util.spec_from_file_location(f"quality_{name}", QUALITY / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="a transformers model folder")
    p.add_argument("--data", type=Path, required=True, help="a folder with train/validation/test.jsonl")
    p.add_argument("--out", type=Path, required=True, help="where the adapter goes")
    p.add_argument("--result", type=Path, required=True, help="the timings, as JSON")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--eval-batch", type=int, default=64)
    p.add_argument("--eval-dtype", choices=["float32", "bfloat16"], default="bfloat16")
    args = p.parse_args(argv)

    t = time.perf_counter()
    import importlib

    for name in ("torch", "transformers", "peft", "datasets", "trl"):  # what the TRL script imports, timed apart
        importlib.import_module(name)

    ev, trl_sft = quality_module("evaluate"), quality_module("trl_sft")
    imports = time.perf_counter() - t
    t = time.perf_counter()
    trl_sft.main(["--model", str(args.model), "--train", str(args.data / "train.jsonl"), "--validation",
                  str(args.data / "validation.jsonl"), "--out", str(args.out), "--seed", str(args.seed),
                  "--device", args.device])
    train = time.perf_counter() - t
    trained = json.loads((args.out / "train_result.json").read_text(encoding="utf-8"))
    evals: dict[str, Any] = {}
    t = time.perf_counter()
    for name, adapter in (("fine-tuned", args.out), ("base", None)):  # ftp's order
        start = time.perf_counter()
        r = ev.evaluate_model(args.model, adapter, args.data / "test.jsonl", args.device, args.eval_dtype, args.eval_batch)
        evals[name] = {"exact_match": r["exact_match"], "examples": r["examples"], "max_new_tokens": r["max_new_tokens"],
                       "seconds": round(time.perf_counter() - start, 2)}
    evaluate = time.perf_counter() - t
    # train counts the imports: ftp imports torch, transformers and peft inside its train step
    out = {"import_s": round(imports, 2), "train_s": round(imports + train, 2), "train_script_s": round(train, 2),
           "train_loop_s": trained["wall_seconds"],
           "steps": trained["steps"], "evaluate_s": round(evaluate, 2), "eval": evals,
           "eval_settings": {"batch_size": args.eval_batch, "dtype": args.eval_dtype, "greedy": True},
           "in_process_s": round(time.perf_counter() - STARTED, 2)}
    args.result.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
