"""Every training path on a tiny model on the CPU: LoRA, DoRA, QLoRA (bitsandbytes 4-bit), full
fine-tuning, the paged 8-bit optimiser, gradient checkpointing, and the loss-masking options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import invoke, make_examples, write_jsonl

from ftp.backends.local.chat import chat_format, encode
from ftp.backends.local.modeling import load_tokenizer

BASE = ("--quiet", "--steps", "validate,split,train", "--set", "train.epochs=1")


def trained(project: Path) -> dict:
    run_dir = next((project / "runs" / "tiny").iterdir())
    return json.loads((run_dir / "state.json").read_text())["steps"]["train"]["outputs"]


@pytest.mark.parametrize("options, kind", [
    (("--set", "train.lora.dora=true"), "adapter"),
    (("--set", "train.method=qlora"), "adapter"),
    (("--set", "train.method=full", "--set", "train.learning_rate=1e-3"), "full"),
    (("--set", "train.optimizer=paged_adamw_8bit"), "adapter"),
    (("--set", "train.gradient_checkpointing=true"), "adapter"),
    (("--set", "train.loss_on=all"), "adapter"),
])
def test_training_path(project: Path, options: tuple[str, ...], kind: str) -> None:
    result = invoke("run", "pipeline.yaml", *BASE, *options)
    assert result.exit_code == 0, result.stderr
    out = trained(project)
    assert out["model"]["kind"] == kind and out["steps"] == 6
    assert out["metrics"]["train_loss"] > 0
    model_dir = Path(out["model"]["path"])
    assert (model_dir / ("adapter_config.json" if kind == "adapter" else "config.json")).exists()
    if "train.lora.dora=true" in options:
        assert json.loads((model_dir / "adapter_config.json").read_text())["use_dora"] is True


def test_loss_on_options_change_the_mask(tiny_model_dir: Path) -> None:
    fmt = chat_format(load_tokenizer(tiny_model_dir))
    convo = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "red"},
             {"role": "user", "content": "b"}, {"role": "assistant", "content": "blue"}]
    every = encode(fmt, convo, 256, "assistant").trained_tokens
    last = encode(fmt, convo, 256, "last_assistant").trained_tokens
    everything = encode(fmt, convo, 256, "all").trained_tokens
    assert last < every < everything == len(encode(fmt, convo, 256, "all").input_ids)


def test_examples_that_would_train_badly_are_refused_or_dropped(project: Path) -> None:
    rows = make_examples(60)
    rows[4]["messages"][0]["content"] = "long " * 200  # over max_seq_length 64: the answer would be cut off
    write_jsonl(project / "data" / "train.jsonl", rows)
    refused = invoke("run", "pipeline.yaml", *BASE, "--set", "data.split.seed=1")
    assert refused.exit_code == 2
    assert "example(s) would train badly" in refused.stderr and "longer than 64 tokens" in refused.stderr
    assert "train.invalid_examples: drop" in refused.stderr
    dropped = invoke("run", "pipeline.yaml", *BASE, "--set", "train.invalid_examples=drop", "--json")
    assert dropped.exit_code == 0, dropped.stderr
    assert any("dropped 1 example(s)" in line for line in dropped.output.splitlines() if '"warning"' in line)


def test_the_first_example_is_shown_with_its_mask(project: Path) -> None:
    result = invoke("run", "pipeline.yaml", "--json", "--steps", "validate,split,train", "--set", "train.epochs=1")
    shown = [json.loads(line) for line in result.output.splitlines() if '"event": "example"' in line]
    assert shown and "⟦" in shown[0]["message"] and '<|im_end|>' in shown[0]["message"].split("⟦", 1)[1]


def test_the_second_run_skips_tokenisation(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTP_CACHE_DIR", str(tmp_path / "cache"))
    first = invoke("run", "pipeline.yaml", "--json", "--steps", "validate,split,train", "--set", "train.epochs=1")
    second = invoke("run", "pipeline.yaml", "--json", "--steps", "validate,split,train", "--set", "train.epochs=1")
    cached = lambda r: [e for e in map(json.loads, r.output.splitlines()) if e["event"] == "token_cache"]  # noqa: E731
    assert cached(first) == [] and len(cached(second)) == 2  # train and validation
    assert len(list((tmp_path / "cache" / "tokenized").glob("*.arrow"))) == 2
    other = invoke("run", "pipeline.yaml", "--json", "--steps", "validate,split,train", "--set", "train.epochs=1",
                   "--set", "model.max_seq_length=48")
    assert cached(other) == []  # a setting that changes the tokens is a new key


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in rows if "train_loss" in r]


def test_compiled_layers_train_like_eager_ones(project: Path) -> None:
    """``backends.local.compile`` compiles each decoder layer; it must not change what is learnt.
    (aot_eager traces and replays the layers like inductor does, without minutes of C++ compiling.)"""
    eager = invoke("run", "pipeline.yaml", *BASE, "--set", "backends.local.compile=false")
    assert eager.exit_code == 0, eager.stderr
    (first,) = (project / "runs" / "tiny").iterdir()
    compiled = invoke("run", "pipeline.yaml", *BASE, "--set", "backends.local.compile=true",
                      "--set", "backends.local.compile_backend=aot_eager")
    assert compiled.exit_code == 0, compiled.stderr
    (second,) = set((project / "runs" / "tiny").iterdir()) - {first}
    assert "compiled layers" in (second / "run.log").read_text()
    assert "compiled layers" not in (first / "run.log").read_text()
    assert losses(second) == pytest.approx(losses(first), rel=1e-4) and len(losses(first)) == 6


def test_a_failing_compiler_falls_back_to_eager(project: Path) -> None:
    """A torch.compile backend that fails (as inductor did on a GPU with one transformers release) must
    cost the speed-up, never the run."""
    import torch._dynamo

    calls = []

    @torch._dynamo.register_backend(name="ftp_test_broken")
    def broken(graph: object, inputs: object) -> object:
        calls.append(1)
        raise RuntimeError("this compiler is broken on purpose")

    result = invoke("run", "pipeline.yaml", *BASE, "--set", "backends.local.compile=true",
                    "--set", "backends.local.compile_backend=ftp_test_broken")
    assert result.exit_code == 0, result.stderr
    assert calls, "the broken backend was never asked to compile"
    assert trained(project)["steps"] == 6


def test_adapters_compute_in_bf16_and_stay_fp32(tiny_model_dir: Path) -> None:
    """Mixed precision: under autocast the adapters' matmuls run in bf16 while their weights stay fp32;
    afterwards PEFT casts inputs again, as generation (without autocast) needs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftp.backends.local.loss import answer_loss
    from ftp.backends.local.modeling import collate
    from ftp.backends.local.precision import adapters_follow_autocast, autocast

    fmt = chat_format(load_tokenizer(tiny_model_dir))
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    lora_a = next(m for name, m in model.named_modules() if name.endswith("lora_A.default"))
    seen: list[torch.dtype] = []
    lora_a.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    batch = collate([encode(fmt, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "red"}], 64)],
                    fmt.tokenizer.pad_token_id, "cpu")
    with adapters_follow_autocast(model, "bfloat16"):
        with autocast("cpu", "bfloat16"):
            loss, _ = answer_loss(model, batch)
        loss.backward()
    assert seen[-1] == torch.bfloat16 and lora_a.weight.dtype == torch.float32
    assert lora_a.weight.grad is not None and lora_a.weight.grad.dtype == torch.float32
    with torch.no_grad():
        model(input_ids=batch.input_ids)  # no autocast: PEFT's cast to fp32 is back
    assert seen[-1] == torch.float32


