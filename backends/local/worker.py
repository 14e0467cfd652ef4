"""One rank of a distributed training run: what torchrun starts (``distributed.launch``).

Its own module so that the trainer, which uses ``distributed.Dist``, and this entry point, which runs the
trainer, do not import each other.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftp.errors import FtpError
from ftp.run.progress import JsonReporter, QuietReporter
from ftp.types import TrainRequest

from .distributed import ERROR_PREFIX, RESULT, Dist, die_with_parent
from .training import train


@dataclass
class WorkerContext:
    """The StepContext of a worker: rank 0 writes metrics and prints events; the others stay silent."""

    run_dir: Path
    metrics_file: Path
    backend_settings: dict[str, Any]
    reporter: Any
    main: bool
    run_id: str = ""

    def log_metrics(self, row: dict[str, Any]) -> None:
        if self.main:
            with self.metrics_file.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"phase": "train", **row}, sort_keys=True) + "\n")

    def setting(self, path: str) -> Any:
        return None


def main() -> None:
    die_with_parent()
    work, metrics = Path(sys.argv[1]), Path(sys.argv[2])
    dist = Dist.from_env()
    request = TrainRequest.model_validate_json((work / "request.json").read_text(encoding="utf-8"))
    reporter = JsonReporter() if dist.main else QuietReporter()
    ctx = WorkerContext(metrics.parent, metrics, request.backend_settings, reporter, dist.main)
    try:
        result, _ = train(request, ctx)  # type: ignore[arg-type]
    except FtpError as exc:  # the parent says this, not the tail of torchrun's log
        (work / f"{ERROR_PREFIX}{dist.rank}.txt").write_text(str(exc), encoding="utf-8")
        raise
    if dist.main:
        (work / RESULT).write_text(result.model_dump_json(), encoding="utf-8")
    dist.barrier()


if __name__ == "__main__":
    main()
