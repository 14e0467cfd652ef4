"""The base of every persisted value (immutable, unknown fields are a bug) and the small aliases."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


Severity = Literal["error", "warning", "info"]

Split = Literal["train", "validation", "test"]

Message = dict[str, Any]

Example = dict[str, Any]


class Value(BaseModel):
    """Base for persisted value objects: immutable, and unknown fields are a bug."""

    model_config = ConfigDict(frozen=True, extra="forbid")
