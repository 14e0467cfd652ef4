"""Every kind of data input, read one way: chat JSONL, Parquet, CSV and ``datasets.save_to_disk`` folders.

Users of the Hugging Face stack keep their data in tables. Each row of a table becomes one chat
example (through ``data.columns``, or a ``messages`` column) written as a JSON line, so the streaming
scan, every data check, the split and the trainers see one format, and findings name the row
(``train.parquet:row 17``). The split step writes chat JSONL, so what follows it (training, the
Azure upload, evaluation) reads JSONL whatever the input was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftp.data.table_files import is_table, mapping_for_jsonl
from ftp.errors import UserError
from ftp.types import DataBundle, DatasetRef, Split


def bundle(train: Path, validation: Path | None, test: Path | None,
           columns: dict[str, str] | None = None) -> DataBundle:
    """The files of a pipeline or of ``ftp data check``, hashed and counted; the mapping goes to the tables."""
    from ftp.data.files import dataset_ref

    paths = [p for p in (train, validation, test) if p is not None]
    if columns and not any(is_table(p) for p in paths):
        raise mapping_for_jsonl(train)

    def ref(path: Path | None, split: Split) -> DatasetRef | None:
        return dataset_ref(path, split, columns if is_table(path) else None) if path is not None else None

    out = ref(train, "train")
    assert out is not None
    return DataBundle(train=out, validation=ref(validation, "validation"), test=ref(test, "test"))


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
    from ftp.run.store import atomic_path

    if not is_table(ref.path):
        return ref
    target = out_dir / f"{ref.split or ref.path.stem}.jsonl"
    with atomic_path(target) as tmp, tmp.open("wb") as fh:
        for _, line, _ in table_lines(ref):
            fh.write(line + b"\n")
    return dataset_ref(target, ref.split)
