"""A loaded local model that answers prompts (greedy) and scores examples (answer-token loss).

An evaluation asks for both on the same test examples: the answers, then the loss of the reference
answers. ``generate_scored`` gets the loss on the way: generation leaves the prompt's keys and values in
its cache, so scoring a reference answer needs only the answer's own tokens run through the model, not
the whole prompt a second time (on a CPU that second pass cost a quarter of ``ftp eval``).
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ftp.types import Example, Message, ModelRef

from . import models
from .chat import IGNORE, ChatFormat, Encoded, chat_format, encode
from .modeling import Placement, causal_lm, load_model, shared_tokenizer
from .training import META_FILE, Trained

Scored = tuple[tuple[str, ...], float, int]  # examples scored together (their keys), summed loss, answer tokens


class LocalPredictor:
    def __init__(self, model: Any, fmt: ChatFormat, where: Placement, max_length: int,
                 adapter_off: bool = False) -> None:
        self.model, self.fmt, self.where = model, fmt, where
        self.max_length = max_length
        self.adapter_off = adapter_off
        self.scored: list[Scored] = []  # filled by generate_scored, read by loss

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
        return self.answer(conversations, max_new_tokens, None, [self])[0]

    def generate_scored(self, examples: Sequence[Example], max_new_tokens: int) -> list[str]:
        """``generate`` for each example's prompt (every message but the last), scoring the example's
        answer-token loss from the prompt's key-value cache on the way, for ``loss`` to use. Examples it
        cannot score so (see ``score_continuations``) ``loss`` scores the usual way."""
        return self.answer([ex["messages"][:-1] for ex in examples], max_new_tokens, examples, [self])[0]

    def can_join(self) -> bool:
        """Whether ``joint`` could ever find partners, asked before the other candidates are loaded so
        that where it cannot (a GPU) each loads only after this one has answered."""
        from .joint import joinable

        return joinable(self)

    def joint(self, others: Sequence[Any]) -> tuple[Any, list[int]] | None:
        """One batch answering as this predictor and those of ``others`` on the same weights in memory
        (the fine-tuned model and its base), and which of ``others`` those are; None when none is."""
        from .joint import JointPredictor, partners

        found = partners(self, others)
        return (JointPredictor([self, *(others[i] for i in found)]), found) if found else None

    def answer(self, conversations: Sequence[list[Message]], max_new_tokens: int, examples: Sequence[Example] | None,
               members: Sequence["LocalPredictor"]) -> list[list[str]]:
        """Each member's answers to ``conversations``, from one ``generate`` call: the prompts once per
        member, each row routed to its member's adapter (or none) when there are several (``joint``).
        With ``examples`` each member's loss is scored from the cache on the way (``generate_scored``)."""
        import torch

        from .joint import routed

        tok = self.fmt.tokenizer
        prompts = [self.fmt.render(list(c), add_generation_prompt=True) for c in conversations]
        # padding_side per call: the tokenizer may be shared (modeling.shared_tokenizer) and is never changed
        enc = tok(prompts * len(members), add_special_tokens=False, return_tensors="pt", padding=True,
                  padding_side="left").to(self.where.device)
        with self._mode() if len(members) == 1 else routed(self.model, members, len(prompts)), torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                      eos_token_id=self.fmt.stop_ids, pad_token_id=tok.pad_token_id,
                                      return_dict_in_generate=True)
            if examples is not None:
                cache = out.cache if getattr(out, "cache", None) is not None else getattr(out, "past_key_values", None)
                found = score_continuations(self.model, self.fmt, list(examples) * len(members), enc, cache,
                                            self.max_length, groups=len(members))
                for member, scored in zip(members, found or []):
                    if scored is not None:
                        member.scored.append(scored)
        answers = []
        for row in out.sequences[:, enc["input_ids"].shape[1]:].tolist():
            cut = next((i for i, t in enumerate(row) if t in self.fmt.stop_ids), len(row))
            answers.append(tok.decode(row[:cut], skip_special_tokens=True).strip())
        n = len(prompts)
        return [answers[g * n:(g + 1) * n] for g in range(len(members))]

    def loss(self, examples: Sequence[Example]) -> float | None:
        """Mean cross-entropy over the answer tokens of ``examples``: the sums ``generate_scored`` left for
        groups of them, and one pass over the rest."""
        total, count = 0.0, 0
        wanted = Counter(example_key(ex) for ex in examples)
        for keys, summed, tokens in self.scored:
            group = Counter(keys)
            if all(wanted[k] >= n for k, n in group.items()):
                wanted -= group
                total, count = total + summed, count + tokens
        rows: list[Encoded] = []
        for ex in examples:
            key = example_key(ex)
            if wanted[key] <= 0:
                continue
            wanted[key] -= 1
            row = encode(self.fmt, ex["messages"], self.max_length)
            if row.trained_tokens:
                rows.append(row)
        if rows:
            rows.sort(key=lambda e: len(e.input_ids))  # similar lengths per batch: little padding to score
            size = 64 if str(self.where.device).startswith("cuda") else 8  # 15 batches of 8 took 1.4 s per candidate on an H200
            from .loss import evaluate_loss

            with self._mode():
                mean = evaluate_loss(self.model, rows, self.fmt.tokenizer.pad_token_id, self.where.device, size)
            scored = sum(label != IGNORE for r in rows for label in r.labels[1:])  # what evaluate_loss averaged over
            total, count = total + mean * scored, count + scored
        return total / count if count else None


