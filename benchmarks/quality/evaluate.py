"""The quality benchmark's one evaluation, used for every candidate (base model, ftp adapters, TRL
adapters), and the paired bootstrap that compares candidates.

    python benchmarks/quality/evaluate.py --base MODEL_DIR [--adapter ADAPTER_DIR] --test test.jsonl --out eval.json

A candidate is the base model folder, with a PEFT adapter loaded on it or not. Each test prompt (every
message but the last) is rendered with Gemma 3's chat format (trl_sft.GEMMA3_TEMPLATE) and the
generation prompt, whatever the candidate saved with its adapter; prompts are generated in batches
with left padding, greedily, up to ``max_new_tokens`` (the longest reference in tokens + a margin),
and cut at the first end-of-turn or end-of-sequence token. Exact match: the answer equals the
reference after stripping surrounding whitespace (strings, not parsed JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trl_sft import GEMMA3_TEMPLATE  # noqa: E402  (the same format the TRL reference trains with)

MARGIN_TOKENS = 16
STOP_TOKENS = ("<end_of_turn>",)


def read_conversations(path: Path) -> list[list[dict[str, Any]]]:
    return [json.loads(line)["messages"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.chat_template = GEMMA3_TEMPLATE
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def stop_ids(tok: Any) -> list[int]:
    vocab = tok.get_vocab()
    ids = [vocab[t] for t in STOP_TOKENS if t in vocab]
    return sorted(set(ids + ([tok.eos_token_id] if tok.eos_token_id is not None else [])))


def render_prompt(tok: Any, messages: list[dict[str, Any]]) -> str:
    return tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)


def budget(tok: Any, references: list[str], margin: int = MARGIN_TOKENS) -> int:
    """max_new_tokens: the longest reference answer in tokens, plus the end-of-turn token and a margin."""
    return max(len(tok(r, add_special_tokens=False)["input_ids"]) for r in references) + 1 + margin


def load_candidate(base_dir: Path, adapter: Path | None, device: str, dtype: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=getattr(torch, dtype))
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model.to(device).eval()


def generate(model: Any, tok: Any, prompts: list[str], max_new_tokens: int, batch_size: int, device: str) -> list[str]:
    """Greedy answers, batched with left padding; prompts are batched longest first, answers in input order."""
    import torch

    stops = stop_ids(tok)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    answers: dict[int, str] = {}
    tok.padding_side = "left"
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tok([prompts[i] for i in idx], add_special_tokens=False, padding=True, return_tensors="pt").to(device)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                                 pad_token_id=tok.pad_token_id)
        for i, row in zip(idx, out[:, enc["input_ids"].shape[1]:].tolist()):
            cut = next((k for k, t in enumerate(row) if t in stops), len(row))
            answers[i] = tok.decode(row[:cut], skip_special_tokens=True)
    return [answers[i] for i in range(len(prompts))]


def exact(prediction: str, reference: str) -> int:
    return int(prediction.strip() == reference.strip())


def template_agrees(tok: Any, adapter: Path | None, messages: list[dict[str, Any]]) -> bool | None:
    """Whether the chat template saved with an adapter renders a prompt exactly as this evaluation does."""
    if adapter is None or not (adapter / "tokenizer_config.json").exists():
        return None
    from transformers import AutoTokenizer

    own = AutoTokenizer.from_pretrained(str(adapter))
    if not getattr(own, "chat_template", None):
        return None
    return own.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True) == render_prompt(tok, messages)


def evaluate_model(base_dir: Path, adapter: Path | None, test: Path, device: str = "cpu", dtype: str = "float32",
                   batch_size: int = 16, max_new_tokens: int | None = None) -> dict[str, Any]:
    """Exact match of one candidate on a test file, with every prediction and its correctness."""
    import torch

    torch.manual_seed(0)
    conversations = read_conversations(test)
    references = [c[-1]["content"] for c in conversations]
    tok = load_tokenizer(base_dir)
    limit = max_new_tokens or budget(tok, references)
    start = time.perf_counter()
    model = load_candidate(base_dir, adapter, device, dtype)
    predictions = generate(model, tok, [render_prompt(tok, c) for c in conversations], limit, batch_size, device)
    correct = [exact(p, r) for p, r in zip(predictions, references)]
    return {"exact_match": sum(correct) / len(correct), "correct": correct, "predictions": predictions,
            "examples": len(correct), "max_new_tokens": limit, "device": device, "dtype": dtype,
            "adapter": str(adapter) if adapter else None, "template_agrees": template_agrees(tok, adapter, conversations[0]),
            "seconds": round(time.perf_counter() - start, 2)}


def bootstrap_diff(a: list[list[int]], b: list[list[int]], resamples: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of mean(a) - mean(b) over test examples.

    ``a`` and ``b`` are correctness vectors (one per seed) over the same test examples. Seeds are pooled:
    each example's score is its mean over the seeds, the difference is taken per example, and the test
    examples are resampled with replacement ``resamples`` times (a fixed generator seed). Returns the
    observed difference and the 2.5% / 97.5% percentiles of the resampled differences.
    """
    import numpy as np

    x, y = np.asarray(a, dtype=float).mean(axis=0), np.asarray(b, dtype=float).mean(axis=0)
    if x.shape != y.shape:
        raise ValueError(f"paired vectors differ in length: {x.shape} vs {y.shape}")
    d = x - y
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"diff": float(d.mean()), "low": float(low), "high": float(high),
            "share_not_above_zero": float((means <= 0).mean()), "resamples": resamples, "examples": int(len(d))}


def interval(d: dict[str, float]) -> str:
    """A comparison as the tables show it: difference [low, high], in points."""
    return f"{100 * d['diff']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"


def seeds_and_examples_diff(a: list[list[int]], b: list[list[int]], resamples: int = 10_000,
                            seed: int = 0) -> dict[str, float]:
    """Two-stage bootstrap of mean(a) - mean(b): each resample draws each side's training seeds with
    replacement, then the test examples (the same ones for both sides).

    ``bootstrap_diff`` pools the seeds and so ignores seed-to-seed variance. On a task where a run either
    generalises to a test phrasing or misses it altogether (order_json: 100% or ~68% by seed), that
    variance is most of the uncertainty; this interval includes it. ``a`` and ``b`` may have different
    numbers of seeds.
    """
    import numpy as np

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"vectors differ in length: {x.shape[1]} vs {y.shape[1]}")
    rng = np.random.default_rng(seed)
    n = x.shape[1]
    diffs = np.empty(resamples)
    for i in range(resamples):
        xs = x[rng.integers(0, len(x), size=len(x))].mean(axis=0)
        ys = y[rng.integers(0, len(y), size=len(y))].mean(axis=0)
        pick = rng.integers(0, n, size=n)
        diffs[i] = (xs[pick] - ys[pick]).mean()
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"diff": float(x.mean() - y.mean()), "low": float(low), "high": float(high),
            "share_not_above_zero": float((diffs <= 0).mean()), "resamples": resamples,
            "seeds": [int(len(x)), int(len(y))], "examples": int(n)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="exact match of a base model (+ adapter) on a chat JSONL test file")
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--adapter", type=Path, default=None)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    args = parser.parse_args(argv)
    result = evaluate_model(args.base, args.adapter, args.test, args.device, args.dtype, args.batch_size,
                            args.max_new_tokens)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1), encoding="utf-8")
    tmp.replace(args.out)
    print(json.dumps({k: result[k] for k in ("exact_match", "examples", "max_new_tokens", "seconds", "template_agrees")}))


if __name__ == "__main__":
    main()
