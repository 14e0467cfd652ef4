"""Reading and writing chat JSONL files, and pinning them by content hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftp.errors import UserError
from ftp.types import DatasetRef, Split


def dataset_ref(path: Path, split: Split | None = None) -> DatasetRef:
    """Hash and count a file in one streaming pass (data files can be gigabytes)."""
    digest = hashlib.sha256()
    count, open_line = 0, False  # open_line: the current, unfinished line has content
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):  # chunks, not lines: a line may be gigabytes
                digest.update(chunk)
                *done, rest = chunk.split(b"\n")
                for part in done:
                    count += bool(open_line or part.strip())
                    open_line = False
                open_line = open_line or bool(rest.strip())
        count += open_line
    except OSError as exc:
        raise UserError(f"{path}: cannot read data file: {exc.strerror or exc}") from None
    return DatasetRef(path=path, sha256=digest.hexdigest(), examples=count, split=split)


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) for every non-blank line; validation has vouched for the format."""
    with path.open("r", encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}:{number}: not valid JSON: {exc.msg}") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [obj for _, obj in iter_jsonl(path)]


def message_text(content: Any) -> str:
    """A message's content as one string, the list-of-parts form joined."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def reference_answer(example: dict[str, Any]) -> str:
    """The text the model should produce for an example: its final assistant message."""
    return message_text(example["messages"][-1].get("content"))
