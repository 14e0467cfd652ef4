"""``ftp export`` for the local backend: a trained model as files another tool can serve.

Without ``--merge`` the run's ``model/`` folder is copied as it is: the PEFT adapter, the tokenizer with
the chat template used in training, and ``ftp_model.json``. With ``--merge`` the adapter is folded into
the base model's weights (``merge_and_unload``) and saved as a plain transformers model, so
``AutoModelForCausalLM.from_pretrained(DIR)`` loads it with no PEFT. Either way a README.md says how to
load it, and the output appears all at once (written to a sibling folder, then renamed).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ftp.config.model_source import model_source
from ftp.errors import UserError
from ftp.types import ModelRef

from . import models

META_FILE = "ftp_model.json"  # the same name training.save_model writes
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def export_model(model: ModelRef, out_dir: Path, merge: bool) -> Path:
    """Write ``model`` to ``out_dir`` (which must not exist or be empty); returns ``out_dir``."""
    source = _check_source(model)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"--out {out_dir}: the folder exists and is not empty; choose a new one")
    meta = _read_meta(source)
    with _atomic_dir(out_dir) as tmp:
        if model.kind == "full":
            shutil.copytree(source, tmp, dirs_exist_ok=True)
            _write_readme(tmp, out_dir.name, model, meta, merged=False, full=True)
        elif merge:
            _merge(model, source, meta, tmp)
            _write_readme(tmp, out_dir.name, model, meta, merged=True, full=True)
        else:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
            _write_readme(tmp, out_dir.name, model, meta, merged=False, full=False)
    return out_dir


def _check_source(model: ModelRef) -> Path:
    if model.kind not in ("adapter", "full"):
        raise UserError(f"cannot export a {model.kind} model ({model.describe()}); only adapter and full models "
                        "trained by the local backend can be exported")
    if model.path is None or not Path(model.path).is_dir():
        raise UserError(f"model folder {model.path} does not exist; was the run's model/ folder moved or deleted?")
    source = Path(model.path)
    if model.kind == "adapter":
        missing = [ADAPTER_CONFIG] if not (source / ADAPTER_CONFIG).exists() else []
        if not any((source / name).exists() for name in ADAPTER_WEIGHTS):
            missing.append(ADAPTER_WEIGHTS[0])
        if missing:
            raise UserError(f"{source}: adapter files missing ({', '.join(missing)}); the adapter is incomplete, "
                            "train again (ftp run ... --steps train)")
    elif not (source / "config.json").exists():
        raise UserError(f"{source}: config.json missing; the model folder is incomplete")
    return source


def _read_meta(source: Path) -> dict[str, Any]:
    path = source / META_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable ({exc})") from None
    return data if isinstance(data, dict) else {}


@contextmanager
def _atomic_dir(out_dir: Path) -> Iterator[Path]:
    """A sibling temp folder that becomes ``out_dir`` only when everything was written."""
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{out_dir.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked before): rename cannot replace a folder on every OS
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _base_dir(model: ModelRef) -> Path:
    base = model.base
    if model_source(base).kind != "builtin" and not Path(base).is_dir():
        raise UserError(f"base model {base!r} is missing: --merge needs the base model the adapter was trained on; "
                        "put the folder back (or export without --merge)")
    return models.resolve(base)


def _merge(model: ModelRef, source: Path, meta: dict[str, Any], out: Path) -> None:
    """Base (float32 on CPU, so the merge loses nothing) + adapter, merged, saved in the base's dtype."""
    import torch
    from peft import PeftModel

    from .chat import chat_format
    from .modeling import Placement, load_model, quiet_libraries

    quiet_libraries()
    base_dir = _base_dir(model)
    base = load_model(base_dir, Placement("cpu", "float32"))
    merged = PeftModel.from_pretrained(base, str(source)).merge_and_unload()
    saved_dtype = _config_dtype(base_dir)
    if saved_dtype is not None and saved_dtype != torch.float32:
        merged = merged.to(saved_dtype)
    merged.save_pretrained(str(out), safe_serialization=True)

    tokenizer = _tokenizer(source if (source / TOKENIZER_FILES[0]).exists() else base_dir)
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = chat_format(tokenizer, meta.get("chat_template", "auto")).template
    tokenizer.save_pretrained(str(out))
    merged_meta = {**meta, "base_model": model.base, "merged": True, "merged_from": str(source)}
    (out / META_FILE).write_text(json.dumps(merged_meta, indent=2), encoding="utf-8")


def _tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def _config_dtype(base_dir: Path) -> Any:
    import torch

    try:
        config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = config.get("dtype") or config.get("torch_dtype")
    value = getattr(torch, str(name), None) if name else None
    return value if isinstance(value, torch.dtype) else None


def _write_readme(out: Path, name: str, model: ModelRef, meta: dict[str, Any], merged: bool, full: bool) -> None:
    base = meta.get("base_model") or model.base
    template = meta.get("chat_template", "tokenizer")
    lines = [f"# {name}", "", "Exported by `ftp export`.", ""]
    lines += [f"- base model: `{base}`", f"- training method: {meta.get('method', model.kind)}"]
    if model_source(model.base).builtin is not None:
        lines.append(f"- `{model.base}` is a model ftp ships; ftp converts it once into "
                     f"`{models.folder_of(model.base)}`")
    lines.append("")
    if full:
        what = "the adapter merged into the base model's weights" if merged else "a fully fine-tuned model"
        lines += [f"This folder is {what}: a plain transformers model, no PEFT needed.", "", "```python",
                  "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  "model = AutoModelForCausalLM.from_pretrained(DIR)",
                  "tokenizer = AutoTokenizer.from_pretrained(DIR)", "```", "",
                  "vLLM: `vllm serve DIR`", ""]
    else:
        lines += ["This folder is a PEFT LoRA adapter; load it on top of the base model:", "", "```python",
                  "from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f"BASE = {str(base)!r}  # the base model folder (or its Hub id)",
                  "model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), DIR)",
                  "tokenizer = AutoTokenizer.from_pretrained(DIR)", "```", "",
                  "vLLM: `vllm serve BASE --enable-lora --lora-modules name=DIR`", "",
                  "`ftp export --merge` writes a merged model instead, which needs no PEFT.", ""]
    lines += ["## Chat template", "",
              (f"The tokenizer here carries the chat template used in training ({template}). Format prompts with "
              "`tokenizer.apply_chat_template(messages, add_generation_prompt=True)`, not the base model's own "
              "template if it differs: the model learnt this one."), ""]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
