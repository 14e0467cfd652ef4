"""On a GPU: mask-free packed attention (varlen FlashAttention) against SDPA with transformers'
block-diagonal mask, same model, same packed row, bf16. CI has no GPU, so this is the check that the
kernel path (attention.py's ``_flash``) computes what the CPU tests prove for the reference path.

    python benchmarks/packed_attention_gpu.py --out results/packed_attention_gpu.json [--model llama|gemma3]

``--model gemma3-270m``: the shape of Gemma 3 270M itself. ``--model gemma3``: a Gemma 3 text model with sliding-window layers (window 256, one full layer in four,
as Gemma 3 270M alternates them) over a row whose examples are longer than the window, so the kernel's
``window_size`` is what keeps the numbers equal.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any


def packed_row(lengths: list[int], vocab: int) -> Any:
    from ftp.backends.local.chat import Encoded
    from ftp.backends.local.modeling import collate_packed

    rng = random.Random(0)
    rows = []
    for n in lengths:
        ids = [rng.randrange(5, vocab) for _ in range(n)]
        labels = [-100] * (n // 2) + ids[n // 2:]
        rows.append(Encoded(ids, labels, False))
    return collate_packed(rows, "cuda")


def loss_and_grads(model: Any, batch: Any) -> tuple[float, dict[str, Any]]:
    import torch

    from ftp.backends.local.loss import answer_loss

    model.zero_grad()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss, n = answer_loss(model, batch)
    (loss / n).backward()
    return float(loss) / n, {k: p.grad.float().clone() for k, p in model.named_parameters() if p.grad is not None}


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig

    from ftp.backends.local.attention import packed

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", choices=["llama", "gemma3", "gemma3-270m"], default="llama")
    args = parser.parse_args()
    torch.manual_seed(0)
    shape = dict(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=4,
                 num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=4096)
    config: Any = (LlamaConfig(**shape) if args.model == "llama" else
                   Gemma3TextConfig(**shape, head_dim=64, sliding_window=256,
                                    layer_types=["sliding_attention"] * 3 + ["full_attention"]))
    if args.model == "gemma3-270m":  # the quickstart model's shape (random weights): head_dim 256, window 512
        config = Gemma3TextConfig(vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                                  num_attention_heads=4, num_key_value_heads=1, head_dim=256, sliding_window=512,
                                  query_pre_attn_scalar=256, max_position_embeddings=32768,
                                  layer_types=(["sliding_attention"] * 5 + ["full_attention"]) * 3)
    config._attn_implementation = "sdpa"
    model = AutoModelForCausalLM.from_config(config).cuda()
    batch = packed_row([700, 37, 1200, 5, 106], config.vocab_size)
    masked, masked_grads = loss_and_grads(model, batch)
    with packed(model) as used:
        mask_free, grads = loss_and_grads(model, batch)
    worst = max(float((grads[k] - g).norm() / g.norm().clamp_min(1e-12)) for k, g in masked_grads.items())
    result = {"model": args.model, "gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "used_varlen": used,
              "loss_masked_sdpa": round(masked, 5), "loss_mask_free": round(mask_free, 5),
              "loss_rel_diff": abs(mask_free - masked) / masked, "worst_grad_rel_diff": worst,
              "ok": used and abs(mask_free - masked) / masked < 1e-2 and worst < 5e-2}
    print(json.dumps(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
