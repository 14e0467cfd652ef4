"""Diversity: examples whose inputs are the same, or nearly the same, teach the model one thing many times.

The unit of comparison is the input: every non-assistant message before the final answer, normalised
(lower case, ASCII and common Unicode punctuation removed, whitespace collapsed).

- Exact duplicates: a 64-bit hash of the normalised input.
- Near duplicates: MinHash (64 hash functions) over word 3-shingles, or over byte 5-grams of the
  normalised text when the input has fewer than ``LONG_WORDS`` words (one changed word in a
  20-word input leaves only ~70% of its word 3-shingles, but ~85% of its 5-grams), then LSH banding
  (16 bands of 4 rows) to find candidate pairs, each verified by the Jaccard similarity the two
  signatures estimate, and union-find to make clusters.

Everything is vectorised over batches of ``BATCH`` inputs with numpy; per example only a 64-bit key,
a 64 x 16-bit signature, the line number and a file index are kept (about 140 bytes), never the text.
Results are deterministic: every hash and hash function derives from fixed constants.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ftp import hookimpl
from ftp.checks import CheckSettings, DataCheck, Record
from ftp.types import CheckContext, ConfigSection, DatasetRef, Finding, Severity
from pydantic import Field

from .minhash import BATCH, NUM_PERM, UnionFind, input_text, near_pairs, segments, sketch

SHOW_LINES = 10  # line numbers listed per cluster finding


class DuplicatesSettings(CheckSettings):
    near_duplicates: bool = Field(True, description="also find inputs that are nearly the same (MinHash + LSH)")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity of word shingles for a near duplicate")
    max_share: float = Field(0.05, ge=0, le=1, description="a larger share of duplicates is a warning, not info")


class DuplicatesCheck(DataCheck):
    name = "duplicates"
    Settings = DuplicatesSettings

    def __init__(self, settings: DuplicatesSettings, capacity: int = 0) -> None:
        super().__init__()
        self.settings = settings
        self.files: list[str] = []
        self.splits: list[str | None] = []
        capacity = max(capacity, BATCH)
        self._n = 0
        self._keys = np.zeros(capacity, dtype=np.uint64)
        self._lines = np.zeros(capacity, dtype=np.uint32)
        self._file = np.zeros(capacity, dtype=np.uint16)
        self._sigs = np.zeros((capacity if settings.near_duplicates else 0, NUM_PERM), dtype=np.uint16)
        self._texts: list[str] = []
        self._pending_lines: list[int] = []
        self._file_index = 0
        self._empty = 0
        self._summary: dict[str, Any] = {}

    def begin(self, ref: DatasetRef) -> None:
        self._flush()
        self.files.append(str(ref.path))
        self.splits.append(ref.split)
        self._file_index = len(self.files) - 1

    def observe(self, record: Record) -> None:
        text = input_text(record.example)
        if text is None:
            return
        self._texts.append(text)
        self._pending_lines.append(record.line)
        if len(self._texts) >= BATCH:
            self._flush()

    def _grow(self, need: int) -> None:
        size = max(need, 2 * len(self._keys))
        for attr in ("_keys", "_lines", "_file"):
            old = getattr(self, attr)
            new = np.zeros(size, dtype=old.dtype)
            new[:self._n] = old[:self._n]
            setattr(self, attr, new)
        if self.settings.near_duplicates:
            sigs = np.zeros((size, NUM_PERM), dtype=np.uint16)
            sigs[:self._n] = self._sigs[:self._n]
            self._sigs = sigs

    def _flush(self) -> None:
        if not self._texts:
            return
        keys, sigs, counts = sketch(self._texts)
        ok = counts > 0
        self._empty += int((~ok).sum())
        lines = np.asarray(self._pending_lines, dtype=np.uint32)[ok]
        k = len(lines)
        if self._n + k > len(self._keys):
            self._grow(self._n + k)
        sl = slice(self._n, self._n + k)
        self._keys[sl], self._lines[sl], self._file[sl] = keys[ok], lines, self._file_index
        if self.settings.near_duplicates:
            self._sigs[sl] = sigs[ok]
        self._n += k
        self._texts, self._pending_lines = [], []

    # --- the whole picture ------------------------------------------------------------------------

    def near_line_clusters(self) -> list[list[int]]:
        """Near-duplicate clusters as the line numbers the records carried (the split groups by them)."""
        return [self._lines[cluster].tolist() for cluster in self.clusters()[1]]

    def clusters(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Exact clusters and near-duplicate clusters, as sorted arrays of example indices."""
        self._flush()
        n = self._n
        keys = self._keys[:n]
        order = np.argsort(keys, kind="stable")
        ks = keys[order]
        new = np.concatenate(([True], ks[1:] != ks[:-1])) if n else np.zeros(0, dtype=bool)
        run_start = np.flatnonzero(new)
        sizes = np.diff(np.append(run_start, n))
        rep = np.empty(n, dtype=np.int64)  # first example with the same key
        rep[order] = np.repeat(order[run_start], sizes)
        exact = [np.sort(order[s:s + z]) for s, z in zip(run_start[sizes > 1], sizes[sizes > 1])]
        near: list[np.ndarray] = []
        if self.settings.near_duplicates and n > 1:
            uniq = np.sort(order[run_start])  # one example per distinct input
            pairs = near_pairs(self._sigs, self.settings.threshold, uniq)
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

    def _where(self, idx: np.ndarray, first_file: int) -> str:
        shown = idx[:SHOW_LINES]
        more = f" and {len(idx) - SHOW_LINES:,} more" if len(idx) > SHOW_LINES else ""
        if (self._file[idx] == first_file).all():
            lines = ", ".join(str(x) for x in self._lines[shown].tolist())
            return f"lines {lines}{more}"
        groups: list[str] = []
        for f in dict.fromkeys(self._file[shown].tolist()):
            lines = ", ".join(str(x) for x in self._lines[shown][self._file[shown] == f].tolist())
            groups.append(f"{self._label(f)} lines {lines}")
        return "; ".join(groups) + more

    def _label(self, f: int) -> str:
        return self.splits[f] or self.files[f].rsplit("/", 1)[-1]

    def _report(self, code: str, clusters: list[np.ndarray], what: str, hint: str) -> list[Finding]:
        out: list[Finding] = []
        ranked = sorted(clusters, key=lambda c: (-len(c), int(c[0])))
        for c in ranked[:50]:
            first = int(c[0])
            f = int(self._file[first])
            out += self.finding("info", code, f"{len(c)} examples have {what} input: {self._where(c, f)}",
                                file=self.files[f], line=int(self._lines[first]), hint=hint)
        if len(ranked) > 50:
            self._counts[code] += len(ranked) - 50
        return out

    def finish(self) -> list[Finding]:
        exact, near = self.clusters()
        n = self._n
        # examples beyond the first of each cluster, exact and near together (near clusters contain exact ones)
        dup = np.zeros(n, dtype=bool)
        for c in exact + near:
            dup[c[1:]] = True
        duplicates = int(dup.sum())
        share = duplicates / n if n else 0.0
        out = self._report("duplicate-inputs", exact, "the same",
                           "duplicates weigh one input more than the rest; keep one unless that is intended")
        out += self._report("near-duplicate-inputs", near, "nearly the same",
                            "near duplicates add little new; consider removing or varying them")
        if duplicates:
            severity: Severity = "warning" if share > self.settings.max_share else "info"
            out += self.finding(severity, "duplicate-share",
                                f"{share:.1%} of examples ({duplicates:,} of {n:,}) repeat another example's input "
                                f"({len(exact):,} exact and {len(near):,} near-duplicate clusters)",
                                file=self.files[0] if len(self.files) == 1 else None,
                                hint=f"above {self.settings.max_share:.0%} is a warning (validate.duplicates.max_share)")
        largest = sorted(exact + near, key=lambda c: (-len(c), int(c[0])))[:5]
        self._summary = {
            "examples": n, "empty_inputs": self._empty, "duplicates": duplicates, "duplicate_share": round(share, 6),
            "clusters": len(exact) + len(near), "exact_clusters": len(exact), "near_clusters": len(near),
            "largest_clusters": [
                {"size": len(c), "kind": "exact" if any(c is e for e in exact) else "near",
                 "members": [[self._label(int(f)), int(line)] for f, line in
                             zip(self._file[c[:SHOW_LINES]].tolist(), self._lines[c[:SHOW_LINES]].tolist())]}
                for c in largest],
        }
        return out

    def summary(self) -> dict[str, Any]:
        return self._summary


@hookimpl
def ftp_config_sections() -> list[ConfigSection]:
    return [DuplicatesCheck.config_section()]


@hookimpl
def ftp_data_checks(context: CheckContext) -> list[DataCheck]:
    settings = DuplicatesCheck.settings_from(context)
    if not settings.enabled:
        return []  # nothing to keep in memory
    capacity = sum(ref.examples for ref in context.data.files())
    return [DuplicatesCheck(settings, capacity)]
