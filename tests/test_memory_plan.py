"""``ftp plan``: memory predicted from a model's config, without loading weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ftp.backends.local import memory
from ftp.backends.local.memory import Setup, count_parameters, estimate, shape_from_config
from ftp.data.files import dataset_ref
from ftp.types import DatasetRef, MemoryPlan, TrainRequest

from ftp.data.files import dataset_ref
from conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
GEMMA = memory.KNOWN_CONFIGS["gemma-3-270m"]


def real_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_matches_tiny_llama(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    config = json.loads((tiny_model_dir / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert sum(count_parameters(shape_from_config(config)).values()) == real_count(model)


@pytest.mark.parametrize("tied", [True, False])
def test_parameter_count_matches_tiny_gemma3(tied: bool) -> None:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(vocab_size=512, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                              num_attention_heads=4, num_key_value_heads=1, head_dim=32, tie_word_embeddings=tied)
    model = Gemma3ForCausalLM(config)
    assert sum(count_parameters(shape_from_config(config.to_dict())).values()) == real_count(model)


def test_parameter_count_matches_untied_llama_with_bias() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=False,
                         attention_bias=True, mlp_bias=True)
    model = LlamaForCausalLM(config)
    assert sum(count_parameters(shape_from_config(config.to_dict())).values()) == real_count(model)


def test_gemma_270m_has_270m_parameters() -> None:
    assert sum(count_parameters(shape_from_config(GEMMA)).values()) == 268_098_176


def setup(**kw: Any) -> Setup:
    base = dict(method="lora", batch=8, seq=256, accum=1, r=16, dropout=0.05, targets="all-linear", dora=False,
                optimizer="adamw", checkpointing=False, device="cpu", dtype_name="float32")
    return Setup(**{**base, **kw})


def test_weights_and_totals_order_by_method() -> None:
    shape = shape_from_config(GEMMA)
    plans = {m: estimate(shape, setup(method=m)) for m in ("full", "lora", "qlora")}
    assert plans["full"]["weights"] == plans["lora"]["weights"] > plans["qlora"]["weights"]
    totals = {m: sum(p.values()) for m, p in plans.items()}
    assert totals["full"] > totals["lora"] > totals["qlora"]
    assert plans["full"]["optimizer states"] == 2 * plans["full"]["weights"]  # fp32 AdamW, every parameter
    assert "lora adapters" not in plans["full"]
    assert all(v > 0 for v in plans["lora"].values())


def test_lora_adapter_size() -> None:
    shape = shape_from_config(GEMMA)
    h, q, kv, i = 640, 1024, 256, 2048
    per_layer = 16 * ((h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h))
    assert estimate(shape, setup())["lora adapters"] == 18 * per_layer * 4
    only_qv = estimate(shape, setup(targets=["q_proj", "v_proj"]))["lora adapters"]
    assert only_qv == 18 * 16 * ((h + q) + (h + kv)) * 4


def test_activations_scale_with_batch_and_sequence() -> None:
    shape = shape_from_config(GEMMA)
    one = estimate(shape, setup(batch=4, seq=256))
    assert estimate(shape, setup(batch=8, seq=256))["activations"] == pytest.approx(2 * one["activations"])
    small = estimate(shape, setup(batch=1, seq=64))
    assert estimate(shape, setup(batch=2, seq=64))["logits"] == pytest.approx(2 * small["logits"])
    # the loss scores at most 2**26 logits at a time: a bigger batch does not grow them past that
    assert estimate(shape, setup(batch=8, seq=256))["logits"] == one["logits"]
    longer = estimate(shape, setup(batch=4, seq=512))
    assert longer["activations"] > 2 * one["activations"]  # attention scores grow with seq^2 on CPU
    assert longer["weights"] == one["weights"]
    ckpt = estimate(shape, setup(checkpointing=True))
    assert ckpt["activations"] < estimate(shape, setup())["activations"] / 4


def request(base: str, tmp_path: Path, words: list[int] | None = None) -> TrainRequest:
    """A request whose training file holds one example per entry of ``words`` (that many words each)."""
    from ftp.config.settings import ModelSettings, TrainSettings

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "word " * n},
                                                     {"role": "assistant", "content": "ok"}]}) + "\n"
                            for n in words or []), encoding="utf-8")
    return TrainRequest(backend="local", base_model=base, settings=TrainSettings(), model=ModelSettings(max_seq_length=256),
                        train=DatasetRef(path=data, sha256="0" * 64, examples=100),
                        validation=None, output_dir=tmp_path / "out", backend_settings={"devices": "cpu"})


def test_tiny_budget_does_not_fit_and_suggests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "device_memory_gib", lambda device: 2.0)
    monkeypatch.setenv("FTP_CACHE_DIR", str(tmp_path / "cache"))
    plan = memory.plan_memory(request("builtin:gemma-3-270m", tmp_path))
    assert plan.fits is False and plan.device == "cpu" and plan.device_gib == 2.0
    tips = plan.suggestions
    assert len(tips) >= 5 and tips[-1] == "model.base: a smaller model"
    assert any("train.method: qlora" in t for t in tips)
    batch_tip = next(t for t in tips if t.startswith("train.batch_size"))
    assert "gradient_accumulation_steps" in batch_tip and "same 8 examples per step" in batch_tip
    assert any(t.startswith("model.max_seq_length") for t in tips)
    assert any(t.startswith("train.lora.r") for t in tips)
    sizes = [float(t.rsplit("~", 1)[1].split()[0]) for t in tips[:-1]]
    assert sizes == sorted(sizes) and max(sizes) < plan.total_gib  # largest effect first


def test_big_budget_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "device_memory_gib", lambda device: 1000.0)
    monkeypatch.setenv("FTP_CACHE_DIR", str(tmp_path / "cache"))
    plan = memory.plan_memory(request("builtin:gemma-3-270m", tmp_path))
    assert plan.fits is True and plan.suggestions == []
    assert plan.total_gib == pytest.approx(sum(plan.parts_gib.values()), abs=0.01)


def test_cli_plan_on_tiny_project(project: Path) -> None:
    result = invoke("plan", "pipeline.yaml", "--json")
    assert result.exit_code == 0, result.output
    plan = MemoryPlan.model_validate_json(result.output)
    assert plan.device == "cpu" and plan.fits is True
    assert all(v > 0 for v in plan.parts_gib.values())
    text = invoke("plan", "pipeline.yaml")
    assert text.exit_code == 0 and "predicted peak" in text.output


def test_quickstart_plan_needs_no_conversion(tmp_path: Path) -> None:
    """Planning the quickstart neither converts builtin:gemma-3-270m nor imports transformers."""
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from ftp.cli.model import train_request\n"
        "from ftp.hooks import Hooks\n"
        "from ftp.plugin_manager import get_plugin_manager\n"
        "from ftp.config.pipeline_file import load_pipeline\n"
        "from ftp.backends.local.memory import plan_memory\n"
        "hooks = Hooks(get_plugin_manager())\n"
        f"loaded = load_pipeline(Path({str(ROOT / 'examples/quickstart/pipeline.yaml')!r}), 'local', hooks.catalog(), ())\n"
        "plan = plan_memory(train_request(loaded, Path('runs/plan')))\n"
        "print(json.dumps({'plan': plan.model_dump(), 'transformers': 'transformers' in sys.modules}))\n"
    )
    env = {**__import__("os").environ, "FTP_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["transformers"] is False
    assert result["plan"]["parts_gib"]["weights"] > 0.4
    assert not (tmp_path / "cache" / "models").exists()


def test_cli_plan_quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    result = invoke("plan", str(ROOT / "examples/quickstart/pipeline.yaml"), "--set", "backends.local.devices=cpu",
                    "--json")
    assert result.exit_code == 0, result.output
    plan = MemoryPlan.model_validate_json(result.output)
    assert plan.parts_gib["weights"] == pytest.approx(268_098_176 * 4 / 2**30, rel=1e-2)
    assert not (tmp_path / "cache" / "models").exists()


def test_the_plan_budgets_the_batches_this_data_makes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Short examples need less than the max_seq_length bound, which the plan reports beside it."""
    monkeypatch.setattr(memory, "device_memory_gib", lambda device: 1000.0)
    monkeypatch.setenv("FTP_CACHE_DIR", str(tmp_path / "cache"))
    short = memory.plan_memory(request("builtin:gemma-3-270m", tmp_path, words=[10] * 50))
    long = memory.plan_memory(request("builtin:gemma-3-270m", tmp_path, words=[150] * 50))
    empty = memory.plan_memory(request("builtin:gemma-3-270m", tmp_path))
    assert short.total_gib < long.total_gib < long.worst_case_gib == empty.total_gib
    assert short.parts_gib["weights"] == long.parts_gib["weights"]
    assert "tokens estimated from bytes" in short.basis and empty.basis == "every example at model.max_seq_length"


