"""What a backend or plugin declares before anything runs: its settings, limits and pipeline sections."""

from __future__ import annotations


from pydantic import BaseModel, ConfigDict, Field

from ftp.values.base import Value


class BackendLimits(Value):
    """What a backend accepts, so the generic data checks judge files by it without naming backends."""

    max_tokens_per_example: int | None = None  # longer examples are truncated (or refused)
    min_examples: int | None = None  # fewer training examples are refused
    max_file_mb: float | None = None  # larger training files are refused
    price_per_1m_tokens: float | None = None  # a default training price for ``ftp data check``'s estimate


class BackendSpec(Value):
    """A backend a plugin provides; ``settings`` validates its ``backends.<name>`` keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    description: str
    settings: type[BaseModel] | None = None
    limits: BackendLimits = Field(default_factory=BackendLimits)


class ConfigSection(Value):
    """A pipeline-file section a plugin owns, e.g. ``validate.word_limit`` or ``my_plugin``."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    path: str
    model: type[BaseModel]
