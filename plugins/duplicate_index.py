"""The duplicates check's memory: per example a 64-bit key of its normalised input, its line, its
file and (for near duplicates) a MinHash signature, in arrays that grow by doubling; and the clusters
they make. numpy lives here and in minhash.py only, imported when the check runs, so loading the
plugins (every ftp command) does not pay for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .minhash import (BATCH, BATCH_CHARS, NUM_PERM, UnionFind, input_text, near_pairs, segments, sketch,
                      stable_argsort)


class InputIndex:
    def __init__(self, near: bool, threshold: float, capacity: int = 0) -> None:
        self.near, self.threshold = near, threshold
        self.reserve = max(capacity, BATCH)  # the arrays' size once the first batch comes
        self.n = 0
        self.empty = 0  # inputs with nothing left to compare once normalised
        self.keys = np.zeros(0, dtype=np.uint64)
        self.lines = np.zeros(0, dtype=np.uint32)
        self.file = np.zeros(0, dtype=np.uint16)
        self.sigs = np.zeros((0, NUM_PERM), dtype=np.uint16)
        self._texts: list[str] = []
        self._pending_lines: list[int] = []
        self._chars = 0
        self._file_index = 0

    def begin_file(self, index: int) -> None:
        self.flush()
        self._file_index = index

    def observe(self, example: Any, line: int) -> None:
        text = input_text(example)
        if text is None:
            return
        self._texts.append(text)
        self._pending_lines.append(line)
        self._chars += len(text)
        if self._chars >= BATCH_CHARS or len(self._texts) >= BATCH:
            self.flush()

    def part(self) -> "InputIndex":
        """An empty index for one range of the current file (it grows as it fills)."""
        part = InputIndex(self.near, self.threshold)
        part._file_index = self._file_index
        return part

    def close_part(self) -> None:
        """Sketch what is buffered, and keep only the filled rows (they are pickled back)."""
        self.flush()
        n = self.n
        self.keys, self.lines, self.file, self.sigs = self.keys[:n], self.lines[:n], self.file[:n], self.sigs[:n]

    def absorb(self, part: "InputIndex") -> None:
        """Append a part's rows, which follow this index's in file order."""
        self.flush()
        k = part.n
        if self.n + k > len(self.keys):
            self._grow(self.n + k)
        sl = slice(self.n, self.n + k)
        self.keys[sl], self.lines[sl], self.file[sl] = part.keys[:k], part.lines[:k], part.file[:k]
        if self.near:
            self.sigs[sl] = part.sigs[:k]
        self.n += k
        self.empty += part.empty

    def _grow(self, need: int) -> None:
        size = max(need, 2 * len(self.keys), self.reserve)
        for attr in ("keys", "lines", "file"):
            old = getattr(self, attr)
            new = np.zeros(size, dtype=old.dtype)
            new[:self.n] = old[:self.n]
            setattr(self, attr, new)
        if self.near:
            sigs = np.zeros((size, NUM_PERM), dtype=np.uint16)
            sigs[:self.n] = self.sigs[:self.n]
            self.sigs = sigs

    def flush(self) -> None:
        """Sketch the buffered inputs (a batch at a time: vectorised) into the arrays."""
        if not self._texts:
            return
        keys, sigs, counts = sketch(self._texts)
        ok = counts > 0
        self.empty += int((~ok).sum())
        lines = np.asarray(self._pending_lines, dtype=np.uint32)[ok]
        k = len(lines)
        if self.n + k > len(self.keys):
            self._grow(self.n + k)
        sl = slice(self.n, self.n + k)
        self.keys[sl], self.lines[sl], self.file[sl] = keys[ok], lines, self._file_index
        if self.near:
            self.sigs[sl] = sigs[ok]
        self.n += k
        self._texts, self._pending_lines, self._chars = [], [], 0

    def clusters(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Exact clusters and near-duplicate clusters, as sorted arrays of example indices."""
        self.flush()
        n = self.n
        keys = self.keys[:n]
        order = stable_argsort(keys)
        ks = keys[order]
        new = np.concatenate(([True], ks[1:] != ks[:-1])) if n else np.zeros(0, dtype=bool)
        run_start = np.flatnonzero(new)
        sizes = np.diff(np.append(run_start, n))
        rep = np.empty(n, dtype=np.int64)  # first example with the same key
        rep[order] = np.repeat(order[run_start], sizes)
        exact = [np.sort(order[s:s + z]) for s, z in zip(run_start[sizes > 1], sizes[sizes > 1])]
        near: list[np.ndarray] = []
        if self.near and n > 1:
            uniq = np.sort(order[run_start])  # one example per distinct input
            pairs = near_pairs(self.sigs, self.threshold, uniq)
            if len(pairs):
                uf = UnionFind()
                for a, b in uniq[pairs].tolist():
                    uf.union(a, b)
                nodes = np.fromiter(uf.parent.keys(), dtype=np.int64, count=len(uf.parent))
                root = np.arange(n, dtype=np.int64)
                root[nodes] = [uf.find(int(x)) for x in nodes]
                comp = root[rep]
                involved = np.flatnonzero(np.isin(comp, root[nodes]))
                corder = involved[np.argsort(comp[involved], kind="stable")]
                _, starts = segments(comp[corder])
                near = [np.sort(g) for g in np.split(corder, starts[1:]) if len(g) > 1]
        return exact, near

    def repeats(self, clusters: list[np.ndarray]) -> int:
        """Examples beyond the first of each cluster (near clusters contain exact ones: counted once)."""
        dup = np.zeros(self.n, dtype=bool)
        for c in clusters:
            dup[c[1:]] = True
        return int(dup.sum())