def test_micro_batches_are_sized_from_a_high_percentile() -> None:
    from ftp.backends.local.data_lengths import micro_batch

    lengths = tuple([100] * 990 + [2000] * 10)  # 1% long outliers
    rows, row_len = micro_batch(lengths, 4, 1024, packed=True)
    assert rows == 1 and 400 <= row_len <= 400 + 3 * 100 + 1024  # the sum of 4, an outlier clipped to 1024
    rows, row_len = micro_batch(lengths, 4, 1024, packed=False)
    assert rows == 4 and row_len in (100, 1024)  # padded: the longest of the draw
    assert micro_batch((), 4, 512, packed=True) == (1, 2048) and micro_batch((), 4, 512, packed=False) == (4, 512)


def test_lengths_are_counted_with_the_models_tokenizer(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    from ftp.backends.local.data_lengths import TEMPLATE_TOKENS, example_lengths

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hello world"},
                                             {"role": "assistant", "content": "red"}]}) + "\n", encoding="utf-8")
    (counts,), exact = example_lengths(dataset_ref(data, "train"), str(tiny_model_dir))
    tok = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    expected = sum(len(tok.encode(t, add_special_tokens=False).ids) + TEMPLATE_TOKENS for t in ("hello world", "red"))
    assert exact and counts == expected

    # the same example as a Parquet row, read through data.columns: the same count
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = tmp_path / "d.parquet"
    pq.write_table(pa.table({"q": ["hello world"], "a": ["red"]}), table)
    (from_table,), _ = example_lengths(dataset_ref(table, "train", {"prompt": "q", "completion": "a"}), str(tiny_model_dir))
    assert from_table == counts


def test_plan_and_advise_read_a_parquet_training_file(project: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line)["messages"] for line in (project / "data" / "train.jsonl").read_text().splitlines()]
    pq.write_table(pa.table({"question": [m[-2]["content"] for m in rows], "answer": [m[-1]["content"] for m in rows]}),
                   project / "data" / "train.parquet")
    text = (project / "pipeline.yaml").read_text().replace("data/train.jsonl", "data/train.parquet")
    (project / "pipeline.yaml").write_text(text.replace("data:\n", "data:\n  columns: {prompt: question, completion: answer}\n", 1))
    planned = invoke("plan", "pipeline.yaml", "--json")
    assert planned.exit_code == 0, planned.output + planned.stderr
    assert "micro-batches of this data" in json.loads(planned.output)["basis"]
    advised = invoke("advise", "data/train.parquet", "--columns", "prompt=question,completion=answer", "--json")
    assert advised.exit_code == 0, advised.output + advised.stderr
    assert json.loads(advised.output)["situation"]["examples"] == len(rows)
