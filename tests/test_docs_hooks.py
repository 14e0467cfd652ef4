"""Every hook is documented (datasette's pattern): adding a hookspec without docs fails here."""

from __future__ import annotations

import re
from pathlib import Path

from ftp import hookspecs

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugin-hooks.md"


def specs() -> set[str]:
    return {name for name in dir(hookspecs) if name.startswith("ftp_") and callable(getattr(hookspecs, name))}


def headings() -> set[str]:
    return set(re.findall(r"^## (ftp_\w+)\s*$", DOC.read_text(encoding="utf-8"), flags=re.M))


def test_every_hook_has_a_section() -> None:
    assert specs() - headings() == set()


def test_every_section_is_a_real_hook() -> None:
    assert headings() - specs() == set()


def test_every_section_has_an_example() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in specs():
        body = text.split(f"## {name}", 1)[1].split("\n## ", 1)[0]
        assert "@hookimpl" in body and f"def {name}(" in body, name