def example_key(example: Example) -> str:
    return json.dumps(example.get("messages"), sort_keys=True, ensure_ascii=False)


def kv_bytes_per_token(model: Any) -> int:
    """Bytes of key-value cache one token costs: keys and values of every layer, in the model's dtype."""
    from .memory import shape_from_config

    shape = shape_from_config(model.config.to_dict())
    itemsize = next(model.parameters()).element_size()
    return 2 * shape.layers * shape.kv_dim * max(itemsize, 2)


def continuation(row: Encoded, prompt: list[int]) -> tuple[list[int], list[int]] | None:
    """The tokens of a whole example after its prompt's, and their labels, when the example is its prompt
    continued: the prompt's tokens first, none of them trained, nothing cut off; else None (a multi-turn
    example trains earlier answers inside the prompt, and a token can merge across the prompt's end)."""
    n = len(prompt)
    if row.truncated or not row.trained_tokens or len(row.input_ids) <= n or row.input_ids[:n] != prompt:
        return None
    if any(label != IGNORE for label in row.labels[:n]):
        return None
    return row.input_ids[n:], row.labels[n:]


def cache_scorable(model: Any, cache: Any, length: int) -> bool:
    """Whether generation's cache can be continued with some of its columns masked out: plain key-value
    layers (no recurrent state that already holds the generated tokens), attention that takes any mask
    (SDPA, eager, ftp's packed attention, which is SDPA for padded rows), and ``length`` inside any
    sliding window, so that no layer has dropped a column."""
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    from .attention import NAME

    layers = getattr(cache, "layers", None)
    if not isinstance(cache, DynamicCache) or not layers:
        return False
    if any(type(layer) not in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers):
        return False
    config = causal_lm(model).config
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager", NAME):
        return False
    if getattr(config, "attention_chunk_size", None):
        return False
    window = getattr(config, "sliding_window", None)
    return not window or length < int(window) - 1


