"""Tables as chat examples: Parquet, CSV and ``datasets.save_to_disk`` folders, read in batches.

A table is read a batch of rows at a time (pyarrow), so a file of millions of rows never sits in
memory whole. Each row becomes one chat example, written as a JSON line, so the same strict parser
and every data check see it exactly as they see a line of chat JSONL. pyarrow and datasets are
imported here, inside the functions that need them: ``ftp --help`` and Azure-only users never load them.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftp.errors import UserError

BATCH_ROWS = 4096
MESSAGES = "messages"


@dataclass(slots=True)
class Row:
    """One table row as a chat example: the JSON line, or why there is none (``problem``, ``detail``)."""

    number: int  # 1-based: the first data row is row 1 (in a CSV, the line after the header)
    line: bytes = b""
    problem: str | None = None
    detail: str = ""


def _pyarrow(path: Path, what: str, module: str = "pyarrow") -> Any:
    """pyarrow (or one of its modules), or the one-line install hint an Azure-only user needs."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{path}: reading {what} needs pyarrow: pip install pyarrow (or pip install 'ftp[local]')"
                        ) from None


class Table:
    """The column names of a table and its rows in batches; one subclass per kind of input."""

    kind = "table"

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def names(self) -> list[str]:
        raise NotImplementedError

    def batches(self, columns: list[str]) -> Iterator[Any]:
        """pyarrow record batches holding ``columns``."""
        raise NotImplementedError

    def num_rows(self) -> int:
        return sum(b.num_rows for b in self.batches(self.names[:1]))


class ParquetTable(Table):
    kind = "Parquet"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        pq = _pyarrow(path, "Parquet", "pyarrow.parquet")
        try:
            self.file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...: any means the file is not readable
            raise UserError(f"{path}: not a readable Parquet file: {exc}") from None

    @property
    def names(self) -> list[str]:
        return list(self.file.schema_arrow.names)

    def batches(self, columns: list[str]) -> Iterator[Any]:
        return iter(self.file.iter_batches(batch_size=BATCH_ROWS, columns=columns))

    def num_rows(self) -> int:
        return int(self.file.metadata.num_rows)


class CsvTable(Table):
    """Every column read as text (no type guessing that turns an answer "007" into 7); an empty cell is null."""

    kind = "CSV"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.csv = _pyarrow(path, "CSV", "pyarrow.csv")
        try:
            self._names: list[str] = list(self.csv.open_csv(path).schema.names)
        except Exception as exc:
            raise UserError(f"{path}: not a readable CSV file: {exc}") from None

    @property
    def names(self) -> list[str]:
        return self._names

    def batches(self, columns: list[str]) -> Iterator[Any]:
        pa = _pyarrow(self.path, "CSV")
        convert = self.csv.ConvertOptions(column_types={n: pa.string() for n in self._names}, include_columns=columns,
                                          strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=False)
        try:
            yield from self.csv.open_csv(self.path, convert_options=convert)
        except pa.ArrowInvalid as exc:
            raise UserError(f"{self.path}: not a readable CSV file: {exc}") from None


class FolderTable(Table):
    """A folder written by ``datasets.Dataset.save_to_disk``: memory-mapped Arrow files, read in place."""

    kind = "save_to_disk folder"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        if (path / "dataset_dict.json").exists():
            splits = sorted(p.name for p in path.iterdir() if (p / "state.json").exists())
            raise UserError(f"{path}: a DatasetDict folder; name one of its splits, e.g. {path / (splits or ['train'])[0]}"
                            f" (it has: {', '.join(splits) or 'none'})")
        if not (path / "state.json").exists():
            raise UserError(f"{path}: a folder, but not one written by datasets' save_to_disk (no state.json); "
                            "data files are chat JSONL (.jsonl), Parquet (.parquet), CSV (.csv) or such a folder")
        try:
            import datasets
        except ImportError:
            raise UserError(f"{path}: reading a save_to_disk folder needs datasets: pip install datasets "
                            "(or pip install 'ftp[local]')") from None
        self.dataset = datasets.load_from_disk(str(path))

    @property
    def names(self) -> list[str]:
        return list(self.dataset.column_names)

    def batches(self, columns: list[str]) -> Iterator[Any]:
        table = self.dataset.data.table.select(columns)
        return iter(table.to_batches(max_chunksize=BATCH_ROWS))

    def num_rows(self) -> int:
        return int(self.dataset.num_rows)


