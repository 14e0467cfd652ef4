"""Reading a data file's lines as records: the whole file, or one byte range of it.

Lines are read in binary with a length cap, so a 2 GB file without a newline or a 50 MB line never
lands in memory whole; each line is decoded and parsed once for all checks, by ``json_safe``: a hostile
line (nested 100,000 deep, a 5,000-digit number, NaN, a repeated key, a lone surrogate) is a ``problem``
on that line, never an exception. A range (``ftp.data.parallel`` cuts them at line boundaries) reads
exactly the records the whole file's pass reads there: the BOM belongs to line 1, and a line over the
cap is skipped the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from ftp.data.checks import Record, parse_record
from ftp.data.files import BOM
from ftp.types import DatasetRef, Split

DEFAULT_MAX_LINE_BYTES = 16 * 2**20


def read_records(ref: DatasetRef, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, start: int = 0,
                 end: int | None = None, first_line: int = 1) -> Iterator[Record]:
    """Every line of a file, or of the byte range ``[start, end)`` whose first line is ``first_line``
    (a range starts and ends at line boundaries: ``ftp.data.parallel`` cuts them)."""
    from ftp.data.table_files import is_table, records

    if is_table(ref.path):  # a table's rows, each as the JSON line of its chat example
        yield from records(ref)
        return
    with ref.path.open("rb") as fh:
        if start:
            fh.seek(start)
        yield from _lines(fh, str(ref.path), ref.split, max_line_bytes, first_line,
                          (1 << 62) if end is None else end - start)


def _lines(fh: BinaryIO, file: str, split: Split | None, max_line_bytes: int, first_line: int,
           budget: int) -> Iterator[Record]:
    number = first_line - 1
    cap = max_line_bytes + 1
    while budget > 0:
        chunk = fh.readline(cap if cap < budget else budget)
        if not chunk:
            return
        budget -= len(chunk)
        number += 1
        too_long = len(chunk) > max_line_bytes and not chunk.endswith(b"\n")
        size = len(chunk)
        while too_long:  # skip the rest of the line without holding it
            rest = fh.readline(1 << 20)
            size += len(rest)
            budget -= len(rest)
            if not rest or rest.endswith(b"\n"):
                chunk = chunk[:256] + (rest[-2:] if rest.endswith(b"\r\n") else rest[-1:] if rest else b"")
                break
        newline = b"\r\n" if chunk.endswith(b"\r\n") else b"\n" if chunk.endswith(b"\n") else b""
        raw = chunk[: len(chunk) - len(newline)]
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM):]
        record = Record(file, split, number, raw, newline=newline)
        if too_long:
            record.problem, record.detail = "line-too-long", f"{size / 2**20:.1f} MiB"
        elif raw and not raw.isspace():  # (what raw.strip() would say, without a copy of the line)
            parse_record(record)
        yield record
