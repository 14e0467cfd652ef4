"""The local serving engine on the tiny model with two random LoRA adapters: one base model in memory,
mixed-adapter batches that answer exactly as each version alone, per-row sampling with seeds, token
streaming, stop strings, limits, deadlines and dynamic batching from concurrent threads."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ftp.errors import RequestRejected
from ftp.types import Completion, GenerationRequest, ModelRef, ModelVersion, ServeContext

ASK = [{"role": "user", "content": "Ticket 1: my car is red and it is broken."}]
OTHER = [{"role": "user", "content": "the lamp is green"}]


def make_adapter(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random (not zero) weights, so it changes the answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base))
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    peft.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(out))
    return out


def version(name: str, number: int, kind: str, base: Path, path: Path | None) -> ModelVersion:
    return ModelVersion(name=name, version=number, created_at="2026-12-01T00:00:00Z", run_id="r", backend="local",
                        base_model=str(base), model=ModelRef(kind=kind, base=str(base), backend="local", path=path),
                        data_sha256={}, hyperparameters={}, metrics={}, pipeline_sha256="", code_version="")


@pytest.fixture(scope="module")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return make_adapter(tiny_model_dir, root / "a", 1), make_adapter(tiny_model_dir, root / "b", 2)


@pytest.fixture
def engine(tiny_model_dir: Path) -> Any:
    from ftp.backends.local.serving import LocalEngine

    made = LocalEngine(ServeContext(serve={"batch_window_ms": 30, "max_batch_size": 8},
                                    backend_settings={"devices": "cpu"}))
    yield made
    made.close()


def ask(model: Any, messages: list[dict[str, Any]] = ASK, **fields: Any) -> Completion:
    return model.complete(GenerationRequest(messages=messages, **{"max_tokens": 10, **fields}))


def together(calls: list[Any]) -> list[Any]:
    """Run the calls from threads at once (so the batcher sees them within its window)."""
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_one_base_in_memory_and_mixed_batches_answer_as_alone(engine: Any, tiny_model_dir: Path,
                                                             adapters: tuple[Path, Path]) -> None:
    a = engine.load(version("m", 1, "adapter", tiny_model_dir, adapters[0]), None)
    b = engine.load(version("m", 2, "adapter", tiny_model_dir, adapters[1]), None)
    base = engine.load(version("m", 0, "base", tiny_model_dir, None), None)
    assert len(engine.hosts) == 1 and set(a.host.adapters) == {"m_v1", "m_v2"}  # one base, two adapters beside it
    alone = [ask(a).text, ask(b).text, ask(base).text]
    assert len(set(alone)) == 3, alone  # the adapters change the answers
    before = a.host.batcher.batches
    mixed = together([lambda: ask(a), lambda: ask(b), lambda: ask(base), lambda: ask(a, OTHER)])
    assert [m.text for m in mixed[:3]] == alone
    assert a.host.batcher.batches - before < 4  # batched: fewer generate calls than requests


def test_sampling_is_per_row_and_seeded(engine: Any, tiny_model_dir: Path, adapters: tuple[Path, Path]) -> None:
    a = engine.load(version("m", 1, "adapter", tiny_model_dir, adapters[0]), None)
    seeded = dict(temperature=1.5, top_p=0.95, seed=7, max_tokens=12)
    first = ask(a, **seeded).text
    assert ask(a, **seeded).text == first  # the same seed, the same draw
    batched = together([lambda: ask(a, **seeded), lambda: ask(a), lambda: ask(a, temperature=1.5, seed=8, max_tokens=12)])
    assert batched[0].text == first  # batched with a greedy row and another seed: still its own draw
    assert batched[1].text == ask(a).text  # greedy rows stay greedy beside sampled ones
    draws = {ask(a, temperature=2.0, max_tokens=12).text for _ in range(4)}
    assert len(draws) > 1  # unseeded sampling varies


def test_streaming_stops_and_limits(engine: Any, tiny_model_dir: Path, adapters: tuple[Path, Path]) -> None:
    a = engine.load(version("m", 1, "adapter", tiny_model_dir, adapters[0]), None)
    whole = ask(a, max_tokens=12)
    pieces = list(a.stream(GenerationRequest(messages=ASK, max_tokens=12)))
    assert isinstance(pieces[-1], Completion) and pieces[-1] == whole.model_copy(update={"queue_ms": pieces[-1].queue_ms})
    texts = [p for p in pieces[:-1] if isinstance(p, str)]
    assert "".join(texts) == whole.text and len(texts) > 1  # token by token, adding up to the answer
    assert whole.completion_tokens <= 12 and whole.prompt_tokens > len(ASK[0]["content"].split())
    assert whole.finish_reason == ("length" if whole.completion_tokens == 12 else "stop")
    stop = whole.text[len(whole.text) // 2: len(whole.text) // 2 + 2]
    cut = ask(a, max_tokens=12, stop=[stop])
    assert cut.text == whole.text[: whole.text.find(stop)] and cut.finish_reason == "stop"
    streamed = list(a.stream(GenerationRequest(messages=ASK, max_tokens=12, stop=[stop])))
    assert "".join(p for p in streamed if isinstance(p, str)) == cut.text  # no part of the stop string leaks
    with pytest.raises(RequestRejected, match="context"):
        ask(a, [{"role": "user", "content": "red " * 300}], max_tokens=10)


def test_deadline_and_cancel_free_the_row(engine: Any, tiny_model_dir: Path, adapters: tuple[Path, Path]) -> None:
    a = engine.load(version("m", 1, "adapter", tiny_model_dir, adapters[0]), None)
    with pytest.raises(TimeoutError):
        ask(a, max_tokens=200, timeout_s=0.001)
    pieces = a.stream(GenerationRequest(messages=ASK, max_tokens=200))
    assert isinstance(next(pieces), str)
    pieces.close()  # the client went away
    started = time.monotonic()
    assert ask(a).text  # the engine goes on answering
    assert time.monotonic() - started < 30


def test_vllm_engine_is_ready_where_vllm_is_not(tiny_model_dir: Path, adapters: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    """The command line takes the adapters' real rank (vLLM's default 16 refuses bigger ones), refuses
    what vLLM cannot load, and a machine without vLLM gets a one-line error naming the other engine."""
    import json
    import shutil

    from ftp.backends.local import vllm_engine
    from ftp.backends.local.vllm_engine import VllmEngine, command, lora_rank, max_lora_rank

    big = tmp_path / "big"
    shutil.copytree(adapters[0], big)
    config = json.loads((big / "adapter_config.json").read_text())
    (big / "adapter_config.json").write_text(json.dumps({**config, "r": 40, "rank_pattern": {"q_proj": 72}}))
    assert lora_rank(adapters[0]) == 4 and lora_rank(big) == 72 and max_lora_rank([4, 72]) == 128
    args = command(tiny_model_dir, {"m_v1": adapters[0], "m_v2": big}, 8123, ["--gpu-memory-utilization", "0.5"])
    assert args[args.index("--max-lora-rank") + 1] == "128" and args[args.index("--max-loras") + 1] == "2"
    modules = [json.loads(a) for a in args[args.index("--lora-modules") + 1: args.index("--gpu-memory-utilization")]]
    assert [m["name"] for m in modules] == ["m_v1", "m_v2"] and modules[1]["path"] == str(big)
    (big / "adapter_config.json").write_text(json.dumps({**config, "modules_to_save": ["lm_head"]}))
    with pytest.raises(Exception, match="modules_to_save"):
        lora_rank(big)
    if vllm_engine.vllm_missing() is None:
        pytest.skip("vLLM is installed here: the GPU benchmark exercises it")
    with pytest.raises(Exception, match="serve.engine: vllm, but .*use serve.engine: transformers"):
        VllmEngine(ServeContext()).load(version("m", 1, "adapter", tiny_model_dir, adapters[0]), None)
