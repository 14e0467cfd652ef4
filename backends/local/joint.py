"""The fine-tuned model and its base answering in one batch, on a CPU.

An evaluation asks the same test prompts of the fine-tuned model and of the base model, and locally both
are one set of weights in memory (the base is the adapter switched off). On a CPU, where ``ftp eval``
answers in batches of 8, each batch's decoding loop costs about the same Python whatever its rows, so
the prompts go in once per candidate in one ``generate`` call and PEFT routes each row through the
adapter or past it (``adapter_names``, its ``__base__`` rows): one loop instead of two.

Not on a GPU: on an H200 (Gemma 3 270M, 120 prompts per batch, benchmarks/README.md, lease 5) one batch
of 240 rows took 2.00 s against 1.88 s for two of 120, slower in every round, because PEFT's routing (a
list scan and an indexed copy in each LoRA layer per token) costs what the saved loop saved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from .batching import BASE_ADAPTER


class Member(Protocol):
    """What a joint batch needs of each predictor in it (``LocalPredictor``)."""

    model: Any
    fmt: Any
    where: Any
    max_length: int
    adapter_off: bool

    def count_tokens(self, text: str) -> int: ...

    def suggest_batch_size(self, max_new_tokens: int) -> int: ...

    def answer(self, conversations: Sequence[Any], max_new_tokens: int, examples: Sequence[Any] | None,
               members: Sequence[Any]) -> list[list[str]]: ...


def routable(model: Any) -> bool:
    """Whether PEFT can route rows of one batch to different adapters on ``model``: a PEFT model with
    per-row routing, its adapters not merged into the weights, no DoRA (PEFT refuses both), no adapter
    on the output layer, and no compiled layers (the routing hooks would make every batch recompile them)."""
    if not callable(getattr(model, "_enable_peft_forward_hooks", None)) or not hasattr(model, "active_adapter"):
        return False
    head = model.get_output_embeddings() if callable(getattr(model, "get_output_embeddings", None)) else None
    if head is None or hasattr(head, "lora_A") or hasattr(head, "original_module"):
        return False  # the loss scores flattened positions through the output layer: no rows to route there
    configs = getattr(model, "peft_config", {}) or {}
    if any(getattr(c, "use_dora", False) for c in configs.values()):
        return False
    for module in model.modules():
        if getattr(module, "merged", False) or getattr(module, "_compiled_call_impl", None) is not None:
            return False
    return True


def joinable(first: Member) -> bool:
    """Whether ``first`` could answer in one batch with any other predictor: on a CPU (measured slower
    on a GPU), its adapter routable per row."""
    return not str(first.where.device).startswith("cuda") and routable(first.model)


def partners(first: Member, others: Sequence[Any]) -> list[int]:
    """Which of ``others`` can answer in one batch with ``first``: on a CPU, predictors of its kind on the
    very same model in memory, each with its adapter on or off, one of each at most."""
    if not joinable(first):
        return []
    taken = {first.adapter_off}
    found = []
    for i, other in enumerate(others):
        if type(other) is type(first) and other.model is first.model and other.adapter_off not in taken \
                and other.max_length == first.max_length and other.fmt is first.fmt:
            taken.add(other.adapter_off)
            found.append(i)
    return found


@contextlib.contextmanager
def routed(model: Any, members: Sequence[Member], rows_each: int) -> Iterator[None]:
    """Evaluation mode with every forward pass inside (``generate``'s and the loss scored from its cache)
    routing each member's ``rows_each`` rows to its adapter, or past it."""
    names = [BASE_ADAPTER if m.adapter_off else str(model.active_adapter) for m in members for _ in range(rows_each)]
    model.eval()
    with model._enable_peft_forward_hooks(adapter_names=names):
        yield


class JointPredictor:
    """Several predictors on one model as one: each prompt answered by every member in the same batch.

    ``generate`` and ``generate_scored`` return, for each prompt, the members' answers in member order;
    the loss each member scores on the way stays with that member (``LocalPredictor.loss``)."""

    def __init__(self, members: list[Member]) -> None:
        self.members = members

    def count_tokens(self, text: str) -> int:
        return self.members[0].count_tokens(text)

    def suggest_batch_size(self, max_new_tokens: int) -> int:
        """A member's prompts per batch (8 on a CPU), each once per member: more rows per call cost
        less than more calls."""
        return self.members[0].suggest_batch_size(max_new_tokens)

    def generate(self, conversations: Sequence[Any], max_new_tokens: int) -> list[tuple[str, ...]]:
        return self._zip(self.members[0].answer(conversations, max_new_tokens, None, self.members))

    def generate_scored(self, examples: Sequence[Any], max_new_tokens: int) -> list[tuple[str, ...]]:
        conversations = [ex["messages"][:-1] for ex in examples]
        return self._zip(self.members[0].answer(conversations, max_new_tokens, examples, self.members))

    @staticmethod
    def _zip(per_member: list[list[str]]) -> list[tuple[str, ...]]:
        return list(zip(*per_member))
