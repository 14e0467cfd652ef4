"""Near-duplicate detection machinery for the ``duplicates`` check: normalisation, one-permutation
MinHash signatures over shingles, LSH banding and union-find clusters, vectorised with numpy.

Results are deterministic: every hash and hash function derives from fixed constants.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BATCH = 1024  # inputs sketched together at most; and at most BATCH_CHARS characters of them:
BATCH_CHARS = 1 << 17  # small batches keep the temporaries in a core's cache (measured: 128 KiB of ~1 KB inputs
# took 7 us per input, 256 KiB 10-11 us), and results do not depend on how inputs are batched
NUM_PERM = 64  # MinHash functions; the signature keeps 16 bits of each
BANDS, ROWS = 16, 4  # LSH: pairs agreeing on all 4 rows of any band are candidates (S-curve midpoint ~0.5)
assert BANDS * ROWS == NUM_PERM and ROWS == 4  # band_key reads a band's four 16-bit values as one 64-bit number
LONG_WORDS = 30  # inputs with at least this many words use word 3-shingles, shorter ones byte 5-grams
SHINGLE = 3
GRAM = 5
SEED = 20240601

U64 = np.uint64
_M1, _M2, _M3 = U64(0xBF58476D1CE4E5B9), U64(0x94D049BB133111EB), U64(0x9E3779B97F4A7C15)
_S30, _S27, _S31 = U64(30), U64(27), U64(31)

# byte classes: 0 drop (punctuation), 1 word byte, 2 space, 3 separator between inputs
_DROP, _WORD, _SPACE, _SEP = 0, 1, 2, 3
_CLASS = np.full(256, _WORD, dtype=np.uint8)
_CLASS[:33] = _SPACE  # control characters and space
_CLASS[0] = _SEP
_CLASS[127] = _SPACE
for _c in b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~":
    _CLASS[_c] = _DROP


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, stable 64-bit mixer (wraps mod 2**64)."""
    x = x ^ (x >> _S30)
    x = x * _M1
    x = x ^ (x >> _S27)
    x = x * _M2
    return x ^ (x >> _S31)


_rng = np.random.default_rng(SEED)
# hash function k: x -> (A[k] * x + B[k]) mod 2**32 over 32-bit shingle hashes (A odd: a permutation)
_A = _rng.integers(0, 2**31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
_B = _rng.integers(0, 2**32, NUM_PERM, dtype=np.uint64).astype(np.uint32)
_SALT = _rng.integers(0, 2**63, NUM_PERM, dtype=np.uint64)
_WORD_BASE = U64(0x100000001B3)  # odd: its powers stay invertible mod 2**64
_KEY_BASE = U64(0xC2B2AE3D27D4EB4F)
_C1, _C2 = U64(0x9FB21C651E98DF25), U64(0xD6E8FEB86659FD93)


class _Powers:
    """base**0, base**1, ... mod 2**64, grown on demand."""

    def __init__(self, base: np.uint64) -> None:
        self.base = base
        self.table = np.ones(1, dtype=np.uint64)

    def upto(self, n: int) -> np.ndarray:
        if len(self.table) < n:
            size = max(n, 2 * len(self.table))
            with np.errstate(over="ignore"):
                self.table = np.cumprod(np.concatenate(([U64(1)], np.full(size - 1, self.base, np.uint64))),
                                        dtype=np.uint64)
        return self.table


_WORD_POW = _Powers(_WORD_BASE)
_KEY_POW = _Powers(_KEY_BASE)


def input_text(example: Any) -> str | None:
    """Every non-assistant message content before the final answer, or a completion-style prompt."""
    if not isinstance(example, dict):
        return None
    messages = example.get("messages")
    if isinstance(messages, list):
        parts: list[str] = []
        before = -1  # how many parts come before the last assistant message (-1: there is none)
        for m in messages:
            if not isinstance(m, dict):
                continue
            if m.get("role") == "assistant":
                before = len(parts)
                continue
            content = m.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):  # content parts: keep the text ones
                parts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
            elif content is not None:
                parts.append(str(content))
        return "\n".join(parts if before < 0 else parts[:before])
    prompt = example.get("prompt")
    return prompt if isinstance(prompt, str) else None


