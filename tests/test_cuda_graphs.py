"""Training steps replayed as CUDA graphs (backends/local/graphs.py).

CI has no GPU, so the capture itself is recorded by a device run (benchmarks/cuda_graphs_gpu.py and the
pipeline rounds). On a CPU these tests run the very step a graph records (static buffers, padded
positions, the loss weight and learning rate read from tensors, one fused update) eagerly, and check that
it trains exactly as the ordinary step does, and when graphs are used or refused.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ftp.errors import UserError


def adapter_weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model" / "adapter_model.safetensors"))


@pytest.mark.parametrize("train, backend, shapes", [
    # twelve examples five a row (rows of 5, 5, 2): two shapes
    ({"batch_size": 5}, {"pack_multiple": 16}, 2),
    # rows packed to a token budget take one shape (padded offsets, every position scored), also when the
    # layers recompute in backward
    ({"pack_tokens": 192, "gradient_checkpointing": True}, {}, 1),
    # bitsandbytes' paged 8-bit AdamW (QLoRA's default) steps after the graph, from the step's first
    ({"batch_size": 5, "optimizer": "paged_adamw_8bit"}, {"pack_multiple": 16}, 2),
])
def test_the_graphed_step_trains_as_the_eager_step_does(tiny_model_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, train: dict[str, Any],
                                                         backend: dict[str, Any], shapes: int) -> None:
    """No dropout: its draws depend on the shapes."""
    from conftest import train_directly

    from ftp.backends.local import graphs

    made: list[Any] = []

    def without_capture(loop: Any, packed: bool, compiled: bool) -> Any:
        assert packed and not compiled
        made.append(graphs.StepGraphs(loop, capture=False))
        loop.pack_multiple = made[-1].multiple
        return made[-1]

    train = {"method": "lora", "max_steps": 6, "lora": {"dropout": 0.0}, "warmup_ratio": 0.2, **train}
    backend = {"devices": "cpu", **backend}
    eager_ctx, eager, _ = train_directly(tiny_model_dir, tmp_path / "eager", train, backend)
    monkeypatch.setattr(graphs, "begin", without_capture)
    graph_ctx, graphed, _ = train_directly(tiny_model_dir, tmp_path / "graphs", train, backend)

    steps = made[0]
    inside = train.get("optimizer", "adamw") == "adamw"
    assert steps.inside == inside
    # AdamW steps inside the graph, so the first step makes its state eagerly; an optimiser outside needs none
    assert (steps.replayed, steps.eager) == ((5, 1) if inside else (6, 0))
    assert not steps.graphs and len(steps.shapes) == shapes  # freed at the end
    assert all(k[1] % graphs.POSITIONS_MULTIPLE == 0 for k in steps.shapes)
    for a, b in zip(eager_ctx.rows, graph_ctx.rows, strict=True):
        assert a["step"] == b["step"] and a["lr"] == b["lr"] and a["tokens"] == b["tokens"]
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4 * max(1.0, abs(a["train_loss"]))
    want, got = adapter_weights(tmp_path / "eager"), adapter_weights(tmp_path / "graphs")
    assert want.keys() == got.keys()
    for name in want:
        assert (want[name] - got[name]).abs().max() < 1e-4, name
    assert eager.train_tokens == graphed.train_tokens


def test_the_static_batch_keeps_the_loss_of_the_row(tiny_model_dir: Path) -> None:
    """Padding positions and rounding the row change the shape, not the summed loss or its count."""
    from ftp.backends.local.chat import chat_format, encode
    from ftp.backends.local.graphs import POSITIONS_MULTIPLE, StepGraphs
    from ftp.backends.local.loss import answer_loss
    from ftp.backends.local.modeling import collate_packed, load_tokenizer
    from transformers import AutoModelForCausalLM

    from conftest import make_examples

    fmt = chat_format(load_tokenizer(tiny_model_dir))
    rows = [encode(fmt, ex["messages"], 256) for ex in make_examples(4)]
    loop = SimpleNamespace(fmt=fmt, pack_multiple=32)
    static = StepGraphs.batch(SimpleNamespace(loop=loop, multiple=32, budget=None), rows)  # type: ignore[arg-type]
    plain = collate_packed(rows, "cpu", fmt.tokenizer.pad_token_id)
    assert static.input_ids.size(1) % 32 == 0 and static.input_ids.size(1) > plain.input_ids.size(1)
    assert static.positions.numel() % POSITIONS_MULTIPLE == 0 and static.trained == plain.trained
    assert static.longest == static.input_ids.size(1) and static.starts[-1] == static.input_ids.size(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    a, _ = answer_loss(model, plain)
    b, _ = answer_loss(model, static)
    assert abs(float(a) - float(b)) < 1e-4


def test_a_budget_row_takes_the_budgets_shape_and_keeps_its_loss(tiny_model_dir: Path) -> None:
    """Rows packed to train.pack_tokens: the budget's length, every position, offsets padded by empty
    examples, which attention skips; the loss is the row's."""
    from ftp.backends.local.attention import packed
    from ftp.backends.local.chat import chat_format, encode
    from ftp.backends.local.graphs import OFFSETS_MULTIPLE, StepGraphs
    from ftp.backends.local.loss import answer_loss
    from ftp.backends.local.modeling import collate_packed, load_tokenizer
    from transformers import AutoModelForCausalLM

    from conftest import make_examples

    fmt = chat_format(load_tokenizer(tiny_model_dir))
    rows = [encode(fmt, ex["messages"], 256) for ex in make_examples(3)]
    plain = collate_packed(rows, "cpu", fmt.tokenizer.pad_token_id)
    budget = plain.input_ids.size(1) + 40
    loop = SimpleNamespace(fmt=fmt)
    static = StepGraphs.batch(SimpleNamespace(loop=loop, multiple=budget, budget=budget), rows)  # type: ignore[arg-type]
    assert static.input_ids.size(1) == budget == static.positions.numel() == static.longest
    assert static.starts.numel() == OFFSETS_MULTIPLE and static.trained == plain.trained
    assert static.starts[:5].tolist() == plain.starts.tolist() + [budget]  # then empty examples
    assert set(static.starts[4:].tolist()) == {budget}
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with packed(model) as mask_free:
        assert mask_free
        a, _ = answer_loss(model, plain)
        b, _ = answer_loss(model, static)
    assert abs(float(a) - float(b)) < 1e-4


