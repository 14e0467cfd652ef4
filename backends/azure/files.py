"""Training files on Azure: upload once per content, wait until processed, explain a rejection.

Uploaded names carry the content hash (``ftp-<sha256[:16]>-train.jsonl``), so identical content is
found again instead of uploaded twice: first in the run's state (a resumed run), then among the
resource's processed files (another run of the same data).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftp.errors import StepFailed

from .dataplane import DataPlane
from .http import AzureError, Clock, create_once
from .settings import PollSettings

TERMINAL = ("processed", "error", "deleted")


@dataclass(frozen=True)
class UploadedFile:
    id: str
    sha256: str
    filename: str
    status: str


def content_name(sha256: str, split: str) -> str:
    """A name that says what the content is: the same data gets the same name, run after run."""
    return f"ftp-{sha256[:16]}-{split}"


def remote_name(sha256: str, split: str) -> str:
    return f"{content_name(sha256, split)}.jsonl"


def find_existing(plane: DataPlane, name: str) -> dict[str, Any] | None:
    """A usable file already on the resource with this name (the name holds the content hash)."""
    listed = plane.get("files", purpose="fine-tune")
    for item in listed.get("data", []) if isinstance(listed, dict) else []:
        if item.get("filename") == name and item.get("status") not in ("error", "deleting", "deleted"):
            return item
    return None


def upload(plane: DataPlane, path: Path, name: str, clock: Clock) -> dict[str, Any]:
    """``POST /files`` as multipart: ``purpose=fine-tune`` and the JSONL bytes.

    After a lost answer (reset, 5xx) the file may exist all the same: look for it by name before
    sending the bytes again, so the resource does not collect copies.
    """
    content = path.read_bytes()
    return create_once(lambda: plane.post("files", data={"purpose": "fine-tune"}, retry_ambiguous=False,
                                          files={"file": (name, content, "application/octet-stream")}),
                       lambda: find_existing(plane, name), plane.settings.retry, clock)


def wait_processed(plane: DataPlane, file: dict[str, Any], poll: PollSettings, clock: Clock, label: str) -> dict[str, Any]:
    """Poll until the file is terminal; ``error`` becomes a one-line failure with Azure's ``status_details``."""
    wait = poll.interval
    start = clock.now()
    while file.get("status") not in TERMINAL:
        if clock.now() - start > poll.timeout:
            raise StepFailed("train", f"{label} file {file['id']} still {file.get('status')} after "
                             f"{poll.timeout:.0f}s; resume later with ftp run --resume")
        clock.sleep(wait)
        wait = min(poll.max_interval, max(wait * poll.backoff, 0.0))
        file = plane.get(f"files/{file['id']}")
    if file["status"] != "processed":
        details = " ".join(str(file.get("status_details") or "no details given").split())
        raise StepFailed("train", f"Azure rejected the {label} file {file['id']} ({file.get('filename')}): "
                         f"{details}; fix the data (ftp data check --backend azure) and run again")
    return file


def current(plane: DataPlane, file_id: str) -> dict[str, Any] | None:
    """The file as Azure has it now, or None when it was deleted since it was recorded."""
    try:
        return plane.get(f"files/{file_id}")
    except AzureError as exc:
        if exc.status == 404:
            return None
        raise


def ensure_uploaded(plane: DataPlane, path: Path, sha256: str, split: str, known: dict[str, Any],
                    poll: PollSettings, clock: Clock, on_new: Callable[[str, dict[str, Any]], None]) -> UploadedFile:
    """The processed file for this content: reused when known or already on Azure, uploaded otherwise.

    ``on_new`` records the file id the moment Azure returns it, so a crash during processing resumes
    with the same file instead of uploading again.
    """
    name = remote_name(sha256, split)
    entry = known.get(sha256)
    file = current(plane, entry["id"]) if entry else None
    if file is None or file.get("status") in ("error", "deleted", "deleting"):
        file = find_existing(plane, name)
    if file is None:
        file = upload(plane, path, name, clock)
    on_new(sha256, {"id": file["id"], "filename": name, "split": split})
    done = wait_processed(plane, file, poll, clock, split)
    return UploadedFile(id=done["id"], sha256=sha256, filename=name, status=done["status"])