def segments(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted ``ids``: the distinct ids and where each run starts."""
    if len(ids) == 0:
        return ids, ids.astype(np.intp)
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    return ids[starts], starts


_PUNCT = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
# ASCII fast path: whitespace and control bytes become a space, the separator (0) stays, capitals are
# lowered (as str.lower lowers ASCII), punctuation goes
_ASCII_TABLE = bytes((b + 32 if 65 <= b <= 90 else b) if b == 0 or 32 < b < 127 else 32 for b in range(256))
_LOW = np.array([(1 << (8 * r)) - 1 if r < 8 else (1 << 64) - 1 for r in range(9)], dtype=np.uint64)
_CHUNK_BASE = U64(0xA0761D6478BD642F)
_CHUNK_POW = _Powers(_CHUNK_BASE)


def _normalise(texts: list[str]) -> bytes:
    """The normalised bytes of a batch: words separated by spaces (32), inputs by a zero byte."""
    n = len(texts)
    big = "\x00".join(texts)
    if big.count("\x00") != n - 1:
        big = "\x00".join(t.replace("\x00", " ") for t in texts)
    if big.isascii():
        return big.encode("ascii").translate(_ASCII_TABLE, _PUNCT)
    data = np.frombuffer(big.lower().encode("utf-8", "surrogatepass"), dtype=np.uint8)
    cls = _CLASS[data]
    # General Punctuation (U+2000-U+206F, UTF-8 e2 80/81 xx): spaces up to U+200B, the rest dropped
    lead = np.flatnonzero((data[:-2] == 0xE2) & ((data[1:-1] & 0xFE) == 0x80))
    if len(lead):
        space = (data[lead + 1] == 0x80) & (data[lead + 2] <= 0x8B)
        cls[lead] = np.where(space, _SPACE, _DROP)
        cls[lead + 1] = _DROP
        cls[lead + 2] = _DROP
    nbsp = np.flatnonzero((data[:-1] == 0xC2) & (data[1:] == 0xA0))
    if len(nbsp):
        cls[nbsp], cls[nbsp + 1] = _SPACE, _DROP
    keep = cls != _DROP
    data, cls = data[keep], cls[keep]
    data[cls == _SPACE] = 32
    data[cls == _SEP] = 0
    return data.tobytes()


_EMPTY = np.uint16(0xFFFF)
_OPH_MUL = U64(0x8CB92BA72F3D8DD7)  # odd: a fixed permutation of the shingle hashes
_DENSIFY_TABLE = 64  # attempts whose candidate bins are precomputed
with np.errstate(over="ignore"):
    # candidate bin for (attempt t, empty bin b): t-major, NUM_PERM wide
    _CAND = (_mix((np.arange(1, _DENSIFY_TABLE + 1, dtype=np.uint64)[:, None] << U64(8))
                  + np.arange(NUM_PERM, dtype=np.uint64)[None, :] * _M3) >> U64(64 - 6)).astype(np.intp)


def _candidates(attempt: int, b: np.ndarray) -> np.ndarray:
    if attempt <= _DENSIFY_TABLE:
        return _CAND[attempt - 1][b]
    with np.errstate(over="ignore"):
        return (_mix((U64(attempt) << U64(8)) + b.astype(np.uint64) * _M3) >> U64(64 - 6)).astype(np.intp)


def _oph(rows: np.ndarray, sh: np.ndarray, n: int) -> np.ndarray:
    """One-permutation MinHash with optimal densification: NUM_PERM x 16-bit values per row.

    A shingle hash's top 6 bits pick its bin, its next 16 bits compete for the bin's minimum.
    An empty bin copies the first filled bin of a fixed sequence of candidates (hashes of the bin
    and the attempt), the same for every input, so equal sets still give equal signatures.
    ``rows``: the row (< n) of each shingle; ``sh``: the 64-bit shingle hashes.
    """
    mins = np.full(n * NUM_PERM, _EMPTY, dtype=np.uint16)
    with np.errstate(over="ignore"):
        sh = sh * _OPH_MUL
    val = np.minimum((sh >> U64(42)).astype(np.uint16), np.uint16(0xFFFE))
    idx = (sh >> U64(58)).view(np.int64)
    idx += rows * NUM_PERM
    np.minimum.at(mins, idx, val)
    has = np.zeros(n, dtype=bool)
    has[rows] = True
    empty = np.flatnonzero(mins == _EMPTY)
    if len(empty):
        r, b = np.divmod(empty, NUM_PERM)
        keep = has[r]
        r, b = r[keep] * NUM_PERM, b[keep]
        out = mins.copy()
        attempt = 0
        while len(r):
            attempt += 1
            dst = r + b
            v = mins[r + _candidates(attempt, b)]
            ok = v != _EMPTY
            out[dst[ok]] = v[ok]
            miss = ~ok
            r, b = r[miss], b[miss]
        mins = out
    rows = mins.reshape(n, NUM_PERM)
    rows[~has] = 0
    return rows


def sketch(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact keys (uint64), MinHash signatures (uint16, NUM_PERM wide) and word counts for a batch.

    Inputs with no words get key 0, a zero signature and word count 0.
    """
    n = len(texts)
    raw = _normalise(texts) + bytes(8)  # padding: every word start can be read as 8 bytes
    data = np.frombuffer(raw, dtype=np.uint8)
    size = len(data) - 8
    is_w = np.zeros(size + 2, dtype=bool)
    np.greater(data[:size], 32, out=is_w[1:-1])
    edges = np.flatnonzero(is_w[1:] != is_w[:-1])
    starts, ends = edges[0::2], edges[1::2]
    lens = ends - starts
    nwords = len(starts)
    keys = np.zeros(n, dtype=np.uint64)
    sigs = np.zeros((n, NUM_PERM), dtype=np.uint16)
    if nwords == 0:
        return keys, sigs, np.zeros(n, dtype=np.intp)
    # input of every word: the first word after each separator, then the words between
    bounds = np.empty(n + 1, dtype=np.intp)
    bounds[0], bounds[n] = 0, nwords
    bounds[1:n] = np.searchsorted(starts, np.flatnonzero(data[:size] == 0))
    counts = bounds[1:] - bounds[:-1]
    wex = np.repeat(np.arange(n), counts)
    # every byte offset read as a little-endian uint64 (unaligned view, no copy)
    as64 = np.ndarray((size,), dtype="<u8", buffer=raw, strides=(1,))
    with np.errstate(over="ignore"):
        acc = as64[starts]
        acc &= _LOW[np.minimum(lens, 8)]
        longw = np.flatnonzero(lens > 8)
        if len(longw):  # words longer than 8 bytes: a polynomial over their 8-byte chunks
            l_len, l_start = lens[longw], starts[longw]
            nch = ((l_len + 7) >> 3) - 1  # chunks after the first
            coff = np.cumsum(nch) - nch
            cidx = np.arange(int(nch.sum())) - np.repeat(coff, nch) + 1
            chunks = as64[np.repeat(l_start, nch) + 8 * cidx]
            chunks[coff + nch - 1] &= _LOW[l_len - 8 * nch]
            acc[longw] += np.add.reduceat(chunks * _CHUNK_POW.upto(int(nch.max()) + 1)[cidx], coff)
        wh = _mix(acc + lens.astype(np.uint64) * _M3)
        # exact key: polynomial over the word hashes of each input
        present = np.flatnonzero(counts)
        first = bounds[present]
        wpos = np.arange(nwords) - np.repeat(first, counts[present])
        kc = wh * _KEY_POW.upto(int(counts.max()))[wpos]
        keys[present] = _mix(np.add.reduceat(kc, first) ^ counts[present].astype(np.uint64)) | U64(1)

        long_ex = counts >= LONG_WORDS
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        # word 3-shingles of long inputs
        if long_ex.any() and nwords >= SHINGLE:
            i = np.flatnonzero((wex[:-2] == wex[2:]) & long_ex[wex[:-2]])
            sh = wh[:-2] * _C1
            sh += wh[1:-1] * _C2
            sh += wh[2:]
            parts.append((wex[i], sh[i]))
        # byte 5-grams of short inputs, over "word word word" + 4 padding zeros
        short_w = ~long_ex[wex]
        if short_w.any():
            sw = np.flatnonzero(short_w)
            s_wex, s_len, s_start = wex[sw], lens[sw], starts[sw]
            last = np.concatenate((s_wex[1:] != s_wex[:-1], [True]))
            out_len = s_len + np.where(last, GRAM - 1, 1)
            new_start = np.cumsum(out_len) - out_len
            total = int(out_len.sum())
            buf = np.full(total, 0x20, dtype=np.uint8)
            pad = (new_start + s_len)[last]
            buf[(pad[:, None] + np.arange(GRAM - 1)).ravel()] = 0
            within = np.arange(int(s_len.sum())) - np.repeat(np.cumsum(s_len) - s_len, s_len)
            buf[np.repeat(new_start, s_len) + within] = data[np.repeat(s_start, s_len) + within]
            bex = np.repeat(s_wex, out_len)
            b = buf.astype(np.uint64)
            m = total - GRAM + 1
            if m > 0:
                g = b[:m] << U64(32)
                for k in range(1, GRAM):
                    g |= b[k:k + m] << U64(8 * (GRAM - 1 - k))
                ok = np.flatnonzero((bex[:m] == bex[GRAM - 1:]) & (buf[:m] != 0))
                parts.append((bex[ok], _mix(g[ok] ^ _M3)))
        parts = [(r, h) for r, h in parts if len(h)]
        if parts:
            if len(parts) == 1:
                rows, sh = parts[0]
            else:
                rows = np.concatenate([r for r, _ in parts])
                sh = np.concatenate([h for _, h in parts])
            sigs = _oph(rows, sh, n)
    return keys, sigs, counts


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while x != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if ra < rb:
                self.parent[rb] = ra
            else:
                self.parent[ra] = rb


def band_key(sigs: np.ndarray, band: int, rows: np.ndarray | None = None) -> np.ndarray:
    """The LSH bucket, in one band, of every signature (or of the ``rows`` of ``sigs``): the band's four
    16-bit values read as one 64-bit number (no copy), so equal keys are exactly equal bands."""
    packed = np.ascontiguousarray(sigs, dtype=np.uint16).view(np.uint64)[:, band]
    return packed if rows is None else packed[rows]


def stable_argsort(key: np.ndarray) -> np.ndarray:
    """``np.argsort(key, kind="stable")``, faster where ties are few (buckets, exact keys): an unstable
    sort, then each run of equal keys put back in index order."""
    order = np.argsort(key)
    ks = key[order]
    same = ks[1:] == ks[:-1]
    if same.any():
        tied = np.zeros(len(key), dtype=bool)
        tied[1:] = same
        tied[:-1] |= same
        at = np.flatnonzero(tied)
        members = order[at]
        order[at] = members[np.lexsort((members, ks[at]))]
    return order


def near_pairs(sigs: np.ndarray, threshold: float, rows: np.ndarray | None = None) -> np.ndarray:
    """Verified pairs (k x 2, indices into ``rows``, or rows of ``sigs`` when it is None) whose
    estimated Jaccard is >= threshold. ``rows`` selects signatures without copying them all.

    Within each LSH bucket every member is paired with the bucket's first member and with its
    predecessor, so the work stays linear in the number of rows however large a bucket grows.
    """
    if rows is None:
        rows = np.arange(len(sigs))
    n = len(rows)
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    found = []
    for band in range(BANDS):
        key = band_key(sigs, band, rows)
        order = stable_argsort(key)
        ks = key[order]
        same = ks[1:] == ks[:-1]
        if not same.any():
            continue
        run_start = np.flatnonzero(np.concatenate(([True], ~same)))
        head = np.repeat(order[run_start], np.diff(np.append(run_start, n)))
        j = np.flatnonzero(same) + 1
        a = np.concatenate((order[j - 1], head[j]))
        b = np.concatenate((order[j], order[j]))
        a, b = np.minimum(a, b), np.maximum(a, b)
        found.append(a.astype(np.int64) * n + b.astype(np.int64))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))
    a, b = codes // n, codes % n
    a, b = a[a != b], b[a != b]
    keep = np.zeros(len(a), dtype=bool)
    need = int(np.ceil(threshold * NUM_PERM - 1e-9))
    for s in range(0, len(a), 1 << 16):
        e = s + (1 << 16)
        keep[s:e] = (sigs[rows[a[s:e]]] == sigs[rows[b[s:e]]]).sum(axis=1) >= need
    return np.stack((a[keep], b[keep]), axis=1)
