"""Dynamic batching for ``ftp serve``'s local engine: requests that arrive within a few milliseconds of
each other share one ``generate`` call, each row with its own adapter (PEFT's per-row
``adapter_names``), sampling (temperature, top_p, its own seeded generator), token limit, stop strings
and deadline, and streamed rows get their text token by token.

Per-row sampling rides on greedy decoding: a logits processor draws the token of each sampling row
from its own generator and leaves only that token possible, so greedy and sampled rows batch
together and a seeded request draws the same tokens whatever it is batched with (up to the
floating-point differences batching makes). Rows that need the host each step (streaming, stop
strings) are followed by a stopping criterion that reads the newest tokens; otherwise the limits are
checked on the device and the GPU never waits for Python.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ftp.types import Completion, GenerationRequest

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch


class Cancelled(Exception):
    """The client went away; the row was dropped from its batch."""


@dataclass(eq=False)
class Job:
    """One request's row: what it asks, where its output goes, and its progress while generating."""

    request: GenerationRequest
    prompt_ids: list[int]
    adapter: str | None  # PEFT adapter name, BASE_ADAPTER, or None when the model has no adapters
    stop_ids: frozenset[int]
    streaming: bool = False
    out: "queue.SimpleQueue[Any]" = field(default_factory=queue.SimpleQueue)  # pieces, then Completion or error
    enqueued: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    tokens: list[int] = field(default_factory=list)
    sent: str = ""  # text already streamed
    finish: str | None = None  # "stop", "length", "timeout", "cancelled" once the row is over
    started: float = 0.0

    @property
    def deadline(self) -> float | None:
        return self.enqueued + self.request.timeout_s if self.request.timeout_s else None

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now > self.deadline


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop string (dropped, as OpenAI does), and whether one was found."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


def safe_prefix(text: str, stops: Sequence[str]) -> str:
    """What may be streamed now: not a half-decoded character, nor a tail that may begin a stop string."""
    end = len(text.rstrip("\ufffd"))
    for stop in stops:
        for k in range(min(len(stop) - 1, end), 0, -1):
            if text[:end].endswith(stop[:k]):
                end -= k
                break
    return text[:end]


class Rows:
    """The batch's rows while ``generate`` runs: per-row stops, limits and streaming."""

    def __init__(self, jobs: list[Job], decode: Callable[[list[int]], str]) -> None:
        self.jobs, self.decode = jobs, decode
        self.host_each_step = any(j.streaming or j.request.stop for j in jobs)

    def step(self, newest: list[int] | None, now: float) -> list[bool]:
        """Advance every live row by its newest token (None: not read, the device checks limits) and
        return which rows are over."""
        for i, job in enumerate(self.jobs):
            if job.finish is not None:
                continue
            if job.cancelled:
                job.finish = "cancelled"
            elif job.expired(now):
                job.finish = "timeout"
            elif newest is not None:
                self._advance(job, newest[i])
        return [j.finish is not None for j in self.jobs]

    def _advance(self, job: Job, token: int) -> None:
        if token in job.stop_ids:
            job.finish = "stop"
            return
        job.tokens.append(token)
        stops = job.request.stop
        text = self.decode(job.tokens)
        text, hit = cut_at_stop(text, stops)
        if hit:
            job.finish = "stop"
        elif len(job.tokens) >= job.request.max_tokens:
            job.finish = "length"
        if job.streaming:
            ready = text if job.finish else safe_prefix(text, stops)
            if len(ready) > len(job.sent) and ready.startswith(job.sent):
                job.out.put(ready[len(job.sent):])
                job.sent = ready

    def complete(self, generated: list[list[int]]) -> None:
        """Hand every row its ``Completion`` (or its error) once ``generate`` has returned."""
        for job, row in zip(self.jobs, generated):
            if job.finish == "timeout":
                job.out.put(TimeoutError(f"no answer within {job.request.timeout_s:g} s"))
                continue
            if job.finish == "cancelled":
                job.out.put(Cancelled())
                continue
            if not self.host_each_step:
                self._from_row(job, row)
            text, hit = cut_at_stop(self.decode(job.tokens), job.request.stop)
            finish = job.finish or ("length" if len(job.tokens) >= job.request.max_tokens else "stop")
            if hit:
                finish = "stop"
            if job.streaming and len(text) > len(job.sent) and text.startswith(job.sent):
                job.out.put(text[len(job.sent):])
            queue_ms = (job.started - job.enqueued) * 1000
            job.out.put(Completion(text=text, finish_reason="stop" if finish == "stop" else "length",
                                   prompt_tokens=len(job.prompt_ids), completion_tokens=len(job.tokens),
                                   queue_ms=round(queue_ms, 3)))

    @staticmethod
    def _from_row(job: Job, row: list[int]) -> None:
        """The row's answer tokens: up to its first stop token, at most its own limit."""
        for token in row[:job.request.max_tokens]:
            if token in job.stop_ids:
                job.finish = "stop"
                break
            job.tokens.append(token)


