"""The local backend: PEFT LoRA / QLoRA or full fine-tuning on this machine's GPU or CPU.

Importing this module is cheap; torch and transformers load only when training or inference starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

from ftp import hookimpl
from ftp.types import BackendSpec, ModelRef, StepContext, TrainRequest, TrainResult, TrainSpec

NAME = "local"


class NodesSettings(BaseModel):
    """Several hosts training one model: every host runs the same ``ftp run``; node 0 writes the model
    and goes on with the pipeline, the others train their share and stop after the train step."""

    model_config = ConfigDict(extra="forbid")

    count: PositiveInt = Field(1, description="how many hosts train together")
    rank: Literal["auto"] | NonNegativeInt = Field(
        "auto", description="this host's node rank (0: the host that writes the model); auto: the environment's "
                            "FTP_NODE_RANK, else SLURM_NODEID")
    endpoint: str | None = Field(None, description="host:port on node 0 where torchrun's rendezvous listens, "
                                                   "reachable from every node (e.g. node0.cluster:29500)")


class LocalSettings(BaseModel):
    """Keys of ``backends.local`` besides the common sections it may override."""

    model_config = ConfigDict(extra="forbid")

    devices: Literal["auto", "cpu", "cuda"] | PositiveInt = Field(
        "auto", description="auto: every visible GPU (DDP when more than one), else the CPU; or a number of GPUs")
    processes: PositiveInt = Field(1, description="with devices: cpu, train in this many processes (DDP on gloo)")
    nodes: NodesSettings = Field(default_factory=NodesSettings, description="several hosts (torchrun's rendezvous)")
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="several processes: ddp (a whole copy per GPU) or fsdp (weights, gradients and "
                           "optimiser state sharded across GPUs, for models one GPU cannot hold)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    weights: Literal["compute", "float32"] = Field(
        "compute", description="storage of the frozen weights (LoRA, full): compute = the dtype; float32 = "
                               "float32 weights under autocast (classic mixed precision)")
    compile: Literal["auto"] | bool = Field(
        "auto", description="torch.compile each decoder layer; auto: on CUDA (with triton) for runs of 1,000+ steps")
    compile_backend: str = Field("inductor", description="torch.compile backend (aot_eager to debug a compile problem)")
    fused_norms: Literal["auto"] | bool = Field(
        "auto", description="RMSNorm in one call (torch's rms_norm) while training, for norms whose output it "
                            "matches; auto: on CUDA, where a small model's step is bound by kernel launches")
    lean_mlp: Literal["auto"] | bool = Field(
        "auto", description="while training, a gated MLP (SwiGLU, GELU-tanh) keeps only its two projections "
                            "for backward and recomputes the activation there (one tensor of the MLP's width "
                            "less per layer, bit-identical gradients); auto: on CUDA")
    fused_adapters: Literal["auto"] | bool = Field(
        "auto", description="while training, each plain LoRA layer adds its adapter inside one matmul "
                            "(torch.addmm) instead of PEFT's clone, scale and add; auto: on CUDA (not with fsdp)")
    cuda_graphs: Literal["auto"] | bool = Field(
        "auto", description="replay each training step as a CUDA graph (one per row shape) so a small model's "
                            "step is not bound by launching kernels; auto: on CUDA where the run allows it "
                            "(one process, packed mask-free rows, no accumulation, no float16 loss scaling, no "
                            "NEFTune, layers not compiled)")
    pack_multiple: int = Field(0, ge=0, description="round packed rows up to a multiple of this many tokens (0: off)")
    attention: Literal["auto", "sdpa"] = Field(
        "auto", description="packed rows: auto uses variable-length FlashAttention where the model's attention "
                            "allows it (no soft-capping; sliding windows of known model types), else SDPA with a "
                            "block-diagonal mask")


class LocalTrainer:
    """Keeps the model it trained in memory, so review and evaluation reuse it."""

    name = "local-peft"

    def __init__(self) -> None:
        self._trained: Any = None
        self._adapter: Any = None  # (base, predictor): the last adapter loaded from disk, which also serves its base

    def preflight(self, spec: TrainSpec) -> list[str]:
        from .distributed import nodes_of
        from .models import check_base_model

        check_base_model(spec.base_model)
        nodes_of(spec.backend_settings)  # a host without its rank or node 0's address: said before any step
        return []

    def train(self, request: TrainRequest, ctx: StepContext) -> TrainResult:
        from .modeling import quiet_libraries
        from .training import train

        quiet_libraries()
        from .distributed import launch, nodes_of, world_size

        from .precision import check_precision

        check_precision(request.method, str(request.backend_settings.get("dtype", "auto")))
        plan = self.plan(request)
        verdict = "fits" if plan.fits else "may NOT fit (see `ftp plan`)"
        ctx.reporter.event("warning" if plan.fits is False else "memory_plan",
                           message=f"predicted peak memory {plan.total_gib:.1f} GiB on {plan.device}: {verdict}")
        world, nodes = world_size(request.backend_settings), nodes_of(request.backend_settings)
        if world * nodes.count > 1:
            self._trained = None
            return launch(request, ctx, world, nodes)
        result, self._trained = train(request, ctx)
        return result

    def predictor(self, model: ModelRef, ctx: StepContext) -> Any:
        from .modeling import quiet_libraries
        from .predictor import load_predictor

        quiet_libraries()
        trained = self._trained if self._trained is not None and model.path in (None, self._trained.output_dir) else None
        if trained is None and model.kind == "base" and self._adapter is not None and self._adapter[0] == model.base:
            return self._adapter[1].without_adapter()  # one load serves the fine-tuned model and its base
        hp = {"max_seq_length": ctx.setting("model.max_seq_length"), "chat_template": ctx.setting("model.chat_template")}
        predictor = load_predictor(model, trained, ctx.backend_settings, hp)
        if trained is None and model.kind == "adapter":
            self._adapter = (model.base, predictor)
        return predictor


    def plan(self, request: TrainRequest) -> Any:
        from .memory import plan_memory

        return plan_memory(request)

    def export(self, model: ModelRef, out_dir: Path, merge: bool) -> Path:
        from .export import export_model

        return export_model(model, out_dir, merge)


@hookimpl
def ftp_backends() -> list[BackendSpec]:
    return [BackendSpec(name=NAME, description="PEFT LoRA/QLoRA/full fine-tuning on this machine (GPU or CPU)",
                        settings=LocalSettings)]


@hookimpl
def ftp_trainer(backend: str) -> LocalTrainer | None:
    return LocalTrainer() if backend == NAME else None


@hookimpl
def ftp_predictor(model: ModelRef, ctx: StepContext) -> Any:
    """A base model, an adapter or a merged folder on this machine, loaded from disk."""
    return LocalTrainer().predictor(model, ctx) if model.backend == NAME else None


@hookimpl
def ftp_token_counter(backend: str, model: str | None) -> Any:
    if backend != NAME or not model:
        return None
    from .tokens import token_counter

    return token_counter(model)


@hookimpl
def ftp_serving_engine(backend: str, context: Any) -> Any:
    """transformers + PEFT (every adapter beside one base model, dynamic batching), or vLLM when
    ``serve.engine: vllm``."""
    if backend != NAME:
        return None
    if context.serve.get("engine") == "vllm":
        from .vllm_engine import VllmEngine

        return VllmEngine(context)
    from .serving import LocalEngine

    return LocalEngine(context)
