"""The answer-only loss, computed without ever holding a whole batch's logits.

Only the positions that predict a trained token reach the output layer, and when there are more of
them than one chunk holds, they do so in chunks whose logits are recomputed in the backward pass
instead of being kept. With a 128k-262k token
vocabulary the logits are otherwise the largest tensor of a step: a packed 2,048-token row of a
Llama 3 shaped model needs 1 GiB for its fp32 logits and as much again for their gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import NAME as PACKED
from .chat import IGNORE
from .modeling import CHUNK_ELEMENTS, GPU_CHUNK_ELEMENTS, Batch, causal_lm


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
        extra = {}
        if starts is not None and self.decoder.config._attn_implementation == PACKED:  # see attention.py
            extra = {"cu_seq_lens_q": starts, "cu_seq_lens_k": starts, "max_length_q": longest, "max_length_k": longest}
        inputs: dict[str, Any] = {"input_ids": input_ids}
        if self.neftune and self.training:
            inputs = {"inputs_embeds": noisy_embeddings(self.decoder.get_input_embeddings()(input_ids), self.neftune,
                                                        attention_mask, starts)}
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
            total = total + (checkpoint(self._chunk, h, t, use_reentrant=False) if torch.is_grad_enabled()
                             else self._chunk(h, t))
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
