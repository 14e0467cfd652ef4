"""Deterministic, group-aware train/validation/test split.

Examples whose prompts are equal after normalisation form one group and land in the same split,
so the test split measures generalisation rather than memory.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftp import hookimpl
from ftp.data.files import dataset_ref
from ftp.data.sources import is_table, iter_examples, table_lines
from ftp.run.store import atomic_write
from ftp.types import DatasetRef, SplitResult

_SPACE = re.compile(r"\s+")


def prompt_key(example: Any) -> str:
    """Normalised text of everything before the answer: the unit of duplication."""
    messages = example.get("messages") if isinstance(example, dict) else None
    if not isinstance(messages, list):  # only without validation (--steps split): it has no prompt to group by
        messages = []
    parts = [f"{m.get('role')}:{_SPACE.sub(' ', str(m.get('content'))).strip().lower()}"
             for m in messages[:-1] if isinstance(m, dict)]
    text = "\n".join(parts)
    return hashlib.sha256(text.encode()).hexdigest()


def plan(keys: list[str], ratios: tuple[float, float, float], seed: int) -> list[str]:
    """The split name for each example, in input order."""
    n = len(keys)
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    order = list(groups)
    random.Random(seed).shuffle(order)
    want_test = max(1, round(n * ratios[2])) if n >= 3 else 0
    want_val = max(1, round(n * ratios[1])) if n >= 3 else 0
    names = ["train"] * n
    filled = {"test": 0, "validation": 0}
    largest = max(1, min(want_test, want_val) // 2)  # a huge cluster would swamp a small split: it trains
    for key in order:
        target = "test" if filled["test"] < want_test else "validation" if filled["validation"] < want_val else None
        if target is None:
            break
        if len(groups[key]) > largest:
            continue
        for i in groups[key]:
            names[i] = target
        filled[target] += len(groups[key])
    return names


def _lines(dataset: DatasetRef) -> Iterator[bytes]:
    """Non-blank lines (a table's rows as JSON lines), streamed (the data may not fit in memory)."""
    if is_table(dataset.path):
        yield from (line + b"\n" for _, line, _ in table_lines(dataset))
        return
    with dataset.path.open("rb") as fh:
        for number, line in enumerate(fh):
            if number == 0:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if line.strip():
                yield line.rstrip(b"\r\n") + b"\n"


def group_keys(dataset: DatasetRef) -> list[str]:
    """One key per example; exact and near-duplicate inputs (MinHash, as the duplicates check) share one."""
    from ftp.data.checks import Record
    from ftp.plugins.duplicates import DuplicatesCheck, DuplicatesSettings

    near = DuplicatesCheck(DuplicatesSettings())
    keys = []
    for position, (_, example) in enumerate(iter_examples(dataset)):  # strict: a bad line is a UserError
        keys.append(prompt_key(example))
        near.observe(Record(file=str(dataset.path), split=None, line=position, raw=b"", example=example))
    for positions in near.near_line_clusters():
        for position in positions[1:]:
            keys[position] = keys[positions[0]]
    return keys


@hookimpl
def ftp_split(dataset: DatasetRef, ratios: tuple[float, float, float], seed: int, out_dir: Path) -> SplitResult:
    names = plan(group_keys(dataset), ratios, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = ("train", "validation", "test")
    temps = {p: out_dir / f".{p}.jsonl.tmp" for p in parts}
    handles = {p: temps[p].open("wb") for p in parts}
    try:
        for line, name in zip(_lines(dataset), names):
            handles[name].write(line)
    finally:
        for fh in handles.values():
            fh.close()
    refs: dict[str, DatasetRef] = {}
    for part in parts:
        temps[part].replace(out_dir / f"{part}.jsonl")
        refs[part] = dataset_ref(out_dir / f"{part}.jsonl", part)  # type: ignore[arg-type]
    manifest = out_dir / "manifest.json"
    atomic_write(manifest, json.dumps({
        "source": {"path": str(dataset.path), "sha256": dataset.sha256, "examples": dataset.examples},
        "ratios": list(ratios), "seed": seed,
        "files": {p: {"path": r.path.name, "sha256": r.sha256, "examples": r.examples} for p, r in refs.items()},
    }, indent=2))
    return SplitResult(train=refs["train"], validation=refs["validation"], test=refs["test"], manifest=manifest)
