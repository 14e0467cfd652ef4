"""The MLflow run behind a version registered with ``register.kind: mlflow``.

MLflow registers a model version only from a run's artifacts (``runs:/<run id>/model`` with the run
id; a bare local path is refused), so registering first makes the run: one per ftp run, found again by
its ``ftp.run_id`` tag (a resumed run reuses it), in the experiment ``$MLFLOW_EXPERIMENT_NAME`` or the
model's name, with the model's folder as artifacts under ``model/``. ``log_run`` then adds what the
run directory holds: the resolved hyperparameters as params, every training row of ``metrics.jsonl``
as metrics by step (``train_loss``, ``eval_loss``, ``lr``...), the test metrics per candidate
(``test.<candidate>.<metric>``), the data splits as dataset inputs (a 32-character prefix of ftp's
sha256 as MLflow's digest, the whole hash in the profile), and the reports as artifacts. It runs once
per run (tag ``ftp.logged``), so resuming never doubles a metric's history.

The client is passed in (``mlflow.MlflowClient``); mlflow itself is imported only inside functions.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftp.errors import UserError
from ftp.types import ModelVersion

RUN_TAG = "ftp.run_id"
LOGGED_TAG = "ftp.logged"
MODEL_PATH = "model"  # the run's artifact folder that a version's source names
REPORTS = ("eval.json", "eval.html", "loss_curve.png", "loss_curve.json", "samples.md", "pipeline.resolved.yaml")
SPLITS = {"train": "training", "validation": "validation", "test": "test"}  # ftp's split -> MLflow's context
PARAM_LIMIT = 6000  # MLflow's longest param value
BATCH = {"params": 100, "metrics": 1000}  # MLflow's log_batch limits


def quoted(text: str) -> str:
    """``text`` inside a filter string; MLflow's filter grammar has no escape for a quote."""
    if "'" in text:
        raise UserError(f"{text!r}: a name or run id with a quote cannot be looked up in MLflow; rename it")
    return f"'{text}'"


def experiment_id(client: Any, model: str) -> str:
    """The experiment runs go to, created on first use (a race to create it is settled by reading it
    back)."""
    from mlflow.exceptions import MlflowException

    wanted = os.environ.get("MLFLOW_EXPERIMENT_NAME") or model
    found = client.get_experiment_by_name(wanted)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(wanted))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return str(client.get_experiment_by_name(wanted).experiment_id)


def find_or_start(client: Any, version: ModelVersion) -> str:
    """The MLflow run of ``version``'s ftp run: the one tagged with its run id, or a new one."""
    experiment = experiment_id(client, version.name)
    runs = client.search_runs([experiment], filter_string=f"tags.`{RUN_TAG}` = {quoted(version.run_id)}",
                              max_results=1)
    if runs:
        return str(runs[0].info.run_id)
    tags = {RUN_TAG: version.run_id, "ftp.backend": version.backend, "ftp.base_model": version.base_model,
            "ftp.pipeline.sha256": version.pipeline_sha256, "ftp.code_version": version.code_version}
    return str(client.create_run(experiment, run_name=version.run_id, tags=tags).info.run_id)


def log_model(client: Any, run_id: str, version: ModelVersion) -> str:
    """Upload the model under ``model/`` and return the source to register: the adapter or model
    folder when it is here, else (a cloud model) a ``ftp_model.json`` that says which one it is."""
    where = Path(version.model.path) if version.model.path else None
    if where is not None and where.is_dir():
        client.log_artifacts(run_id, str(where), artifact_path=MODEL_PATH)
    elif where is not None and where.is_file():
        client.log_artifact(run_id, str(where), artifact_path=MODEL_PATH)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "ftp_model.json").write_text(version.model.model_dump_json(indent=2), encoding="utf-8")
            client.log_artifacts(run_id, tmp, artifact_path=MODEL_PATH)
    return f"runs:/{run_id}/{MODEL_PATH}"


def params(hyperparameters: dict[str, Any]) -> dict[str, str]:
    """Hyperparameters as MLflow params: nested keys dotted (``lora.r``), values as text (lists as
    JSON), cut to MLflow's limit (the version's ``ftp.hyperparameters`` tag keeps them whole)."""
    from ftp.registry.history import flatten

    flat = flatten(hyperparameters)
    return {key: (value if isinstance(value, str) else json.dumps(value))[:PARAM_LIMIT] for key, value in flat.items()}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def step_metrics(path: Path) -> list[tuple[str, float, int]]:
    """(key, value, step) for every number of every training row in ``metrics.jsonl`` (train_loss,
    eval_loss, lr, epoch, tokens_per_s...); rows of other phases are not steps."""
    if not path.is_file():
        return []
    found: list[tuple[str, float, int]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or row.get("phase") != "train" or not isinstance(row.get("step"), int):
            continue
        found += [(key, float(value), row["step"]) for key, value in row.items() if key != "step" and _number(value)]
    return found


def test_metrics(metrics: dict[str, Any]) -> list[tuple[str, float, int]]:
    """``test.<candidate>.<metric>`` for each candidate's test metric (the names ``ftp models diff`` uses)."""
    test = metrics.get("test")
    if not isinstance(test, dict):
        return []
    return [(f"test.{candidate}.{name}", float(value), 0) for candidate, values in sorted(test.items())
            if isinstance(values, dict) for name, value in sorted(values.items()) if _number(value)]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def dataset_inputs(version: ModelVersion, run_dir: Path) -> list[Any]:
    """One MLflow dataset input per split: MLflow's digest column holds 36 characters, so it gets a
    32-character prefix of ftp's sha256, and the profile the whole hash and the example count."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    manifest_path = run_dir / "data" / "manifest.json"
    files = json.loads(manifest_path.read_text(encoding="utf-8")).get("files", {}) if manifest_path.is_file() else {}
    inputs = []
    for split, context in SPLITS.items():
        sha = version.data_sha256.get(split)
        if not sha:
            continue
        path = (run_dir / "data" / f"{split}.jsonl").resolve()
        profile = {"sha256": sha, "examples": (files.get(split) or {}).get("examples")}
        dataset = Dataset(name=f"{version.name}-{split}", digest=sha[:32], source_type="local",
                          source=json.dumps({"uri": path.as_uri()}), profile=json.dumps(profile))
        inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)]))
    return inputs


def log_run(client: Any, run_id: str, version: ModelVersion, run_dir: Path) -> None:
    """Params, metrics by step, dataset inputs and reports of ``run_dir`` on the MLflow run, once."""
    from mlflow.entities import Metric, Param

    if client.get_run(run_id).data.tags.get(LOGGED_TAG) == "true":
        return
    stamp = int(time.time() * 1000)
    for chunk in _chunks([Param(k, v) for k, v in params(version.hyperparameters).items()], BATCH["params"]):
        client.log_batch(run_id, params=chunk)
    rows = step_metrics(run_dir / "metrics.jsonl") + test_metrics(version.metrics)
    for chunk in _chunks([Metric(key, value, stamp, step) for key, value, step in rows], BATCH["metrics"]):
        client.log_batch(run_id, metrics=chunk)
    inputs = dataset_inputs(version, run_dir)
    if inputs:
        client.log_inputs(run_id, datasets=inputs)
    for name in REPORTS:
        if (run_dir / name).is_file():
            client.log_artifact(run_id, str(run_dir / name))
    if (run_dir / "data" / "manifest.json").is_file():
        client.log_artifact(run_id, str(run_dir / "data" / "manifest.json"), artifact_path="data")
    client.set_tag(run_id, LOGGED_TAG, "true")
    client.set_terminated(run_id, "FINISHED")