def test_bf16_training_on_the_cpu(project: Path) -> None:
    result = invoke("run", "pipeline.yaml", *BASE, "--set", "backends.local.dtype=bfloat16")
    assert result.exit_code == 0, result.stderr
    out = trained(project)
    assert out["steps"] == 6 and out["metrics"]["train_loss"] > 0
    from safetensors.torch import load_file

    weights = load_file(str(Path(out["model"]["path"]) / "adapter_model.safetensors"))
    assert {str(w.dtype) for w in weights.values()} == {"torch.float32"}


def test_float16_training_scales_the_loss(project: Path) -> None:
    """float16 gradients go through a GradScaler: its scale is logged with every step, and the adapters still
    train (fp32 weights, finite loss)."""
    from conftest import train_rows

    result = invoke("run", "pipeline.yaml", *BASE, "--set", "backends.local.dtype=float16")
    assert result.exit_code == 0, result.stderr
    rows = train_rows(next((project / "runs" / "tiny").iterdir()))
    assert len(rows) == 6 and all(r["loss_scale"] >= 1.0 for r in rows)
    assert all(0 < r["train_loss"] < 100 for r in rows)
    out = trained(project)
    from safetensors.torch import load_file

    weights = load_file(str(Path(out["model"]["path"]) / "adapter_model.safetensors"))
    assert {str(w.dtype) for w in weights.values()} == {"torch.float32"}
    assert any(w.abs().sum() > 0 for k, w in weights.items() if "lora_B" in k)  # the scaled steps were taken


