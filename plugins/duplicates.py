"""Diversity: examples whose inputs are the same, or nearly the same, teach the model one thing many times.

The unit of comparison is the input: every non-assistant message before the final answer, normalised
(lower case, ASCII and common Unicode punctuation removed, whitespace collapsed).

- Exact duplicates: a 64-bit hash of the normalised input.
- Near duplicates: MinHash (64 hash functions) over word 3-shingles, or over byte 5-grams of the
  normalised text when the input has fewer than ``LONG_WORDS`` words (one changed word in a
  20-word input leaves only ~70% of its word 3-shingles, but ~85% of its 5-grams), then LSH banding
  (16 bands of 4 rows) to find candidate pairs, each verified by the Jaccard similarity the two
  signatures estimate, and union-find to make clusters.

Everything is vectorised over batches of inputs (``BATCH``, ``BATCH_CHARS``) with numpy
(duplicate_index.py, minhash.py); per example only a 64-bit key, a 64 x 16-bit signature, the line
number and a file index are kept (about 140 bytes), never the text. Results are deterministic (every
hash and hash function derives from fixed constants) and do not depend on how the inputs are batched,
so a file read in ranges (``part``) gives the same clusters.
"""

from __future__ import annotations

from typing import Any

from ftp.data.checks import CheckSettings, DataCheck, Record, check_hooks
from ftp.types import CheckContext, DatasetRef, Finding, Severity
from pydantic import Field


SHOW_LINES = 10  # line numbers listed per cluster finding


class DuplicatesSettings(CheckSettings):
    near_duplicates: bool = Field(True, description="also find inputs that are nearly the same (MinHash + LSH)")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity of word shingles for a near duplicate")
    max_share: float = Field(0.05, ge=0, le=1, description="a larger share of duplicates is a warning, not info")


class DuplicatesCheck(DataCheck):
    name = "duplicates"
    Settings = DuplicatesSettings

    @classmethod
    def build(cls, context: CheckContext) -> "DuplicatesCheck":
        return cls(cls.settings_from(context), sum(ref.examples for ref in context.data.files()))

    def __init__(self, settings: DuplicatesSettings, capacity: int = 0) -> None:
        from .duplicate_index import InputIndex  # numpy: only once the check runs

        super().__init__()
        self.settings = settings
        self.files: list[str] = []
        self.splits: list[str | None] = []
        self.index = InputIndex(settings.near_duplicates, settings.threshold, capacity)
        self._summary: dict[str, Any] = {}

    def begin(self, ref: DatasetRef) -> None:
        self.files.append(str(ref.path))
        self.splits.append(ref.split)
        self.index.begin_file(len(self.files) - 1)

    def observe(self, record: Record) -> None:
        self.index.observe(record.example, record.line)

    def part(self) -> "DuplicatesCheck":
        part = self.part_copy()
        part.index, part.files, part.splits = self.index.part(), [], []
        return part

    def end_part(self, last: bool) -> None:
        self.index.close_part()

    def merge(self, part: DataCheck) -> None:
        assert isinstance(part, DuplicatesCheck)
        self.index.absorb(part.index)

    # --- the whole picture ------------------------------------------------------------------------

    def near_line_clusters(self) -> list[list[int]]:
        """Near-duplicate clusters as the line numbers the records carried (the split groups by them)."""
        return [self.index.lines[cluster].tolist() for cluster in self.index.clusters()[1]]

    def _where(self, idx: Any, first_file: int) -> str:
        shown = idx[:SHOW_LINES]
        more = f" and {len(idx) - SHOW_LINES:,} more" if len(idx) > SHOW_LINES else ""
        if (self.index.file[idx] == first_file).all():
            lines = ", ".join(str(x) for x in self.index.lines[shown].tolist())
            return f"lines {lines}{more}"
        groups: list[str] = []
        for f in dict.fromkeys(self.index.file[shown].tolist()):
            lines = ", ".join(str(x) for x in self.index.lines[shown][self.index.file[shown] == f].tolist())
            groups.append(f"{self._label(f)} lines {lines}")
        return "; ".join(groups) + more

    def _label(self, f: int) -> str:
        return self.splits[f] or self.files[f].rsplit("/", 1)[-1]

    def _report(self, code: str, clusters: list[Any], what: str, hint: str) -> list[Finding]:
        out: list[Finding] = []
        ranked = sorted(clusters, key=lambda c: (-len(c), int(c[0])))
        for c in ranked[:50]:
            first = int(c[0])
            f = int(self.index.file[first])
            out += self.finding("info", code, f"{len(c)} examples have {what} input: {self._where(c, f)}",
                                file=self.files[f], line=int(self.index.lines[first]), hint=hint)
        if len(ranked) > 50:
            self._counts[code] += len(ranked) - 50
        return out

    def finish(self) -> list[Finding]:
        exact, near = self.index.clusters()
        n = self.index.n
        duplicates = self.index.repeats(exact + near)
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
            "examples": n, "empty_inputs": self.index.empty, "duplicates": duplicates, "duplicate_share": round(share, 6),
            "clusters": len(exact) + len(near), "exact_clusters": len(exact), "near_clusters": len(near),
            "largest_clusters": [
                {"size": len(c), "kind": "exact" if any(c is e for e in exact) else "near",
                 "members": [[self._label(int(f)), int(line)] for f, line in
                             zip(self.index.file[c[:SHOW_LINES]].tolist(), self.index.lines[c[:SHOW_LINES]].tolist())]}
                for c in largest],
        }
        return out

    def summary(self) -> dict[str, Any]:
        return self._summary


ftp_config_sections, ftp_data_checks = check_hooks(DuplicatesCheck)