def test_checkpointing_saves_the_random_state_only_when_something_draws(tiny_model_dir: Path) -> None:
    """Dropout (the adapters' or the model's) needs the recompute to repeat its draws; without it, saving
    the generator's state is wasted, and a CUDA graph capture may refuse it."""
    from ftp.backends.local.modeling import Placement
    from ftp.backends.local.training import prepare_model
    from ftp.config.settings import LoraSettings

    where = Placement("cpu", "float32")
    for dropout, saved in ((0.0, False), (0.05, True)):
        model = prepare_model(tiny_model_dir, "lora", LoraSettings(dropout=dropout), where, True)
        funcs = {m._gradient_checkpointing_func for m in model.modules() if hasattr(m, "_gradient_checkpointing_func")}
        assert funcs and {f.keywords["preserve_rng_state"] for f in funcs} == {saved}


def loop_like(**train: Any) -> Any:
    """What ``refusal`` reads of a Loop."""
    from ftp.config.settings import TrainSettings

    return SimpleNamespace(settings=TrainSettings(**train), where=SimpleNamespace(device="cuda"),
                           dist=SimpleNamespace(world=1), scaler=SimpleNamespace(is_enabled=lambda: False))


@pytest.mark.parametrize("train, word", [
    ({"gradient_accumulation_steps": 2}, "gradient_accumulation_steps"),
    ({"packing": False}, "packed rows"),
    ({"neftune_alpha": 5.0}, "neftune_alpha"),
])
def test_what_cannot_be_captured_is_named(train: dict[str, Any], word: str) -> None:
    from ftp.backends.local.graphs import refusal

    assert refusal(loop_like(), packed=True, compiled=False) is None
    assert word in (refusal(loop_like(**train), packed=True, compiled=False) or "")
    assert "compiled" in (refusal(loop_like(), packed=True, compiled=True) or "")


def test_graphs_are_off_on_a_cpu_by_default_and_refused_when_forced(tiny_model_dir: Path, tmp_path: Path) -> None:
    from conftest import train_directly

    ctx, _, _ = train_directly(tiny_model_dir, tmp_path / "auto", {"method": "lora", "max_steps": 2})
    assert "cuda_graphs" not in ctx.events
    with pytest.raises(UserError, match=r"backends.local.cuda_graphs: true, but .*CUDA device"):
        train_directly(tiny_model_dir, tmp_path / "forced", {"method": "lora", "max_steps": 2},
                       {"devices": "cpu", "cuda_graphs": True})


def test_auto_graphs_are_expected_where_they_can_run_and_then_compiling_waits(tiny_model_dir: Path) -> None:
    """Asked before the layers are compiled: graphs replay eager layers, faster than compiled ones run, so
    compiling ``auto`` stays off where graphs will run; QLoRA's 4-bit layers capture (the GPU probe)."""
    from transformers import AutoModelForCausalLM

    from ftp.backends.local.graphs import expected
    from ftp.backends.local.modeling import COMPILE_MIN_STEPS, Placement, wants_compile
    from ftp.config.settings import TrainSettings

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    gpu = Placement("cuda", "bfloat16")

    def request(backend: dict[str, Any] | None = None, **train: Any) -> Any:
        return SimpleNamespace(settings=TrainSettings(**train), backend_settings=backend or {})

    assert expected(request(), gpu, 1, False, model)
    assert expected(request(method="qlora", optimizer="adamw", gradient_checkpointing=True), gpu, 1, False, model)
    assert expected(request(method="qlora"), gpu, 1, False, model)  # paged 8-bit AdamW steps after the graph
    assert not expected(request({"cuda_graphs": False}), gpu, 1, False, model)
    assert not expected(request({"attention": "sdpa"}), gpu, 1, False, model)
    assert not expected(request(), gpu, 2, False, model) and not expected(request(), gpu, 1, True, model)
    assert not expected(request(), Placement("cpu", "float32"), 1, False, model)
    assert not wants_compile("auto", "cuda:0", 10 * COMPILE_MIN_STEPS, graphs=True)
    assert wants_compile(True, "cuda:0", 1, graphs=True)  # asked for: compiled, and graphs then stay off
