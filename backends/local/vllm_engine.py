"""``serve.engine: vllm``: local versions answered by a vLLM server ftp starts for their base model, with
LoRA enabled at the adapters' real rank (vLLM's default ``--max-lora-rank 16`` refuses bigger
adapters: vllm#2847), every adapter loaded by name, and requests forwarded to it.

vLLM needs a CUDA machine and its own wheel; where it is missing, the first request says so and
names the transformers engine, which serves the same versions.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ftp.errors import UserError
from ftp.serve.forward import OpenAICompatible
from ftp.types import ModelVersion, Provisioned, ServeContext

RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts


def lora_rank(adapter: Path) -> int:
    """The adapter's ``r`` (the largest of its per-module ranks), refusing what vLLM cannot load."""
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("modules_to_save"):
        raise UserError(f"{adapter}: the adapter also trains {config['modules_to_save']} (modules_to_save), which "
                        "vLLM does not load (vllm#9280); serve it with serve.engine: transformers, or merge it")
    ranks = [int(config.get("r") or 8), *(int(v) for v in (config.get("rank_pattern") or {}).values())]
    return max(ranks)


def max_lora_rank(ranks: list[int]) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds every adapter."""
    need = max(ranks or [8])
    for allowed in RANKS:
        if allowed >= need:
            return allowed
    raise UserError(f"an adapter has rank {need}; vLLM serves LoRA ranks up to {RANKS[-1]}")


def command(base: Path, adapters: dict[str, Path], port: int, extra: list[str]) -> list[str]:
    """``vllm serve`` for ``base`` with every adapter (as anchors 3.5 gives it), on 127.0.0.1:``port``."""
    modules = [json.dumps({"name": name, "path": str(path), "base_model_name": str(base)})
               for name, path in sorted(adapters.items())]
    return [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", str(base), "--host", "127.0.0.1",
            "--port", str(port), "--served-model-name", "base", "--enable-lora",
            "--max-lora-rank", str(max_lora_rank([lora_rank(p) for p in adapters.values()])),
            "--max-loras", str(max(1, len(adapters))), "--lora-modules", *modules, *extra]


def vllm_missing() -> str | None:
    """Why vLLM cannot run here, or None."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "vLLM is not installed (pip install vllm, on a CUDA machine)"
    import torch

    return None if torch.cuda.is_available() else "vLLM needs a CUDA GPU and none is visible"


@dataclass
class Server:
    base: Path
    adapters: dict[str, Path] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    rank: int = 0  # the --max-lora-rank it was started with


class VllmEngine:
    """One vLLM server per base model; restarted with the new adapter set when a version is added."""

    name = "vllm"

    def __init__(self, context: ServeContext) -> None:
        self.context = context
        self.servers: dict[str, Server] = {}
        self.extra = [str(a) for a in (context.serve.get("vllm_args") or [])]

    def load(self, version: ModelVersion, endpoint: Provisioned | None) -> OpenAICompatible:
        from . import models
        from .serving import adapter_name

        why = vllm_missing()
        if why:
            raise UserError(f"serve.engine: vllm, but {why}; use serve.engine: transformers")
        ref = version.model
        if ref.kind not in ("adapter", "base") or (ref.kind == "adapter" and ref.path is None):
            raise UserError(f"{version.name}:{version.version} is a {ref.kind} model; the vLLM engine serves "
                            "adapters and base models (serve a merged model with serve.engine: transformers)")
        base = models.resolve(ref.base)
        server = self.servers.setdefault(str(base), Server(base))
        name = "base"
        if ref.kind == "adapter" and ref.path is not None:
            name = adapter_name(version)
            if name not in server.adapters:
                server.adapters[name] = ref.path
                if server.process is None or max_lora_rank([lora_rank(ref.path)]) > server.rank:
                    self._restart(server)
                else:  # added at run time, without a restart
                    self._add(server, name, ref.path)
        elif server.process is None:
            self._restart(server)
        return OpenAICompatible(f"{version.name}:{version.version} on vLLM", f"http://127.0.0.1:{server.port}/v1",
                                name)

    def _restart(self, server: Server) -> None:
        self._stop(server)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            server.port = int(sock.getsockname()[1])
        args = command(server.base, server.adapters, server.port, self.extra)
        server.rank = int(args[args.index("--max-lora-rank") + 1])
        folder = Path(self.context.work_dir)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"vllm-{server.port}.log", "wb") as log:
            server.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                              env={**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"})
        self._wait(server)

    @staticmethod
    def _add(server: Server, name: str, path: Path) -> None:
        body = json.dumps({"lora_name": name, "lora_path": str(path)}).encode("utf-8")
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/v1/load_lora_adapter", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=300).close()
        except OSError as exc:
            raise UserError(f"vLLM refused the adapter {path}: {exc}") from None

    @staticmethod
    def _wait(server: Server, seconds: float = 600) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if server.process is not None and server.process.poll() is not None:
                raise UserError(f"vllm serve {server.base} exited with {server.process.returncode}; see its log "
                                "under .ftp/serve/")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=2):
                    return
            except OSError:
                time.sleep(1)
        raise UserError(f"vllm serve {server.base} did not become healthy in {seconds:g} s")

    @staticmethod
    def _stop(server: Server) -> None:
        if server.process is not None and server.process.poll() is None:
            server.process.terminate()
            try:
                server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.process.kill()
        server.process = None

    def close(self) -> None:
        for server in self.servers.values():
            self._stop(server)
