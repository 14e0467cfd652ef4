"""The answer-only loss, computed without ever holding a whole batch's logits.

Only the positions that predict a trained token reach the output layer, and when there are more of
them than one chunk holds, they do so in chunks whose logits are recomputed in the backward pass
instead of being kept. With a 128k-262k token
vocabulary the logits are otherwise the largest tensor of a step: a packed 2,048-token row of a
Llama 3 shaped model needs 1 GiB for its fp32 logits and as much again for their gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import NAME as PACKED, offsets
from .chat import IGNORE, Encoded
from .modeling import CHUNK_ELEMENTS, GPU_CHUNK_ELEMENTS, Batch, causal_lm, collate, collate_packed
from .schedule import examples_to_take


class AnswerLoss(nn.Module):
    """A causal LM (or its PEFT model) whose forward returns the summed loss over trained tokens.

    It is a module, not a function, so that DDP can wrap it: DDP only synchronises gradients of
    work done inside the forward of the module it wraps.
    """

    def __init__(self, lm: Any, label_smoothing: float = 0.0, neftune_alpha: float = 0.0) -> None:
        super().__init__()
        self.lm = lm
        self.smoothing = float(label_smoothing)  # training only: validation loss is scored by a plain AnswerLoss
        self.neftune = float(neftune_alpha)
        causal = causal_lm(lm)
        self.decoder = causal.get_decoder()
        self.head = causal.get_output_embeddings()
        config = causal.config
        self.cap = getattr(config, "final_logit_softcapping", None)  # Gemma 2 style tanh capping
        self.scale = getattr(config, "logits_scaling", None)  # Granite divides its logits

    def forward(self, input_ids: Any, attention_mask: Any, position_ids: Any, positions: Any, targets: Any,
                starts: Any = None, longest: int = 0) -> Any:
        extra: dict[str, Any] = {}
        unmasked: Any = nullcontext()
        if starts is not None and self.decoder.config._attn_implementation == PACKED:  # see attention.py
            extra = {"cu_seq_lens_q": starts, "cu_seq_lens_k": starts, "max_length_q": longest, "max_length_k": longest}
            unmasked = offsets(self.decoder.config)
        inputs: dict[str, Any] = {"input_ids": input_ids}
        if self.neftune and self.training:
            inputs = {"inputs_embeds": noisy_embeddings(self.decoder.get_input_embeddings()(input_ids), self.neftune,
                                                        attention_mask, starts)}
        with unmasked:
            hidden = self.decoder(**inputs, attention_mask=attention_mask, position_ids=position_ids,
                                  use_cache=False, **extra).last_hidden_state
        picked = hidden[:, positions].reshape(-1, hidden.size(-1))
        flat = targets.reshape(-1)
        chunk = max(1, (GPU_CHUNK_ELEMENTS if hidden.is_cuda else CHUNK_ELEMENTS) // self.head.weight.size(0))
        if picked.size(0) <= chunk:  # one chunk: nothing to save by recomputing it (small batches, CPU runs)
            return self._chunk(picked, flat)
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, picked.size(0), chunk):
            h, t = picked[start:start + chunk], flat[start:start + chunk]
            # no random draws to replay in a chunk: keeping the RNG state would only cost (and a CUDA graph
            # capture cannot read it)
            total = total + (checkpoint(self._chunk, h, t, use_reentrant=False, preserve_rng_state=False)
                             if torch.is_grad_enabled() else self._chunk(h, t))
        return total

    def _chunk(self, hidden: Any, targets: Any) -> Any:
        logits = self.head(hidden).float()
        if self.scale:
            logits = logits / self.scale
        if self.cap:
            logits = torch.tanh(logits / self.cap) * self.cap
        smoothing = self.smoothing if self.training else 0.0
        return nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="sum",
                                           label_smoothing=smoothing)


def noisy_embeddings(embeds: Any, alpha: float, attention_mask: Any = None, starts: Any = None) -> Any:
    """NEFTune (Jain et al., 2023): uniform noise of scale alpha / sqrt(L * d) on the input embeddings.

    L is each *example's* length, so a packed row of eight examples gets the noise each of them would
    get alone (scaling by the row's length, as a per-batch hook does, would shrink it by sqrt(8)).
    """
    import torch

    batch, length, dim = embeds.shape
    if starts is not None:  # one packed row: the length of the example each position belongs to
        sizes = (starts[1:] - starts[:-1]).to(embeds.device)
        per_token = torch.repeat_interleave(sizes, sizes)[:length].reshape(1, length)
    elif attention_mask is not None:
        per_token = attention_mask.sum(dim=1, keepdim=True).expand(batch, length)
    else:
        per_token = torch.full((batch, length), length, device=embeds.device)
    scale = alpha / torch.sqrt(per_token.clamp(min=1).to(torch.float32) * dim)
    noise = torch.empty_like(embeds, dtype=torch.float32).uniform_(-1, 1) * scale.unsqueeze(-1)
    return embeds + noise.to(embeds.dtype)


def loss_model(model: Any) -> Any:
    """``model`` itself when it already computes the answer loss (possibly inside DDP), else wrapped."""
    inner = getattr(model, "module", model)
    return model if isinstance(inner, AnswerLoss) else AnswerLoss(model)


def answer_loss(model: Any, batch: Batch) -> tuple[Any, int]:
    """(summed cross-entropy over trained tokens, number of trained tokens).

    ``model`` is a causal LM, its PEFT model, or one already wrapped by ``loss.loss_model`` (and DDP).
    """
    if batch.trained == 0:
        return torch.zeros((), device=batch.labels.device, requires_grad=True), 0
    loss = loss_model(model)(batch.input_ids, batch.attention_mask, batch.position_ids, batch.positions, batch.targets,
                             batch.starts, batch.longest)
    return loss, batch.trained


def evaluate_loss(model: Any, rows: Sequence[Encoded], pad_id: int, device: str, batch_size: int,
                  pack_tokens: int | None = None, pack: bool = False) -> float:
    """The mean answer loss over ``rows``. ``pack``: in rows made as training makes its micro-batches
    (``batch_size`` examples, or as many as ``pack_tokens`` holds) with no padding, so validation costs
    what a training forward does and no more memory. The sum stays on the device until the end: one
    wait for the GPU per validation, not one per batch."""
    scorer = loss_model(model)
    was_training = model.training
    model.eval()
    total, count, i, order = torch.zeros((), device=device), 0, 0, list(range(len(rows)))
    with torch.no_grad():
        while i < len(rows):
            take = examples_to_take(rows, order, i, batch_size, pack_tokens) if pack else batch_size
            part = list(rows[i:i + take])
            loss, n = answer_loss(scorer, collate_packed(part, device, pad_id) if pack else collate(part, pad_id, device))
            total += loss.detach().float()
            count, i = count + n, i + take
    if was_training:
        model.train()
    return float(total) / max(1, count)
