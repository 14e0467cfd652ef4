"""Reading and writing chat JSONL files, and pinning them by content hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ftp.errors import UserError
from ftp.types import DatasetRef, Split

BOM = b"\xef\xbb\xbf"


def dataset_ref(path: Path, split: Split | None = None, columns: dict[str, str] | None = None) -> DatasetRef:
    """Hash and count a file in one streaming pass (data files can be gigabytes); tables through ``columns``."""
    from ftp.data.table_files import is_table, mapping_for_jsonl, table_ref

    if is_table(path):
        return table_ref(path, split, columns)
    if columns:
        raise mapping_for_jsonl(path)
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
    """(line number, parsed object) for every non-blank line.

    Validation has vouched for the format, but a step can run without it (``--steps split``) or on a
    file that changed since: a line it would have refused is a UserError naming the file and line,
    parsed by the same strict parser, never a traceback from deep in a trainer.
    """
    with _open(path) as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1:
                raw = raw.removeprefix(BOM)
            if raw.strip():
                yield number, parse_line(path, number, raw)


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot read data file: {exc.strerror or exc}") from None


def parse_line(path: Path, number: int, raw: bytes) -> Any:
    """One line of a data file, decoded and strictly parsed; what validation would refuse is a UserError."""
    from ftp.json_safe import JsonLineError, loads_line

    try:
        return loads_line(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}:{number}: not valid UTF-8 (invalid byte at {exc.start}) [not-utf8]") from None
    except JsonLineError as exc:
        what = "not valid JSON: " if exc.code == "invalid-json" else ""
        raise UserError(f"{path}:{number}: {what}{exc.detail} [{exc.code}]; `ftp data check {path}` lists every "
                        "problem") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [obj for _, obj in iter_jsonl(path)]


def message_text(content: Any) -> str:
    """A message's content as one string, the list-of-parts form joined."""
    if isinstance(content, list):  # parts that are not text (images) or malformed have no text to give
        return "".join(t for part in content if isinstance(part, dict) and isinstance(t := part.get("text"), str))
    return content if isinstance(content, str) else str(content or "")


def reference_answer(example: dict[str, Any]) -> str:
    """The text the model should produce for an example: its final assistant message."""
    return message_text(example["messages"][-1].get("content"))
