"""``ftp serve``'s local engine: one base model in memory per base, every deployed version's LoRA adapter
loaded beside it (PEFT multi-adapter), requests batched across versions (batching.py).

A merged (full) model is its own model in memory; a base-model request rides the base's batches with
PEFT's ``__base__`` rows. Each version renders prompts with the chat template stored with it at
training, so a version trained with another template than its base's still sees its own.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftp.errors import RequestRejected, UserError
from ftp.types import Completion, GenerationRequest, ModelVersion, Provisioned, ServeContext

from .batching import BASE_ADAPTER, Batcher, Cancelled, Job
from .chat import ChatFormat, chat_format
from .predictor import trained_format


class Host:
    """One model in memory and its batcher; adapters are added under the generation lock, so a version
    loaded while others are answering never changes the model under a running batch."""

    def __init__(self, model: Any, tokenizer: Any, device: str, serve: dict[str, Any]) -> None:
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.adapters: dict[str, Path] = {}
        self.lock = threading.Lock()
        self.batcher = Batcher(model, tokenizer, device, float(serve.get("batch_window_ms", 5.0)) / 1000,
                               int(serve.get("max_batch_size", 16)), self.lock, lambda: bool(self.adapters))
        config = model.config.to_dict()
        text = config.get("text_config") or config
        self.context = int(text.get("max_position_embeddings") or config.get("max_position_embeddings") or 8192)

    def add_adapter(self, name: str, path: Path) -> None:
        """Load ``path`` as adapter ``name`` (the first one wraps the model in PEFT)."""
        if name in self.adapters:
            return
        from peft import PeftModel

        with self.lock:
            if not self.adapters:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            else:
                self.model.load_adapter(str(path), adapter_name=name)
            self.model.eval()
            self.batcher.model = self.model
            self.adapters[name] = path


ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def check_adapter(path: Path, label: str) -> None:
    """Refuse a folder without adapter weights at once: PEFT would take its path for a Hub repository
    id and wait on the network (minutes, offline) before failing."""
    if not any((path / name).is_file() for name in ADAPTER_WEIGHTS):
        raise UserError(f"{label}: no adapter weights ({' or '.join(ADAPTER_WEIGHTS)}) in {path}; the stored "
                        "model is incomplete: restore the artifact store, or roll the version back")


def adapter_name(version: ModelVersion) -> str:
    """A PEFT adapter name for a version (module names allow neither ``.`` nor ``:``)."""
    return re.sub(r"\W", "_", f"{version.name}_v{version.version}")


class LocalServed:
    """One version on its host: renders and checks prompts, then hands rows to the host's batcher."""

    def __init__(self, label: str, host: Host, adapter: str | None, fmt: ChatFormat) -> None:
        self.label, self.host, self.adapter, self.fmt = label, host, adapter, fmt
        self.encode_lock = threading.Lock()

    def _job(self, request: GenerationRequest, streaming: bool) -> Job:
        try:
            prompt = self.fmt.render(request.messages, add_generation_prompt=True)
        except Exception as exc:  # the chat template refused the conversation (roles out of order, ...)
            raise RequestRejected(f"messages: the model's chat template refused them: {exc}") from None
        with self.encode_lock:
            ids = list(self.fmt.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if len(ids) + request.max_tokens > self.host.context:
            raise RequestRejected(f"the prompt is {len(ids)} tokens and max_tokens {request.max_tokens}: more than "
                                  f"the model's context of {self.host.context}; shorten the messages or lower "
                                  "max_tokens", code="context_length_exceeded")
        adapter = self.adapter if self.adapter is not None else (BASE_ADAPTER if self.host.adapters else None)
        return Job(request, ids, adapter, frozenset(self.fmt.stop_ids), streaming=streaming)

    def stream(self, request: GenerationRequest) -> Iterator[str | Completion]:
        job = self._job(request, streaming=True)
        self.host.batcher.submit(job)
        try:
            while True:
                item = job.out.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Completion):
                    return
        finally:
            job.cancelled = True  # the consumer stopped early (client gone): the row leaves its batch

    def complete(self, request: GenerationRequest) -> Completion:
        job = self._job(request, streaming=False)
        self.host.batcher.submit(job)
        item = job.out.get()
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, Completion)
        return item


class LocalEngine:
    """Versions of the local backend, sharing base models in memory."""

    name = "transformers"

    def __init__(self, context: ServeContext) -> None:
        self.serve, self.settings = context.serve, context.backend_settings
        self.hosts: dict[str, Host] = {}
        self.lock = threading.Lock()  # two first requests for one base load it once

    def _host(self, folder: Path) -> Host:
        key = str(folder.resolve())
        if key not in self.hosts:
            from .modeling import load_model, load_tokenizer, placement, quiet_libraries

            quiet_libraries()
            where = placement(self.settings.get("devices", "auto"), self.settings.get("dtype", "auto"))
            model = load_model(folder, where)
            model.eval()
            self.hosts[key] = Host(model, load_tokenizer(folder), where.device, self.serve)
        return self.hosts[key]

    def load(self, version: ModelVersion, endpoint: Provisioned | None) -> LocalServed:
        from . import models
        from .modeling import load_tokenizer

        ref, label = version.model, f"{version.name}:{version.version}"
        with self.lock:
            if ref.kind == "adapter" and ref.path is not None:
                host = self._host(models.resolve(ref.base))
                fmt = trained_format(ref.path, load_tokenizer(ref.path))
                if len(fmt.tokenizer) != len(host.tokenizer):
                    raise UserError(f"{label}: its tokenizer has {len(fmt.tokenizer)} tokens, its base's "
                                    f"{len(host.tokenizer)}; an adapter with a resized vocabulary needs its merged model")
                name = adapter_name(version)
                check_adapter(Path(ref.path), label)
                host.add_adapter(name, ref.path)
                return LocalServed(f"{label} (adapter on {ref.base})", host, name, fmt)
            if ref.kind == "full" and ref.path is not None:
                host = self._host(ref.path)
                return LocalServed(f"{label} (merged)", host, None, trained_format(ref.path, host.tokenizer))
            if ref.kind == "base":
                host = self._host(models.resolve(ref.base))
                return LocalServed(ref.base, host, None, chat_format(host.tokenizer, "auto"))
        raise UserError(f"{label} is a {ref.kind} model without local files; the local engine serves adapters, "
                        "merged models and base models")

    def close(self) -> None:
        for host in self.hosts.values():
            host.batcher.close()
        self.hosts.clear()


__all__ = ["Cancelled", "LocalEngine", "LocalServed"]