def test_float16_full_fine_tuning_is_refused(project: Path) -> None:
    result = invoke("run", "pipeline.yaml", *BASE, "--set", "backends.local.dtype=float16",
                    "--set", "train.method=full")
    assert result.exit_code == 2 and "float16 with train.method: full" in result.stderr


def test_pack_tokens_fills_micro_batches_to_a_token_budget(project: Path) -> None:
    """``train.pack_tokens``: each micro-batch takes examples while they fit the budget (TRL-style packing to a
    length), so steps carry about the same tokens whatever the examples' lengths."""
    result = invoke("run", "pipeline.yaml", *BASE, "--set", "train.pack_tokens=120", "--json")
    assert result.exit_code == 0, result.stderr
    run_dir = next((project / "runs" / "tiny").iterdir())
    rows = [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "train_loss" in r]
    tokens = [b["tokens"] - a["tokens"] for a, b in zip([{"tokens": 0}] + rows, rows)]
    assert tokens and max(tokens) <= 120 * 1  # gradient_accumulation_steps 1: one micro-batch per step
    assert sum(tokens[:-1]) / len(tokens[:-1]) > 80  # filled, not one example at a time (the last may be short)
    fixed = trained(project)["steps"]
    assert fixed != 6 and sum(tokens) > 0  # the step count now follows the budget, not batch_size
    assert any("120 tokens" in line for line in result.output.splitlines() if '"train_plan"' in line)


def test_auto_compiles_only_runs_long_enough_to_repay_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling costs 60-90 s on an H200 and saves 0.1-0.2 s a step (modeling.py's measurements): ``auto``
    leaves shorter runs, and every CPU run, eager; ``true`` / ``false`` are obeyed."""
    import importlib.util

    from ftp.backends.local import modeling

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "triton" else None)
    assert not modeling.wants_compile("auto", "cuda:0", modeling.COMPILE_MIN_STEPS - 1)
    assert modeling.wants_compile("auto", "cuda:0", modeling.COMPILE_MIN_STEPS)
    assert modeling.COMPILE_MIN_STEPS >= 400  # below the break-even measured on the 8B and 1B shapes
    assert not modeling.wants_compile("auto", "cpu", 10**6)
    assert modeling.wants_compile(True, "cpu", 1) and not modeling.wants_compile(False, "cuda:0", 10**6)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)  # no triton: nothing to compile with
    assert not modeling.wants_compile("auto", "cuda:0", 10**6)