def score_continuations(model: Any, fmt: ChatFormat, examples: Sequence[Example], enc: Any, cache: Any,
                        max_length: int, groups: int = 1) -> list[Scored | None] | None:
    """For each of ``groups`` equal runs of rows (a joint batch's members), the summed answer loss and
    answer-token count of the examples it can score (and their keys), from the cache generation left;
    None when it can score none.

    Generation ran the left-padded prompts ``enc``: the cache holds every prompt's keys and values in the
    first ``width`` columns, then the generated tokens'. Each example's tokens after its prompt run
    against it, led by the prompt's last token again (whose output predicts the answer's first token),
    at the positions that continue the prompt's. That token's first column and the generated tokens'
    are masked out, so every position sees what it sees in one pass over the whole example, at the cost
    of a few tokens per example instead of the whole prompt again. Examples that are not their prompt
    continued (``continuation``) are left out, and ``loss`` scores them the usual way."""
    import torch

    from .loss import AnswerLoss

    device = enc["input_ids"].device
    ids, mask = enc["input_ids"].cpu(), enc["attention_mask"].cpu().long()  # one copy, not one per row
    width, lengths = ids.shape[1], mask.sum(dim=1).tolist()
    rests: dict[int, tuple[list[int], list[int]]] = {}
    for i, ex in enumerate(examples):
        found = continuation(encode(fmt, ex["messages"], max_length), ids[i, width - lengths[i]:].tolist())
        if found is not None:
            rests[i] = found
    past = cache.get_seq_length()
    span = max((len(tokens) for tokens, _ in rests.values()), default=0)  # the last token predicts nothing
    if not rests or not cache_scorable(model, cache, past + span):
        return None
    rows = len(examples)
    new_ids = torch.full((rows, span), int(fmt.tokenizer.pad_token_id), dtype=torch.long)
    new_mask = torch.zeros((rows, span), dtype=torch.long)
    targets = torch.full((rows, span), IGNORE, dtype=torch.long)
    last = ids[:, -1].tolist()
    for i, (tokens, labels) in rests.items():
        new_ids[i, :len(tokens)] = torch.tensor([last[i], *tokens[:-1]])  # each predicts the next, labelled
        new_mask[i, :len(tokens)] = 1
        targets[i, :len(labels)] = torch.tensor(labels)
    positions = torch.tensor(lengths).unsqueeze(1) - 1 + torch.arange(span)
    seen = torch.cat([mask, torch.zeros((rows, past - width), dtype=torch.long), new_mask], dim=1)
    seen[:, width - 1] = 0  # the prompt's last token is run again: its new column stands in for this one
    scorer = AnswerLoss(model)
    named = "cache" if "cache" in inspect.signature(scorer.decoder.forward).parameters else "past_key_values"
    hidden = scorer.decoder(input_ids=new_ids.to(device), attention_mask=seen.to(device),
                            position_ids=positions.to(device), use_cache=True, **{named: cache}).last_hidden_state
    targets = targets.to(device)
    trained = targets != IGNORE
    n = rows // groups
    per_group: list[Scored | None] = []
    for g in range(groups):
        mine = [i for i in rests if g * n <= i < (g + 1) * n]
        if not mine:
            per_group.append(None)
            continue
        part = slice(g * n, (g + 1) * n)
        summed = scorer._chunk(hidden[part][trained[part]], targets[part][trained[part]])  # one pass of the output layer
        count = sum(label != IGNORE for i in mine for label in rests[i][1])
        per_group.append((tuple(example_key(examples[i]) for i in mine), float(summed), int(count)))
    return per_group


def _read_meta(path: Path) -> dict[str, Any]:
    meta = path / META_FILE
    return json.loads(meta.read_text(encoding="utf-8")) if meta.exists() else {}


def trained_format(path: Path, tokenizer: Any) -> ChatFormat:
    """The chat template a trained model folder was trained with (its META_FILE names it; the template
    saved with its tokenizer otherwise), on ``tokenizer``: evaluation and serving render prompts alike."""
    return chat_format(tokenizer, str(_read_meta(path).get("chat_template") or "tokenizer"))


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
    folder = base_dir if ref.kind == "base" else ref.path
    assert folder is not None
    tokenizer = shared_tokenizer(folder)  # first: a folder without a fast tokenizer fails before any weights load
    if ref.kind == "base":
        fmt = chat_format(tokenizer, hp.get("chat_template") or "auto")
    else:
        fmt = trained_format(folder, tokenizer)
    return LocalPredictor(_weights(ref, base_dir, where), fmt, where, max_length)


def _weights(ref: ModelRef, base_dir: Path, where: Placement) -> Any:
    if ref.kind == "base":
        return load_model(base_dir, where)
    assert ref.path is not None
    if ref.kind == "full":
        return load_model(ref.path, where)
    from peft import PeftModel

    return PeftModel.from_pretrained(load_model(base_dir, where), str(ref.path))