def sampler(jobs: list[Job], device: Any) -> Any:
    """A logits processor drawing each sampling row's token from the row's own generator (None when
    every row is greedy)."""
    import torch

    rows = []
    for i, job in enumerate(jobs):
        r = job.request
        if r.temperature > 0:
            generator = torch.Generator(device=device)
            generator.manual_seed(r.seed if r.seed is not None else random.getrandbits(63))
            rows.append((i, r.temperature, r.top_p, generator))
    if not rows:
        return None

    def draw(input_ids: Any, scores: Any) -> Any:
        for i, temperature, top_p, generator in rows:
            logits = scores[i].float() / temperature
            if top_p < 1:
                ordered, order = logits.sort(descending=True)
                probs = ordered.softmax(-1)
                drop = probs.cumsum(-1) - probs > top_p  # keep the smallest set whose mass reaches top_p
                logits[order[drop]] = float("-inf")
            token = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            scores[i] = float("-inf")
            scores[i, token] = 0.0
        return scores

    return draw


class Batcher:
    """One worker thread per loaded model: it collects requests for ``window_s`` (up to ``max_batch``),
    answers them with one ``generate``, and hands each row its output."""

    def __init__(self, model: Any, tokenizer: Any, device: str, window_s: float, max_batch: int,
                 lock: threading.Lock, uses_adapters: Callable[[], bool]) -> None:
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.window_s, self.max_batch, self.lock = window_s, max_batch, lock
        self.uses_adapters = uses_adapters
        self.pending: "queue.Queue[Job | None]" = queue.Queue()
        self.decode_lock = threading.Lock()
        self.batches = 0
        self.thread = threading.Thread(target=self._loop, name="ftp-serve-batcher", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
        self.pending.put(job)

    def close(self) -> None:
        self.pending.put(None)
        self.thread.join(timeout=30)

    def decode(self, tokens: list[int]) -> str:
        with self.decode_lock:  # a fast tokenizer is not safe to use from two threads at once
            return str(self.tokenizer.decode(tokens, skip_special_tokens=True))

    def _collect(self) -> list[Job] | None:
        """The next batch: the first waiting request, then whatever arrives within the window."""
        first = self.pending.get()
        if first is None:
            return None
        batch, until = [first], time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            try:
                job = self.pending.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                self.pending.put(None)
                break
            batch.append(job)
        return batch

    def _loop(self) -> None:
        while (batch := self._collect()) is not None:
            now = time.monotonic()
            live = []
            for job in batch:
                if job.cancelled:
                    job.out.put(Cancelled())
                elif job.expired(now):
                    job.out.put(TimeoutError(f"no answer within {job.request.timeout_s:g} s (waited for a batch)"))
                else:
                    job.started = now
                    live.append(job)
            if not live:
                continue
            try:
                with self.lock:
                    self._generate(live)
                self.batches += 1
            except Exception as exc:  # the batch failed: every row hears why, the worker goes on
                for job in live:
                    job.out.put(exc)

    def _adapters(self, jobs: list[Job], kwargs: dict[str, Any]) -> Any:
        """The batch's adapters: one adapter set active (or all off for base rows) when every row asks for
        the same, per-row ``adapter_names`` only for a mixed batch, whose per-layer routing costs more
        (15-25% per token on the tiny test model; more with LoRA on every linear layer). Only this
        thread uses the model, so switching the active adapter here cannot disturb another request."""
        import contextlib

        if not self.uses_adapters():
            return contextlib.nullcontext()
        names = {j.adapter or BASE_ADAPTER for j in jobs}
        if names == {BASE_ADAPTER}:
            return self.model.disable_adapter()
        if len(names) == 1:
            self.model.set_adapter(names.pop())
            return contextlib.nullcontext()
        kwargs["adapter_names"] = [j.adapter or BASE_ADAPTER for j in jobs]
        return contextlib.nullcontext()

    def _generate(self, jobs: list[Job]) -> None:
        import torch

        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else next(iter(jobs[0].stop_ids), 0)
        width = max(len(j.prompt_ids) for j in jobs)
        ids = [[pad] * (width - len(j.prompt_ids)) + j.prompt_ids for j in jobs]
        mask = [[0] * (width - len(j.prompt_ids)) + [1] * len(j.prompt_ids) for j in jobs]
        rows = Rows(jobs, self.decode)
        limits = torch.tensor([j.request.max_tokens for j in jobs], device=self.device)

        def over(input_ids: Any, scores: Any, **_: Any) -> Any:
            if rows.host_each_step:
                flags = rows.step(input_ids[:, -1].tolist(), time.monotonic())
                return torch.tensor(flags, device=input_ids.device)
            done = input_ids.shape[1] - width >= limits  # on the device: the GPU does not wait for Python
            flags = rows.step(None, time.monotonic())  # cancelled or late rows, known on the host
            return done | torch.tensor(flags, device=input_ids.device) if any(flags) else done

        from transformers import LogitsProcessorList, StoppingCriteriaList

        kwargs: dict[str, Any] = {}
        draw = sampler(jobs, self.device)
        if draw is not None:
            kwargs["logits_processor"] = LogitsProcessorList([draw])
        with torch.inference_mode(), self._adapters(jobs, kwargs):
            out = self.model.generate(
                input_ids=torch.tensor(ids, device=self.device), attention_mask=torch.tensor(mask, device=self.device),
                max_new_tokens=max(j.request.max_tokens for j in jobs), do_sample=False,
                eos_token_id=sorted(set().union(*(j.stop_ids for j in jobs))), pad_token_id=pad,
                stopping_criteria=StoppingCriteriaList([over]), **kwargs)
        rows.complete(out[:, width:].tolist())