def open_table(path: Path) -> Table:
    if path.is_dir():
        return FolderTable(path)
    return CsvTable(path) if path.suffix.lower() == ".csv" else ParquetTable(path)


def needed_columns(table: Table, mapping: dict[str, str] | None) -> list[str]:
    """The columns a mapping (or, without one, the ``messages`` column) reads; missing ones are a UserError."""
    names = table.names
    if mapping is None:
        if MESSAGES in names:
            return [MESSAGES]
        raise UserError(f"{table.path}: no '{MESSAGES}' column and no data.columns mapping; its columns are: "
                        f"{', '.join(names)}; map them, e.g. data.columns: {{prompt: {_guess(names, 0)}, "
                        f"completion: {_guess(names, 1)}}}")
    for key, column in mapping.items():
        if column not in names:
            near = difflib.get_close_matches(column, names, n=1, cutoff=0.5)
            mean = f" (did you mean '{near[0]}'?)" if near else ""
            raise UserError(f"data.columns.{key}: column '{column}' not in {table.path.name}; its columns are: "
                            f"{', '.join(names)}{mean}")
    return list(dict.fromkeys(mapping.values()))


def _guess(names: list[str], i: int) -> str:
    return names[i] if len(names) > i else "COLUMN"


def rows(table: Table, mapping: dict[str, str] | None) -> Iterator[Row]:
    """Every row of the table as a chat example, in order."""
    columns = needed_columns(table, mapping)
    number = 0
    for batch in table.batches(columns):
        values = {name: batch.column(batch.schema.get_field_index(name)).to_pylist() for name in columns}
        for i in range(batch.num_rows):
            number += 1
            yield to_row(number, {name: values[name][i] for name in columns}, mapping)


def to_row(number: int, cells: dict[str, Any], mapping: dict[str, str] | None) -> Row:
    if mapping is None:
        return _messages_row(number, cells[MESSAGES])
    messages: list[dict[str, str]] = []
    system = mapping.get("system")
    if system is not None and cells[system] not in (None, ""):  # an empty system cell: no system message
        messages.append({"role": "system", "content": _text(cells[system])})
    for key, role in (("prompt", "user"), ("completion", "assistant")):
        value = cells[mapping[key]]
        if value is None:
            return Row(number, problem="null-cell", detail=f"data.columns.{key}: column '{mapping[key]}' is empty "
                                                            "(null) in this row")
        messages.append({"role": role, "content": _text(value)})
    return Row(number, _dump({"messages": messages}))


def _messages_row(number: int, value: Any) -> Row:
    """A ``messages`` cell: a list of role/content structs, or (CSV) the list as JSON text."""
    if value is None:
        return Row(number, problem="null-cell", detail=f"column '{MESSAGES}' is empty (null) in this row")
    if isinstance(value, str):
        from ftp.json_safe import JsonLineError, loads_line

        try:
            value = loads_line(value)
        except JsonLineError as exc:
            return Row(number, problem=exc.code, detail=f"column '{MESSAGES}': {exc.detail}")
    if isinstance(value, list):  # Arrow structs give every message every key: drop the absent (null) ones
        value = [{k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m for m in value]
    return Row(number, _dump({"messages": value}))


def _text(value: Any) -> str:
    """A cell as message content: text as it is, anything else (numbers, lists, structs) as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _dump(example: dict[str, Any]) -> bytes:
    return json.dumps(example, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
