"""A cache of tokenised training data, so the second run of the same pipeline skips tokenisation.

The key covers everything that changes the tokens or the mask: the data's bytes, the tokenizer's
files, the chat template, the maximum length and the loss setting. Entries live under
``$FTP_CACHE_DIR/tokenized`` (``~/.cache/ftp``) and are written atomically.

An entry is an Arrow IPC stream file (the format of ``datasets``' own cache files: ``datasets.Dataset.
from_file`` opens one), written a batch at a time while tokenising and read back memory-mapped: a
million examples' token ids stay in the page cache, not in Python lists, and training makes a row into
an ``Encoded`` only when a micro-batch takes it. pyarrow and numpy are imported here, when training
runs, never by ``ftp --help``.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from ftp.run.store import atomic_path

from .chat import IGNORE, ChatFormat, Encoded
from .models import cache_root

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
Entry = tuple[int, Encoded]  # (line number, encoding)
BATCH_ROWS = 8192


def cache_key(data_sha256: str, tokenizer_dir: Path, fmt: ChatFormat, max_length: int, loss_on: str) -> str:
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).exists():
            digest.update(name.encode() + hashlib.sha256((tokenizer_dir / name).read_bytes()).digest())
    digest.update(json.dumps([data_sha256, fmt.template, max_length, loss_on]).encode())
    return digest.hexdigest()


def _path(key: str) -> Path:
    return cache_root() / "tokenized" / f"{key}.arrow"


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([("line", pa.int64()), ("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int32())),
                      ("truncated", pa.bool_()), ("trained_tokens", pa.int32())])


class Rows(Sequence[Encoded]):
    """Rows of a memory-mapped cache entry (all of them, or those at ``index``), each an ``Encoded`` on demand.

    Indexing is O(log batches): numpy views of each batch's offsets and values, no copy of the data.
    """

    def __init__(self, columns: list[dict[str, Any]], index: Any = None) -> None:
        self._columns = columns  # per record batch: numpy views of line, offsets, ids, labels, truncated, trained
        self._starts = [0]
        for c in columns:
            self._starts.append(self._starts[-1] + len(c["line"]))
        self._index = index

    def __len__(self) -> int:
        return self._starts[-1] if self._index is None else len(self._index)

    @overload
    def __getitem__(self, i: int) -> Encoded: ...

    @overload
    def __getitem__(self, i: slice) -> list[Encoded]: ...

    def __getitem__(self, i: int | slice) -> Encoded | list[Encoded]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        row = i if self._index is None else int(self._index[i])
        b = bisect_right(self._starts, row) - 1
        c, k = self._columns[b], row - self._starts[b]
        lo, hi = int(c["offsets"][k]), int(c["offsets"][k + 1])
        return Encoded(c["ids"][lo:hi].tolist(), c["labels"][lo:hi].tolist(), bool(c["truncated"][k]))

    def _column(self, name: str) -> Any:
        import numpy as np

        whole = np.concatenate([c[name] for c in self._columns]) if self._columns else np.zeros(0, np.int64)
        return whole if self._index is None else whole[self._index]

    def lines(self) -> Any:
        """The line (or row) number of each row, as a numpy array."""
        return self._column("line")

    def trainable(self) -> Any:
        """A numpy mask: rows with an answer token to train on that were not cut at the maximum length."""
        return (self._column("trained_tokens") > 0) & ~self._column("truncated")

    def select(self, index: Any) -> "Rows":
        """The rows at ``index`` (positions in this view), sharing the mapped data."""
        import numpy as np

        index = np.asarray(index, dtype=np.int64)
        return Rows(self._columns, index if self._index is None else self._index[index])

    def entries(self) -> Iterator[Entry]:
        for n, i in zip(self.lines().tolist(), range(len(self))):
            yield int(n), self[i]


def _views(batch: Any) -> dict[str, Any]:
    """numpy views into one record batch's buffers (zero-copy from the memory map)."""
    ids, labels = batch.column(1), batch.column(2)
    return {"line": batch.column(0).to_numpy(), "offsets": ids.offsets.to_numpy(), "ids": ids.values.to_numpy(),
            "labels": labels.values.to_numpy(), "truncated": batch.column(3).to_numpy(zero_copy_only=False),
            "trained_tokens": batch.column(4).to_numpy()}


def load(key: str) -> Rows | None:
    """The cached rows, memory-mapped, or None when there is no (readable) entry."""
    import pyarrow as pa

    try:
        source = pa.memory_map(str(_path(key)), "r")
        batches = list(pa.ipc.open_stream(source))
    except (OSError, pa.ArrowInvalid):
        return None
    if batches and batches[0].schema != _schema():
        return None
    return Rows([_views(b) for b in batches if b.num_rows])


def save(key: str, entries: Iterable[Entry]) -> None:
    """Write entries as they come, a batch at a time (memory stays at one batch), then move into place."""
    import pyarrow as pa

    schema = _schema()
    with atomic_path(_path(key)) as tmp, pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in _batches(entries):
            writer.write_batch(pa.record_batch(batch, schema=schema))


def _batches(entries: Iterable[Entry]) -> Iterator[list[list[Any]]]:
    cols: list[list[Any]] = [[], [], [], [], []]
    for n, e in entries:
        for col, value in zip(cols, (n, e.input_ids, e.labels, e.truncated,
                                     sum(label != IGNORE for label in e.labels))):
            col.append(value)
        if len(cols[0]) >= BATCH_ROWS:
            yield cols
            cols = [[], [], [], [], []]
    if cols[0]:
        yield cols
