"""Every kind of data input, read one way: chat JSONL, Parquet, CSV and ``datasets.save_to_disk`` folders.

Users of the Hugging Face stack keep their data in tables. Each row of a table becomes one chat
example (through ``data.columns``, or a ``messages`` column) written as a JSON line, so the streaming
scan, every data check, the split and the trainers see one format, and findings name the row
(``train.parquet:row 17``). The split step writes chat JSONL, so what follows it (training, the
Azure upload, evaluation) reads JSONL whatever the input was.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftp.errors import UserError
from ftp.types import DataBundle, DatasetRef, Split

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


def bundle(train: Path, validation: Path | None, test: Path | None,
           columns: dict[str, str] | None = None) -> DataBundle:
    """The files of a pipeline or of ``ftp data check``, hashed and counted; the mapping goes to the tables."""
    from ftp.data.files import dataset_ref

    paths = [p for p in (train, validation, test) if p is not None]
    if columns and not any(is_table(p) for p in paths):
        raise UserError(f"data.columns: {train} is chat JSONL, whose lines are already chat examples; data.columns "
                        "maps the columns of a Parquet, CSV or save_to_disk table: remove it")

    def ref(path: Path | None, split: Split) -> DatasetRef | None:
        return dataset_ref(path, split, columns if is_table(path) else None) if path is not None else None

    out = ref(train, "train")
    assert out is not None
    return DataBundle(train=out, validation=ref(validation, "validation"), test=ref(test, "test"))


def records(ref: DatasetRef) -> Iterator[Any]:
    """A table's rows as the scanner's Records (a row that makes no example carries its problem)."""
    from ftp.data.checks import Record
    from ftp.data.scan import parse_record
    from ftp.data.tables import open_table, rows

    file = str(ref.path)
    for row in rows(open_table(ref.path), ref.columns):
        record = Record(file=file, split=ref.split, line=row.number, raw=row.line)
        if row.problem:
            record.problem, record.detail = row.problem, row.detail
        else:
            parse_record(record)
        yield record


def iter_examples(ref: DatasetRef) -> Iterator[tuple[int, Any]]:
    """(line or row number, parsed example) for every example; what validation would refuse is a UserError."""
    from ftp.data.files import iter_jsonl

    if not is_table(ref.path):
        yield from iter_jsonl(ref.path)
        return
    for number, _, example in table_lines(ref):
        yield number, example


def table_lines(ref: DatasetRef) -> Iterator[tuple[int, bytes, Any]]:
    """(row number, the row as a JSON line, parsed) for every row, strictly: a row that makes no example stops."""
    from ftp.data.files import parse_line
    from ftp.data.tables import open_table, rows

    for row in rows(open_table(ref.path), ref.columns):
        if row.problem:
            raise UserError(f"{ref.path}:row {row.number}: {row.detail} [{row.problem}]; `ftp data check "
                            f"{ref.path}` lists every problem")
        yield row.number, row.line, parse_line(ref.path, row.number, row.line)  # refused as a JSONL line would be


def read_examples(ref: DatasetRef) -> list[Any]:
    return [example for _, example in iter_examples(ref)]


def to_jsonl(ref: DatasetRef, out_dir: Path) -> DatasetRef:
    """A table as chat JSONL in ``out_dir`` (the split step's output), or a JSONL ref as it is.

    Written atomically and streamed: the steps after split (training, the Azure upload, evaluation)
    then read one format, and Azure's fine-tuning service takes JSONL only.
    """
    from ftp.data.files import dataset_ref

    if not is_table(ref.path):
        return ref
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{ref.split or ref.path.stem}.jsonl"
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            for _, line, _ in table_lines(ref):
                fh.write(line + b"\n")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dataset_ref(target, ref.split)
