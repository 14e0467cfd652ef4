"""The content-addressed artifact store: ``<root>/sha256/<digest>/``, one folder per distinct content.

A registered version points at digests here (``ModelVersion.stored``), never at ``runs/``, so deleting a
run leaves its versions whole. The digest of a file is the sha256 of its bytes (the same hash
``DatasetRef.sha256`` records, so a version's ``data_sha256`` names its stored data); the digest of a
folder is the sha256 of its listing, one ``<relative path>\\0<file sha256>\\n`` line per file in sorted
order, under a ``ftp-tree-1`` header. Equal content is stored once.

Why copy and never hard-link: the run directory may be deleted or edited after registering, and a
link would share those edits. Why a temporary folder and a rename: readers (and a crash) never see
half an entry; of two processes storing the same content at once, one rename wins and the other's
copy is discarded. ``gc`` renames an entry out of the way before deleting it, for the same reason.
A store-wide file lock (shared for puts, exclusive for ``remove_unreferenced``) keeps a put that
finds its content already stored from racing the deletion of that very entry.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ftp.errors import UserError

CHUNK = 1 << 20  # files may be gigabytes: hashed and copied a mebibyte at a time
TREE_HEADER = b"ftp-tree-1\n"
OBJECTS, STAGING, LOCK = "sha256", "tmp", ".lock"
DIGEST = re.compile(r"^[0-9a-f]{64}$")


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digest(files: Iterable[tuple[str, str]]) -> str:
    """The digest of a folder from its (relative POSIX path, file sha256) pairs, in any order."""
    digest = hashlib.sha256(TREE_HEADER)
    for rel, sha in sorted(files):
        digest.update(rel.encode("utf-8") + b"\0" + sha.encode("ascii") + b"\n")
    return digest.hexdigest()


def folder_files(folder: Path) -> list[tuple[str, Path]]:
    """Every file under ``folder`` as (relative POSIX path, path), sorted; a link to a folder is refused
    (it would be stored as a copy of something outside the folder, or loop)."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; nothing to store")
    out: list[tuple[str, Path]] = []
    for here, dirs, names in os.walk(folder):
        for name in dirs:
            if Path(here, name).is_symlink():
                raise UserError(f"{Path(here, name)}: a link to a folder; copy the files in instead")
        for name in names:
            path = Path(here, name)
            out.append((path.relative_to(folder).as_posix(), path))
    return sorted(out)


def copy_hashed(source: Path, target: Path) -> str:
    """Copy ``source`` to ``target`` (flushed to disk) and return the sha256 of the bytes written."""
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, target.open("wb") as dst:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


def check_digest(digest: str) -> str:
    if not DIGEST.match(digest):
        raise UserError(f"{digest!r}: not a sha256 digest (64 lowercase hex characters)")
    return digest


