"""``ftp export``: the adapter as is, or merged into a plain transformers model, by run id or NAME:VERSION."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CHATML, invoke

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "ftp_model.json", "README.md")


def train_run(project: Path, *steps: str) -> str:
    args = ("--steps", ",".join(steps)) if steps else ()
    result = invoke("run", "pipeline.yaml", "--quiet", *args)
    assert result.exit_code == 0, result.output + result.stderr
    (run_dir,) = sorted((project / "runs" / "tiny").iterdir())
    return json.loads((run_dir / "state.json").read_text())["run_id"]


@pytest.fixture
def run_id(project: Path) -> str:
    return train_run(project, "validate", "split", "train")


def sample_ids(tokenizer: Any) -> Any:
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Ticket 7: my car is red and it is broken."}],
                                         tokenize=False, add_generation_prompt=True)
    return tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]


def adapter_logits(base_dir: Path, adapter_dir: Path, ids: Any) -> Any:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_export_adapter_loads_with_peft(project: Path, run_id: str, tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = invoke("export", run_id, "--out", "exported", "--json")
    assert result.exit_code == 0, result.output + result.stderr
    info = json.loads(result.output)
    out = project / "exported"
    assert Path(info["path"]) == Path("exported") and info["merged"] is False
    for name in ADAPTER_FILES:
        assert (out / name).exists(), name
    assert [p.name for p in project.iterdir() if p.name.startswith(".exported")] == []  # no temp folder left
    readme = (out / "README.md").read_text()
    assert str(tiny_model_dir) in readme and "PeftModel.from_pretrained" in readme and "--enable-lora" in readme
    assert "chat template" in readme.lower()

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert tokenizer.chat_template == CHATML
    ids = sample_ids(tokenizer)
    logits = adapter_logits(tiny_model_dir, out, ids)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        assert torch.isfinite(logits).all() and not torch.allclose(base(input_ids=ids).logits, logits, atol=1e-4)


def test_export_merged_matches_base_plus_adapter(project: Path, run_id: str, tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = invoke("export", run_id, "--merge", "--out", "merged")
    assert result.exit_code == 0, result.output + result.stderr
    assert "merged model written to merged" in result.output
    out = project / "merged"
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
    assert not (out / "adapter_config.json").exists()
    assert "AutoModelForCausalLM.from_pretrained(DIR)" in (out / "README.md").read_text()

    merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    assert not hasattr(merged, "peft_config")
    assert not any("lora" in name for name, _ in merged.named_parameters())
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert tokenizer.chat_template == CHATML
    ids = sample_ids(tokenizer)
    with torch.no_grad():
        got = merged(input_ids=ids).logits
    run_model = next((project / "runs" / "tiny").iterdir()) / "model"
    want = adapter_logits(tiny_model_dir, run_model, ids)
    assert torch.allclose(got, want, atol=1e-4)
    # The adapter changed the model: merging was not a no-op.
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=ids).logits, want, atol=1e-4)


def test_export_by_registry_name_and_version(project: Path) -> None:
    train_run(project)
    result = invoke("export", "tiny-model:1", "--out", "from-registry", "--registry", ".ftp/registry.db", "--json")
    assert result.exit_code == 0, result.output + result.stderr
    assert json.loads(result.output)["model"]["kind"] == "adapter"
    for name in ADAPTER_FILES:
        assert (project / "from-registry" / name).exists(), name
    missing = invoke("export", "tiny-model:9", "--out", "nothing", "--registry", ".ftp/registry.db")
    assert missing.exit_code == 2 and not (project / "nothing").exists()


def test_export_refuses_non_empty_out(project: Path, run_id: str) -> None:
    (project / "taken").mkdir()
    (project / "taken" / "keep.txt").write_text("mine")
    result = invoke("export", run_id, "--out", "taken")
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert [p.name for p in (project / "taken").iterdir()] == ["keep.txt"]


def test_export_unknown_run_exits_2(project: Path) -> None:
    result = invoke("export", "no-such-run", "--out", "out")
    assert result.exit_code == 2
    assert not (project / "out").exists()


def test_export_errors_missing_adapter_and_base(project: Path, run_id: str, tmp_path: Path) -> None:
    from ftp.backends.local.export import export_model
    from ftp.errors import UserError
    from ftp.types import ModelRef

    run_model = next((project / "runs" / "tiny").iterdir()) / "model"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text((run_model / "adapter_config.json").read_text())
    with pytest.raises(UserError, match="adapter files missing.*adapter_model.safetensors"):
        export_model(ModelRef(kind="adapter", base="x", backend="local", path=broken), tmp_path / "o1", False)
    no_base = ModelRef(kind="adapter", base=str(tmp_path / "gone"), backend="local", path=run_model)
    with pytest.raises(UserError, match="base model .* is missing"):
        export_model(no_base, tmp_path / "o2", True)
    assert not (tmp_path / "o2").exists() and not list(tmp_path.glob(".o2.*"))
