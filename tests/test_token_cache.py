"""The tokenisation cache as a memory-mapped Arrow file: exact round trip, views, reuse on the second run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_examples, write_jsonl

from ftp.backends.local import token_cache
from ftp.backends.local.chat import IGNORE, Encoded, chat_format
from ftp.backends.local.modeling import load_tokenizer
from ftp.backends.local.training import encode_file
from ftp.data.files import dataset_ref
from ftp.errors import UserError

pytest.importorskip("pyarrow")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FTP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def entries(n: int) -> list[tuple[int, Encoded]]:
    """Rows of every shape: empty, all masked, cut, long (several record batches with a small BATCH_ROWS)."""
    out = []
    for i in range(n):
        ids = list(range(i % 7 * 50, i % 7 * 50 + i % 13))
        labels = [IGNORE if j % 3 else t for j, t in enumerate(ids)]
        out.append((i * 2 + 1, Encoded(ids, labels, i % 5 == 0)))
    return out


def test_rows_round_trip_exactly(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    monkeypatch.setattr(token_cache, "BATCH_ROWS", 16)  # several record batches
    want = entries(100)
    token_cache.save("k", iter(want))  # a generator: written as it comes
    rows = token_cache.load("k")
    assert rows is not None and len(rows) == 100
    assert list(rows.entries()) == want
    assert rows[-1] == want[-1][1] and rows[10:13] == [e for _, e in want[10:13]]
    with pytest.raises(IndexError):
        rows[100]
    assert [p.suffix for p in (cache_dir / "tokenized").iterdir()] == [".arrow"]  # no temp file left


def test_a_selection_is_a_view_with_its_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(token_cache, "BATCH_ROWS", 7)
    want = entries(30)
    token_cache.save("k", want)
    rows = token_cache.load("k")
    assert rows is not None
    keep = rows.trainable()
    assert keep.tolist() == [e.trained_tokens > 0 and not e.truncated for _, e in want]
    picked = rows.select([3, 1, 29])
    assert list(picked) == [want[3][1], want[1][1], want[29][1]] and picked.lines().tolist() == [7, 3, 59]
    assert list(picked.select([2])) == [want[29][1]]


def test_a_missing_or_foreign_entry_is_a_miss(cache_dir: Path) -> None:
    assert token_cache.load("absent") is None
    (cache_dir / "tokenized").mkdir(parents=True)
    (cache_dir / "tokenized" / "bad.arrow").write_bytes(b"not arrow at all")
    assert token_cache.load("bad") is None


def test_the_datasets_library_opens_an_entry(cache_dir: Path) -> None:
    datasets = pytest.importorskip("datasets")
    token_cache.save("k", entries(5))
    ds = datasets.Dataset.from_file(str(cache_dir / "tokenized" / "k.arrow"))
    assert ds.num_rows == 5 and ds[3]["input_ids"] == entries(5)[3][1].input_ids


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def event(self, kind: str, **fields: Any) -> None:
        self.seen.append((kind, fields))


class Ctx:
    def __init__(self) -> None:
        self.reporter = Events()


def test_training_reads_the_cache_on_the_second_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    fmt = chat_format(load_tokenizer(tiny_model_dir), "tokenizer")
    ref = dataset_ref(write_jsonl(tmp_path / "d.jsonl", make_examples(40)), "train")
    first_ctx, second_ctx = Ctx(), Ctx()
    first = encode_file(fmt, ref, tiny_model_dir, 64, first_ctx, "train", "assistant", "error")  # type: ignore[arg-type]
    second = encode_file(fmt, ref, tiny_model_dir, 64, second_ctx, "train", "assistant", "error")  # type: ignore[arg-type]
    assert [k for k, _ in first_ctx.reporter.seen] == [] and [k for k, _ in second_ctx.reporter.seen] == ["token_cache"]
    assert len(first) == 40 and list(first) == list(second)
    assert first[0].trained_tokens > 0


def test_examples_that_train_badly_are_named_by_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    fmt = chat_format(load_tokenizer(tiny_model_dir), "tokenizer")
    rows = make_examples(10)
    rows[3]["messages"][0]["content"] = "long " * 200
    ref = dataset_ref(write_jsonl(tmp_path / "d.jsonl", rows), "train")
    with pytest.raises(UserError, match=r"1 example\(s\) would train badly \(line 4: longer than 64 tokens\)"):
        encode_file(fmt, ref, tiny_model_dir, 64, Ctx(), "train", "assistant", "error")  # type: ignore[arg-type]
    kept = encode_file(fmt, ref, tiny_model_dir, 64, Ctx(), "train", "assistant", "drop")  # type: ignore[arg-type]
    assert len(kept) == 9
