"""Where a base model comes from, parsed once for every backend and check.

``model.base`` is one of three things: a model ftp ships (``builtin:NAME``), a folder on this machine,
or an id only a service knows (``gpt-4o-mini-2024-07-18``, an ``azureml://`` asset, a hub id ftp
refuses to download). Backends ask this one parser instead of each testing string prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class ModelSource:
    text: str

    @property
    def builtin(self) -> str | None:
        """The built-in model's name (``builtin:gemma-3-270m`` -> ``gemma-3-270m``), else None."""
        return self.text[len(BUILTIN_PREFIX):] if self.text.startswith(BUILTIN_PREFIX) else None

    @property
    def kind(self) -> Literal["builtin", "path", "id"]:
        if self.builtin is not None:
            return "builtin"
        return "path" if self.text.startswith(("/", ".", "~")) or Path(self.text).is_dir() else "id"

    @property
    def on_this_machine(self) -> bool:
        """Built-in or a folder: a model a cloud service cannot be asked to fine-tune."""
        return self.kind != "id"


def model_source(text: str) -> ModelSource:
    return ModelSource(str(text))
