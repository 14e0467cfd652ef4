"""What a CUDA graph capture accepts on this GPU, for backends/local/graphs.py: each probe records a small
forward and backward, replays it on new inputs, and compares with the same step run eagerly.

    python benchmarks/cuda_graphs_gpu.py --out results/cuda_graphs_probe.json

- ``checkpoint_with_dropout``: a checkpointed layer with dropout, saving the generator's state for the
  recompute (``preserve_rng_state=True``), as gradient checkpointing does when the adapters have dropout;
- ``checkpoint_without_state``: the same without dropout and without saving the state (ftp's setting then);
- ``varlen_empty_examples``: variable-length FlashAttention with offsets padded by empty examples (a budget
  row's fixed shape) against the same row without them;
- ``bnb_4bit_matmul``: bitsandbytes' 4-bit linear layer (QLoRA's frozen weights), forward and backward.

CI has no GPU; the CPU tests (tests/test_cuda_graphs.py) cover the same steps run eagerly.
"""

from __future__ import annotations

import argparse
import json
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


def replayed(step: Callable[[Any], Any], inputs: list[Any]) -> tuple[list[Any], list[Any]]:
    """``step`` on each input eagerly, then captured once and replayed on each: (eager outputs, replayed)."""
    import torch

    eager = [step(x.clone()) for x in inputs]
    static = inputs[0].clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step(static)  # lazy set-up outside the capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        out = step(static)
    got = []
    for x in inputs:
        static.copy_(x)
        graph.replay()
        got.append(out.clone())
    return eager, got


def gap(a: list[Any], b: list[Any]) -> float:
    return max(float((x.float() - y.float()).abs().max()) for x, y in zip(a, b, strict=True))


def checkpointed(dropout: float, keep_state: bool) -> dict[str, Any]:
    import torch
    from torch.utils.checkpoint import checkpoint

    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Dropout(dropout), torch.nn.Linear(256, 256)).cuda()

    def step(x: Any) -> Any:
        x = x.detach().requires_grad_(True)  # a view of the graph's input buffer
        y = checkpoint(layer, x, use_reentrant=False, preserve_rng_state=keep_state)
        (grad,) = torch.autograd.grad(y.square().sum(), x)
        return grad

    inputs = [torch.randn(64, 256, device="cuda") for _ in range(3)]
    eager, got = replayed(step, inputs)
    # with dropout the draws differ between eager and replay: finite gradients are what can be compared
    return {"max_abs_diff": None if dropout else gap(eager, got), "finite": all(bool(g.isfinite().all()) for g in got)}


def varlen_empty() -> dict[str, Any]:
    import inspect

    import torch
    from torch.nn.attention.varlen import varlen_attn

    # this torch's way of saying causal, as backends/local/attention.py reads it
    causal = ({"is_causal": True} if "is_causal" in inspect.signature(varlen_attn).parameters
              else {"window_size": (-1, 0)})
    torch.manual_seed(0)
    q, k, v = (torch.randn(300, 8, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    outs = []
    for offsets in ([0, 100, 300], [0, 100, 300] + [300] * 13):
        starts = torch.tensor(offsets, dtype=torch.int32, device="cuda")
        out = varlen_attn(q, k, v, starts, starts, 300, 300, **causal)
        grads = torch.autograd.grad(out.float().square().sum(), (q, k, v))
        outs.append([out, *grads])
    return {"max_abs_diff": gap(outs[0], outs[1])}


def bnb_4bit() -> dict[str, Any]:
    import bitsandbytes as bnb
    import torch

    torch.manual_seed(0)
    layer = bnb.nn.Linear4bit(1024, 1024, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4").cuda()
    lora = torch.nn.Linear(1024, 16, bias=False, device="cuda", dtype=torch.bfloat16)

    def step(x: Any) -> Any:
        x = x.detach().requires_grad_(True)
        y = layer(x) + lora(x).sum(-1, keepdim=True)
        (grad,) = torch.autograd.grad(y.float().square().sum(), x)
        return grad

    inputs = [torch.randn(512, 1024, device="cuda", dtype=torch.bfloat16) for _ in range(3)]
    eager, got = replayed(step, inputs)
    return {"max_abs_diff": gap(eager, got), "bitsandbytes": bnb.__version__}


PROBES: dict[str, Callable[[], dict[str, Any]]] = {
    "checkpoint_with_dropout": lambda: checkpointed(0.1, True),
    "checkpoint_without_state": lambda: checkpointed(0.0, False),
    "varlen_empty_examples": varlen_empty,
    "bnb_4bit_matmul": bnb_4bit,
}


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    results: dict[str, Any] = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    for name, probe in PROBES.items():
        try:
            results[name] = {"ok": True, **probe()}
        except Exception as exc:  # a probe that fails is a result: what graphs cannot capture here
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400],
                             "where": traceback.format_exc().strip().splitlines()[-3:]}
        print(name, results[name], flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