class ArtifactStore:
    """One store root (``register.artifacts``, ``.ftp/artifacts``); see the module's docstring."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def objects(self) -> Path:
        return self.root / OBJECTS

    def entry(self, digest: str) -> Path:
        """Where ``digest`` lives (or would live); :meth:`path` also checks that it is there."""
        return self.objects / check_digest(digest)

    # --- writing ---------------------------------------------------------------------------------

    def put_dir(self, path: Path) -> str:
        """Store a folder's files (nothing copied when the same content is stored); returns its digest."""
        files = folder_files(Path(path))
        digest = tree_digest((rel, file_sha256(p)) for rel, p in files)
        with self._locked(shared=True):
            if self._present(digest):
                return digest
            with self._staging(digest) as tmp:
                written = [(rel, copy_hashed(p, tmp / rel)) for rel, p in files]
                if tree_digest(written) != digest:
                    raise UserError(f"{path}: its files changed while they were being stored; store it again")
        return digest

    def put_file(self, path: Path) -> str:
        """Store one file as ``<digest>/<its name>``; the digest is the sha256 of its bytes."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: file not found; nothing to store")
        digest = file_sha256(path)
        with self._locked(shared=True):
            if self._present(digest):
                return digest
            with self._staging(digest) as tmp:
                if copy_hashed(path, tmp / path.name) != digest:
                    raise UserError(f"{path}: the file changed while it was being stored; store it again")
        return digest

    def _present(self, digest: str) -> bool:
        """True when ``digest`` is stored; its time is refreshed, so ``gc``'s grace period counts from
        this put (a run about to register it), not from the first."""
        entry = self.entry(digest)
        if not entry.is_dir():
            return False
        os.utime(entry)
        return True

    @contextmanager
    def _staging(self, digest: str) -> Iterator[Path]:
        """A private folder that becomes the entry when the block ends without an error."""
        staging = self.root / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        self.objects.mkdir(parents=True, exist_ok=True)
        tmp = staging / f"{digest}.{os.getpid()}.{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            yield tmp
            try:
                os.rename(tmp, self.entry(digest))
            except OSError as exc:  # another process stored the same content first: keep its entry
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not self.entry(digest).is_dir():
                    raise
            _fsync_dir(self.objects)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # --- reading ---------------------------------------------------------------------------------

    def path(self, digest: str) -> Path:
        """The entry's folder; a UserError when it is not in the store."""
        entry = self.entry(digest)
        if not entry.is_dir():
            raise UserError(f"sha256 {digest[:12]} is not in the artifact store {self.root}: it was deleted or "
                            "the store moved; set register.artifacts (or --registry) to where it is")
        return entry

    def file(self, digest: str) -> Path:
        """The one file of an entry :meth:`put_file` made."""
        files = folder_files(self.path(digest))
        if len(files) != 1:
            raise UserError(f"{self.entry(digest)}: a stored folder, not a stored file")
        return files[0][1]

    def verify(self, digest: str) -> bool:
        """Re-hash the entry: True when its content still has its digest (as a folder, or as one file)."""
        entry = self.entry(digest)
        if not entry.is_dir():
            return False
        files = folder_files(entry)
        hashes = [(rel, file_sha256(p)) for rel, p in files]
        return tree_digest(hashes) == digest or (len(hashes) == 1 and hashes[0][1] == digest)

    def digests(self) -> set[str]:
        if not self.objects.is_dir():
            return set()
        return {p.name for p in self.objects.iterdir() if DIGEST.match(p.name) and p.is_dir()}

    def size(self, digest: str) -> int:
        """Bytes the entry takes (its files' sizes)."""
        return sum(p.stat().st_size for _, p in folder_files(self.path(digest)))

    # --- deleting --------------------------------------------------------------------------------

    def unreferenced(self, keep: set[str], older_than_s: float = 0.0) -> list[str]:
        """The digests :meth:`remove_unreferenced` would delete, sorted."""
        cutoff = time.time() - older_than_s
        return sorted(d for d in self.digests() - keep if self.entry(d).stat().st_mtime <= cutoff)

    def remove_unreferenced(self, keep: set[str], older_than_s: float = 0.0) -> list[str]:
        """Delete every entry not in ``keep`` and not stored (or re-stored) in the last ``older_than_s``
        seconds (a run may be about to register it), and staging folders of puts that died; returns the
        digests deleted."""
        with self._locked(shared=False):
            removed = self.unreferenced(keep, older_than_s)
            for digest in removed:
                doomed = self.root / STAGING / f"{digest}.deleting.{os.getpid()}.{secrets.token_hex(4)}"
                doomed.parent.mkdir(parents=True, exist_ok=True)
                os.rename(self.entry(digest), doomed)  # gone from the store at once, then deleted
                shutil.rmtree(doomed)
            self._sweep_staging()
        return removed

    def _sweep_staging(self) -> None:
        """Staging folders left by puts that died: with the lock held exclusively no put is running, so
        every one left is dead."""
        staging = self.root / STAGING
        for tmp in staging.iterdir() if staging.is_dir() else ():
            shutil.rmtree(tmp, ignore_errors=True)

    @contextmanager
    def _locked(self, shared: bool) -> Iterator[None]:
        """The store's lock (``<root>/.lock``, flock): many puts at once, or one deletion. Released by the
        kernel when the process dies. Windows (no fcntl) goes without it."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the OS allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
