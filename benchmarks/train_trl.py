"""The TRL side of the training benchmark (benchmarks/train_gpu.py): TRL's SFTTrainer in each configuration
that could be its fastest, on the same model, data and LoRA as ftp's side.

Which TRL configuration is fastest changed between machines (device-notes.md: packing + Liger with the
default fused AdamW on one, packing + Liger + paged 8-bit AdamW on another), so every candidate runs and
ftp is compared against the fastest median, not against one chosen in advance.
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train_model import device, effective_method, peak_gib, reset_peak


@dataclass(frozen=True)
class TrlSetup:
    packing: bool  # best-fit-decreasing, padding-free packing into 1 row of 2,048 (else batch 4, padded)
    liger: bool  # use_liger_kernel: TRL 1.16 applies Liger's RMSNorm / RoPE / SwiGLU
    optim: str | None  # None: TRL's default (adamw_torch_fused with torch >= 2.8); or "paged_adamw_8bit"

    def describe(self) -> str:
        parts = ["packing bfd 1 row" if self.packing else "batch 4, no packing"]
        parts += ["Liger"] if self.liger else []
        return ", ".join(parts + [self.optim or "default optimiser"])


TRL_CONFIGS = {
    "trl-defaults": TrlSetup(packing=False, liger=False, optim=None),
    "trl-packing": TrlSetup(packing=True, liger=False, optim=None),
    "trl-packing-liger": TrlSetup(packing=True, liger=True, optim=None),
    "trl-packing-paged8": TrlSetup(packing=True, liger=False, optim="paged_adamw_8bit"),
    "trl-packing-liger-paged8": TrlSetup(packing=True, liger=True, optim="paged_adamw_8bit"),
}
ALIASES = {"trl-best": "trl-packing-liger-paged8"}  # the name earlier command lines and results used


def missing_for(setup: TrlSetup) -> str | None:
    """Why this configuration cannot run here (Liger and paged 8-bit AdamW are CUDA-only), or None."""
    needs, missing = [], []
    if setup.liger:
        needs.append("liger-kernel")
        if importlib.util.find_spec("liger_kernel") is None:
            missing.append("liger-kernel")
    if setup.optim == "paged_adamw_8bit":
        needs.append("bitsandbytes")
        if importlib.util.find_spec("bitsandbytes") is None:
            missing.append("bitsandbytes")
    if needs and device() != "cuda":
        missing.insert(0, "CUDA")
    if not missing:
        return None
    return f"skipped: needs CUDA and {' and '.join(needs)}; missing here: {', '.join(missing)}"


def load_model(model_dir: Path, method: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if method == "qlora":
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, quantization_config=quant,
                                                    device_map={"": 0})
    dtype = torch.bfloat16 if device() == "cuda" else torch.float32
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device())


def pretokenised(model_dir: Path, data: Path, seq: int) -> tuple[Any, list[dict[str, Any]]]:
    """The same chatml rendering ftp uses, with a completion mask so that TRL trains the answer only."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = []
    for line in data.read_text().splitlines():
        ex = json.loads(line)["messages"]
        prompt = tok(f"<|im_start|>user\n{ex[0]['content']}<|im_end|>\n<|im_start|>assistant\n",
                     add_special_tokens=False)["input_ids"]
        answer = tok(f"{ex[1]['content']}<|im_end|>\n", add_special_tokens=False)["input_ids"]
        if len(prompt) + len(answer) <= seq:
            rows.append({"input_ids": prompt + answer, "completion_mask": [0] * len(prompt) + [1] * len(answer)})
    return tok, rows


def run_trl(model_dir: Path, data: Path, work: Path, steps: int, method: str, setup: TrlSetup,
            seq: int = 2048, on_step_begin: Any = None) -> dict[str, Any]:
    """TRL 1.16 SFTTrainer in one configuration, rows of up to ``seq`` tokens; real (non-padding) tokens/s over
    the steps after the 5th. ``on_step_begin(step)`` is called before each step (graphs_memory_gpu.py's trace)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    method = effective_method(method)
    tok, rows = pretokenised(model_dir, data, seq)
    model = load_model(model_dir, method)
    gpu = device() == "cuda"
    extra: dict[str, Any] = {"packing": True, "per_device_train_batch_size": 1} if setup.packing else {
        "per_device_train_batch_size": 4}
    extra.update({"use_liger_kernel": True} if setup.liger else {})
    extra.update({"optim": setup.optim} if setup.optim else {})
    config = SFTConfig(output_dir=str(work / "trl"), max_steps=steps, gradient_accumulation_steps=1,
                       learning_rate=2e-4, bf16=gpu, use_cpu=not gpu, gradient_checkpointing=True, max_length=seq,
                       completion_only_loss=True, logging_steps=1000, save_strategy="no", report_to=[],
                       dataloader_num_workers=0, **extra)
    seen: dict[str, Any] = {"tokens": 0, "t5": None, "tok5": 0, "steps": 0}

    class Count(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if on_step_begin is not None:
                on_step_begin(state.global_step + 1)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if gpu:
                torch.cuda.synchronize()
            seen["steps"] = state.global_step
            if state.global_step == 5:
                seen["t5"], seen["tok5"] = time.perf_counter(), seen["tokens"]

    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    reset_peak()
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         peft_config=lora, callbacks=[Count()])
    collate = trainer.data_collator

    def counting(batch_rows: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate(batch_rows)
        mask = batch.get("attention_mask")
        seen["tokens"] += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        return batch

    trainer.data_collator = counting
    start = time.perf_counter()
    trainer.train()
    if gpu:
        torch.cuda.synchronize()
    end = time.perf_counter()
    if seen["t5"] is None or seen["steps"] <= 5:
        raise RuntimeError(f"only {seen['steps']} steps ran: --steps must be at least 6 (5 are not timed)")
    tps = (seen["tokens"] - seen["tok5"]) / (end - seen["t5"])
    peak = peak_gib()
    out = {"trainer": f"TRL SFTTrainer ({setup.describe()}) {method}", "optimizer": str(trainer.args.optim.value
                                                                                     if hasattr(trainer.args.optim, "value")
                                                                                     else trainer.args.optim),
           "tokens_per_s": round(tps), "tokens_per_step": round((seen["tokens"] - seen["tok5"]) / (seen["steps"] - 5)),
           "wall_s": round(end - start, 1), "peak_gib": None if peak is None else round(peak, 2)}
    del trainer, model
    reset_peak()
    return out
