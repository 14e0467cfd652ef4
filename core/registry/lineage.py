"""What a registered version records about how it was made, so it can be reproduced or audited long
after its run directory is gone: the data's hashes, the settings, the metrics, the pipeline file's hash
and the code version."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from ftp import __version__
from ftp.run.store import now
from ftp.types import ModelVersion, SplitResult, TrainResult


def new_version(name: str, run_id: str, backend: str, result: TrainResult, source_sha256: str, split: SplitResult,
                hyperparameters: dict[str, Any], test_metrics: dict[str, Any], pipeline_sha256: str,
                pipeline_dir: Path) -> ModelVersion:
    """The version a run registers (numbered by the registry: 0 until then)."""
    return ModelVersion(
        name=name, version=0, created_at=now(), run_id=run_id, backend=backend, base_model=result.model.base,
        model=result.model,
        data_sha256={"source": source_sha256, **{part: getattr(split, part).sha256 for part in ("train", "validation", "test")}},
        hyperparameters=hyperparameters, metrics={"test": test_metrics, "train": result.metrics},
        pipeline_sha256=pipeline_sha256, code_version=code_version(pipeline_dir), backend_details=result.backend_details)


def code_version(where: Path) -> str:
    """ftp's version plus the git commit of the pipeline's folder, when it is in a repository."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"ftp {__version__}" + (f" git {sha}" if sha else "")
