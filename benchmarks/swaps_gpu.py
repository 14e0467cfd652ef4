"""On a GPU, with bitsandbytes' 4-bit layers: do the training-time forwards (fused LoRA adapters,
lean gated MLPs; backends/local/swaps.py) give PEFT's and transformers' loss and gradients?

    python benchmarks/swaps_gpu.py --out results/swaps_gpu.json

A small random Llama (4 layers, hidden 512) quantised to 4-bit NF4, LoRA r=16 on every linear layer,
bf16 autocast as training runs it, dropout off so both sides compute the same function. Reports the
relative difference of the loss and of every adapter gradient, PEFT's forward against ftp's."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def build(tmp: Path) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
                         num_key_value_heads=4, vocab_size=1024)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=quant, dtype=torch.bfloat16, device_map="cuda")
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    model.train()
    for m in model.modules():  # as training does under autocast (precision.adapters_follow_autocast)
        if hasattr(m, "cast_input_dtype_enabled"):
            m.cast_input_dtype_enabled = False
    return model


def step(model: Any, ids: Any) -> tuple[float, list[Any]]:
    import torch

    model.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return float(loss), [p.grad.float().clone() for _, p in sorted(model.named_parameters()) if p.requires_grad]


def main() -> None:
    import tempfile

    import torch

    import bench_rounds

    bench_rounds.use_this_checkout(Path(tempfile.mkdtemp()))  # this checkout's ftp, installed or not
    from ftp.backends.local.fused_adapters import fused_adapters
    from ftp.backends.local.gated_mlp import lean_mlp

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = build(Path(tmp))
    ids = torch.randint(0, 1024, (2, 256), generator=torch.Generator().manual_seed(1)).cuda()
    loss, grads = step(model, ids)
    with lean_mlp(model) as mlps, fused_adapters(model) as layers:
        loss2, grads2 = step(model, ids)
    diffs = [float((a - b).norm() / b.norm().clamp_min(1e-12)) for a, b in zip(grads2, grads)]
    out = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "lean_mlps": mlps,
           "fused_lora_layers": layers, "loss_peft": loss, "loss_ftp": loss2,
           "loss_rel_diff": abs(loss2 - loss) / abs(loss), "adapter_grads": len(grads),
           "grad_rel_diff_max": max(diffs), "grad_rel_diff_median": sorted(diffs)[len(diffs) // 2]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
