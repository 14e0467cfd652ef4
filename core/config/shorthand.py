"""The one-word forms a check's section may take in a pipeline file (``validate.pii: off``)."""

from __future__ import annotations

from typing import Any


def expand_shorthand(value: Any) -> Any:
    """``error``/``warning``/``info`` set the severity; ``off`` (YAML false) turns the check off."""
    if value is False or value == "off":
        return {"enabled": False}
    if value is True or value == "on":
        return {}
    if value in ("error", "warning", "info"):
        return {"severity": value}
    return value
