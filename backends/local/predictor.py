"""A loaded local model that answers prompts (greedy) and scores examples (answer-token loss)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ftp.types import Example, Message, ModelRef

from . import models
from .chat import ChatFormat, chat_format, encode
from .modeling import Placement, load_model, load_tokenizer
from .training import META_FILE, Trained, evaluate_loss


class LocalPredictor:
    def __init__(self, model: Any, fmt: ChatFormat, where: Placement, max_length: int,
                 adapter_off: bool = False) -> None:
        self.model, self.fmt, self.where = model, fmt, where
        self.max_length = max_length
        self.adapter_off = adapter_off

    @contextlib.contextmanager
    def _mode(self) -> Iterator[None]:
        """Evaluation mode, with the LoRA adapter switched off when this predictor is the base model."""
        self.model.eval()
        with self.model.disable_adapter() if self.adapter_off else contextlib.nullcontext():
            yield

    def count_tokens(self, text: str) -> int:
        return len(self.fmt.tokenizer(text, add_special_tokens=False)["input_ids"])

    def without_adapter(self) -> "LocalPredictor":
        """The base model from the same weights in memory: PEFT switches the adapter off per call."""
        return LocalPredictor(self.model, self.fmt, self.where, self.max_length, adapter_off=True)

    def suggest_batch_size(self, max_new_tokens: int) -> int:
        """Prompts per batch: on a GPU, as many as half the free memory holds key-value caches for
        (prompt up to ``max_length`` plus the answer); on a CPU 8, where bigger batches gain little."""
        if not str(self.where.device).startswith("cuda"):
            return 8
        import torch

        free, _ = torch.cuda.mem_get_info(self.where.device)
        per_sequence = kv_bytes_per_token(self.model) * (self.max_length + max_new_tokens)
        return max(1, min(256, int(free * 0.5 // max(per_sequence, 1))))

    def generate(self, conversations: Sequence[list[Message]], max_new_tokens: int) -> list[str]:
        import torch

        tok = self.fmt.tokenizer
        prompts = [self.fmt.render(list(c), add_generation_prompt=True) for c in conversations]
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            enc = tok(prompts, add_special_tokens=False, return_tensors="pt", padding=True).to(self.where.device)
        finally:
            tok.padding_side = side
        with self._mode(), torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                      eos_token_id=self.fmt.stop_ids, pad_token_id=tok.pad_token_id)
        answers = []
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            cut = next((i for i, t in enumerate(row) if t in self.fmt.stop_ids), len(row))
            answers.append(tok.decode(row[:cut], skip_special_tokens=True).strip())
        return answers

    def loss(self, examples: Sequence[Example]) -> float | None:
        rows = [e for e in (encode(self.fmt, ex["messages"], self.max_length) for ex in examples) if e.trained_tokens]
        if not rows:
            return None
        rows.sort(key=lambda e: len(e.input_ids))  # similar lengths per batch: little padding to score
        size = 64 if str(self.where.device).startswith("cuda") else 8  # 15 batches of 8 took 1.4 s per candidate on an H200
        with self._mode():
            return evaluate_loss(self.model, rows, self.fmt.tokenizer.pad_token_id, self.where.device, size)


def kv_bytes_per_token(model: Any) -> int:
    """Bytes of key-value cache one token costs: keys and values of every layer, in the model's dtype."""
    from .memory import shape_from_config

    shape = shape_from_config(model.config.to_dict())
    itemsize = next(model.parameters()).element_size()
    return 2 * shape.layers * shape.kv_dim * max(itemsize, 2)


def _read_meta(path: Path) -> dict[str, Any]:
    meta = path / META_FILE
    return json.loads(meta.read_text(encoding="utf-8")) if meta.exists() else {}


def load_predictor(ref: ModelRef, trained: Trained | None, settings: dict[str, Any], hp: dict[str, Any]) -> LocalPredictor:
    """Reuse the model still in memory after training when possible; else load from disk. Settings the
    caller has none for (outside a run: ``None``) come from what the model was trained with."""
    meta = _read_meta(ref.path) if ref.path is not None else {}
    max_length = int(hp.get("max_seq_length") or meta.get("max_seq_length") or 1024)
    if trained is not None and ref.kind == "adapter":
        return LocalPredictor(trained.model, trained.fmt, trained.where, max_length)
    if trained is not None and ref.kind == "base" and hasattr(trained.model, "disable_adapter"):
        return LocalPredictor(trained.model, trained.fmt, trained.where, max_length, adapter_off=True)
    from .modeling import placement

    where = placement(settings.get("devices", "auto"), settings.get("dtype", "auto"))
    base_dir = models.resolve(ref.base)
    if ref.kind == "base":
        return LocalPredictor(load_model(base_dir, where), chat_format(load_tokenizer(base_dir),
                              hp.get("chat_template") or "auto"), where, max_length)
    assert ref.path is not None
    fmt = chat_format(load_tokenizer(ref.path), meta.get("chat_template", "tokenizer"))
    if ref.kind == "full":
        return LocalPredictor(load_model(ref.path, where), fmt, where, max_length)
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_model(base_dir, where), str(ref.path))
    return LocalPredictor(model, fmt, where, max_length)
