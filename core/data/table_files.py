"""Tables as data files: which paths are tables (Parquet, CSV, a ``save_to_disk`` folder), what pins
their content, and their rows as the scanner's records. Below ``files`` and ``scan``, which dispatch
here, and ``sources``, which reads every kind; it imports none of them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from ftp.data.checks import Record, parse_record
from ftp.errors import UserError
from ftp.types import DatasetRef, Split

TABLE_SUFFIXES = (".parquet", ".csv")
# formats someone may reasonably try; anything else is read as JSONL, as it always was
UNSUPPORTED = (".tsv", ".xlsx", ".xls", ".feather", ".arrow", ".orc", ".avro", ".pkl", ".pickle", ".h5", ".hdf5",
               ".npy", ".npz", ".parq", ".pq", ".zip", ".tar", ".gz", ".bz2", ".xz", ".zst")
KINDS_HINT = "use chat JSONL (.jsonl), Parquet (.parquet), CSV (.csv) or a folder written by datasets' save_to_disk"


def is_table(path: Path) -> bool:
    """Whether ``path`` is read as a table; an unsupported extension is a UserError here, before any work."""
    suffix = path.suffix.lower()
    if suffix in UNSUPPORTED:
        raise UserError(f"{path}: unsupported data file type '{suffix}'; {KINDS_HINT}")
    return path.is_dir() or suffix in TABLE_SUFFIXES


def mapping_for_jsonl(path: Path) -> UserError:
    """``data.columns`` given where only chat JSONL is read: the one error both entry points raise."""
    return UserError(f"data.columns: {path} is chat JSONL, whose lines are already chat examples; data.columns "
                     "maps the columns of a Parquet, CSV or save_to_disk table: remove it")


def table_ref(path: Path, split: Split | None, columns: dict[str, str] | None) -> DatasetRef:
    """Hash and count a table, checking its columns against the mapping first (the error a user can act on)."""
    from ftp.data.tables import needed_columns, open_table

    table = open_table(path)
    needed_columns(table, columns)
    digest = _folder_digest(path) if path.is_dir() else _file_digest(path)
    if columns:  # the same table read through another mapping is other examples
        digest = hashlib.sha256(f"{digest}\n{json.dumps(columns, sort_keys=True)}".encode()).hexdigest()
    return DatasetRef(path=path, sha256=digest, examples=table.num_rows(), split=split, columns=columns or None)


def _file_digest(path: Path) -> str:
    """The file's own sha256 (what ``sha256sum`` prints, when no mapping is mixed in)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise UserError(f"{path}: cannot read data file: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _folder_digest(path: Path) -> str:
    """Every file of the folder by relative name and content: a re-saved dataset with new rows hashes apart."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{_file_digest(file)}\n".encode())
    return digest.hexdigest()


def records(ref: DatasetRef) -> Iterator[Record]:
    """A table's rows as the scanner's Records (a row that makes no example carries its problem)."""
    from ftp.data.tables import open_table, rows

    file = str(ref.path)
    for row in rows(open_table(ref.path), ref.columns):
        record = Record(file=file, split=ref.split, line=row.number, raw=row.line)
        if row.problem:
            record.problem, record.detail = row.problem, row.detail
        else:
            parse_record(record)
        yield record
