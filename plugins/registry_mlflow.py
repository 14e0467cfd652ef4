"""``register.kind: mlflow``: the model registry of an MLflow tracking server, through ``MlflowClient``.

Where: the registry's location when it is an ``http(s)://`` URI (``register.tracking_uri`` as the
runner passes it, ``ftp models --kind mlflow --registry URI``), else ``$MLFLOW_TRACKING_URI``.

What it keeps, so that every ftp command reads an MLflow registry as it reads the SQLite one:
- a registered model per name and an MLflow model version per ftp version: MLflow numbers it, and
  that number is the ftp version; its source is the ftp run's MLflow run (``ftp.plugins.mlflow_run``);
- the ``ModelVersion`` in the version's tags: ``ftp.run_id``, ``ftp.backend``, ``ftp.base_model``,
  ``ftp.pipeline.sha256``, ``ftp.code_version``, ``ftp.created_at`` as text; ``ftp.model``,
  ``ftp.data.sha256`` (ftp's sha256 of each split), ``ftp.hyperparameters``, ``ftp.metrics``,
  ``ftp.backend_details``, ``ftp.stored`` and one ``ftp.lineage.<key>`` per lineage entry as JSON
  (a value over MLflow's 100,000 characters continues in ``<key>.part1``, ``.part2``...);
  ``ftp.archived`` = ``true`` for an archived version (MLflow's stages are deprecated since 2.9);
- user tags (``ftp models tag``, ``human_review``) under their own key, JSON-encoded (read back as
  JSON where it parses, else as the text, so tags set in MLflow's UI read as strings);
- aliases as MLflow's own (``set_registered_model_alias``): ``models:/NAME@champion`` names what
  ``NAME@champion`` does in ftp;
- the audit log as registered-model tags ``ftp.audit.<UTC time>.<random>`` holding one
  ``AuditEntry`` each: unique keys, so writers racing never overwrite each other's entry, and sorted
  keys are the order of events. Changes made in MLflow's UI bypass it.
Versions MLflow holds that ftp did not register (without those tags) are not listed.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ftp import hookimpl
from ftp.errors import UserError
from ftp.plugins import mlflow_run
from ftp.registry.history import os_user, split_rollback
from ftp.registry.refs import check_alias, is_reserved, reserved_version
from ftp.run.store import now
from ftp.types import AuditEntry, ModelVersion

TEXT = {"run_id": "ftp.run_id", "created_at": "ftp.created_at", "backend": "ftp.backend",
        "base_model": "ftp.base_model", "pipeline_sha256": "ftp.pipeline.sha256", "code_version": "ftp.code_version"}
JSON = {"model": "ftp.model", "data_sha256": "ftp.data.sha256", "hyperparameters": "ftp.hyperparameters",
        "metrics": "ftp.metrics", "backend_details": "ftp.backend_details", "stored": "ftp.stored"}
LINEAGE, ARCHIVED, AUDIT, OWN = "ftp.lineage.", "ftp.archived", "ftp.audit.", ("ftp.", "mlflow.")
LIMIT = 100_000  # MLflow's longest model-registry tag value
PART = re.compile(r"\.part\d+$")
QUIET = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # run links on stdout would break --json
         "MLFLOW_PRINT_MODEL_URLS_ON_CREATION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
URI = re.compile(r"^(https?):/+(.+)$")  # Path("http://h:5000") reads "http:/h:5000"


def tracking_uri(location: Path | str) -> str:
    """The server: ``location`` when it is an http(s) URI, else ``$MLFLOW_TRACKING_URI``."""
    found = URI.match(str(location))
    if found:
        return f"{found.group(1)}://{found.group(2)}"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    raise UserError("register.kind mlflow needs a tracking server: set register.tracking_uri (e.g. "
                    "http://127.0.0.1:5000) or MLFLOW_TRACKING_URI, or pass --registry http://HOST:PORT")


def _shown(uri: str) -> str:
    """The URI without a password, for messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.hostname}"
                                     + (f":{parts.port}" if parts.port else "")))


def probe(uri: str, timeout_s: float = 10.0) -> None:
    """Fail in seconds where nothing listens: MLflow's client retries a refused connection for about
    four minutes. Any HTTP answer (even 401) or a TLS problem is left to MLflow's client to judge."""
    import ssl
    import urllib.error
    import urllib.request

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or parts.hostname is None:
        return
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")  # no credentials in a probe
    health = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", ""))
    try:
        urllib.request.urlopen(health, timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLError):
            return
        raise UserError(f"cannot reach the MLflow tracking server at {_shown(uri)} ({reason}); start it, or "
                        "fix register.tracking_uri / MLFLOW_TRACKING_URI") from exc


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", ""))


def _put(tags: dict[str, str], key: str, text: str) -> None:
    tags[key] = text[:LIMIT]
    for part, start in enumerate(range(LIMIT, len(text), LIMIT), start=1):
        tags[f"{key}.part{part}"] = text[start:start + LIMIT]


def _take(tags: dict[str, str], key: str) -> str:
    text, part = tags[key], 1
    while f"{key}.part{part}" in tags:
        text, part = text + tags[f"{key}.part{part}"], part + 1
    return text


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def encode(version: ModelVersion) -> dict[str, str]:
    """The model-version tags that carry ``version`` (aliases live in MLflow's alias table)."""
    data = version.model_dump(mode="json")
    tags = {key: str(data[field]) for field, key in TEXT.items()}
    for field, key in JSON.items():
        _put(tags, key, json.dumps(data[field], sort_keys=True))
    for name, value in data["lineage"].items():
        _put(tags, LINEAGE + name, json.dumps(value, sort_keys=True))
    for name, value in data["tags"].items():
        _put(tags, name, json.dumps(value, sort_keys=True))
    if version.archived:
        tags[ARCHIVED] = "true"
    return tags


def decode(mv: Any, aliases: builtins.list[str] | None = None) -> ModelVersion | None:
    """The ``ModelVersion`` an MLflow model version carries; None for one ftp did not register. Its
    lineage gains ``mlflow``: the MLflow run, source and ``models:/`` URI."""
    tags: dict[str, str] = dict(mv.tags or {})
    if not all(key in tags for key in (*TEXT.values(), *JSON.values())):
        return None  # not registered by ftp (or its tags were edited away)
    data: dict[str, Any] = {field: tags[key] for field, key in TEXT.items()}
    data.update({field: json.loads(_take(tags, key)) for field, key in JSON.items()})
    own = [k for k in tags if not PART.search(k)]
    lineage = {k[len(LINEAGE):]: json.loads(_take(tags, k)) for k in own if k.startswith(LINEAGE)}
    lineage["mlflow"] = {"run_id": mv.run_id, "source": mv.source, "uri": f"models:/{mv.name}/{mv.version}"}
    user = {k: _loads(_take(tags, k)) for k in own if not k.startswith(OWN)}
    return ModelVersion.model_validate({**data, "name": mv.name, "version": int(mv.version), "lineage": lineage,
                                        "tags": user, "archived": tags.get(ARCHIVED) == "true",
                                        "aliases": sorted(mv.aliases or aliases or [])})


class MlflowRegistry:
    """The ``ModelRegistry`` protocol over one MLflow tracking server, plus ``log_run``."""

    name = "mlflow"

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.location = _shown(uri)

    @cached_property
    def client(self) -> Any:
        for key, value in QUIET.items():
            os.environ.setdefault(key, value)
        try:
            from mlflow import MlflowClient
        except ImportError as exc:
            raise UserError("register.kind mlflow needs the MLflow client: pip install 'ftp[mlflow]' "
                            "(mlflow-skinny)") from exc
        probe(self.uri)
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    @contextmanager
    def _calls(self) -> Iterator[None]:
        """MLflow's errors (refused values, an unreachable server) as one line naming the server."""
        try:
            yield
        except UserError:
            raise
        except Exception as exc:
            from mlflow.exceptions import MlflowException

            if not isinstance(exc, MlflowException):
                raise
            raise UserError(f"MLflow at {self.location}: {str(exc).splitlines()[0][:500]}") from exc

    def _missing(self, call: Any, *args: Any) -> Any:
        """``call(*args)``, or None where MLflow says the model, version or alias does not exist (it
        answers a missing alias with INVALID_PARAMETER_VALUE)."""
        from mlflow.exceptions import MlflowException

        try:
            return call(*args)
        except MlflowException as exc:
            code = _code(exc)
            if code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)):
                return None
            raise

    def _search(self, name: str | None, newest_first: bool = False) -> Iterator[Any]:
        """Every MLflow version (of ``name``), page after page."""
        query = f"name = {mlflow_run.quoted(name)}" if name else None
        order = ["version_number DESC"] if newest_first else None
        token = None
        while True:
            page = self.client.search_model_versions(query, order_by=order, page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def _audit(self, name: str, action: str, version: int | None = None, alias: str | None = None,
               previous: int | None = None, reason: str = "", details: dict[str, Any] | None = None) -> None:
        entry = AuditEntry(name=name, at=now(), user=os_user(), action=action, version=version, alias=alias,
                           previous=previous, reason=reason, details=details or {})
        text = entry.model_dump_json()
        if len(text) > LIMIT:
            text = entry.model_copy(update={"details": {"truncated": True}}).model_dump_json()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        self.client.set_registered_model_tag(name, f"{AUDIT}{stamp}.{secrets.token_hex(4)}", text)

    def _ready(self, mv: Any, wait_s: float = 300.0) -> Any:
        """The version once MLflow has finished creating it (at once with a SQL store)."""
        deadline = time.monotonic() + wait_s
        while mv.status == "PENDING_REGISTRATION" and time.monotonic() < deadline:
            time.sleep(0.5)
            mv = self.client.get_model_version(mv.name, mv.version)
        if mv.status != "READY":
            raise UserError(f"MLflow at {self.location}: {mv.name} v{mv.version} is {mv.status}: {mv.status_message}")
        return mv

    def _existing(self, name: str, version: int) -> ModelVersion:
        found = self.get(name, version)
        if found is None:
            known = ", ".join(str(v.version) for v in self.list(name)) or "none"
            raise UserError(f"no version {name}:{version} in {self.location} (versions: {known}); "
                            "ftp models list shows them")
        return found

    # --- the protocol ---------------------------------------------------------------------------

    def register(self, version: ModelVersion) -> ModelVersion:
        """A new MLflow version from the ftp run's MLflow run; the same run registers once, so a
        resumed run gets its version back."""
        from mlflow.exceptions import MlflowException

        with self._calls():
            existing = self.client.search_model_versions(f"name = {mlflow_run.quoted(version.name)} and "
                                                         f"tags.`{TEXT['run_id']}` = {mlflow_run.quoted(version.run_id)}")
            if existing:
                return self._existing(version.name, int(existing[0].version))
            try:
                self.client.create_registered_model(version.name, description="registered by ftp")
            except MlflowException as exc:
                if _code(exc) != "RESOURCE_ALREADY_EXISTS":
                    raise
            run_id = mlflow_run.find_or_start(self.client, version)
            source = mlflow_run.log_model(self.client, run_id, version)
            fresh = version.model_copy(update={"aliases": [], "archived": False})
            mv = self.client.create_model_version(
                version.name, source, run_id=run_id, tags=encode(fresh), await_creation_for=0,
                description=f"ftp run {version.run_id}: {version.model.describe()} ({version.backend})")
            mv = self._ready(mv)
            self._audit(version.name, "register", int(mv.version), details={
                "run_id": version.run_id, "backend": version.backend, "base_model": version.base_model,
                "mlflow_run_id": run_id})
        return self._existing(version.name, int(mv.version))

    def log_run(self, version: ModelVersion, run_dir: Path) -> None:
        """Log ``run_dir`` (params, metrics by step, data, reports) on the MLflow run that ``version``
        was registered from; the runner's register step calls it after ``register``."""
        with self._calls():
            mv = self.client.get_model_version(version.name, str(version.version))
            mlflow_run.log_run(self.client, mv.run_id, version, run_dir)

    def list(self, name: str | None = None) -> builtins.list[ModelVersion]:
        with self._calls():
            found = builtins.list(self._search(name))
            held = {n: self._holders(n) for n in {mv.name for mv in found}}
            versions = [decode(mv, held[mv.name].get(int(mv.version))) for mv in found]
        return sorted((v for v in versions if v is not None), key=lambda v: (v.name, v.version))

    def _holders(self, name: str) -> dict[int, builtins.list[str]]:
        """version -> its aliases (searches do not always fill a version's aliases)."""
        held: dict[int, builtins.list[str]] = {}
        for alias, number in self.aliases(name).items():
            held.setdefault(number, []).append(alias)
        return held

    def get(self, name: str, version: int | None = None) -> ModelVersion | None:
        with self._calls():
            if version is not None:
                mv = self._missing(self.client.get_model_version, name, str(version))
                return decode(mv) if mv is not None else None
            for mv in self._search(name, newest_first=True):
                if decode(mv) is not None:
                    return self.get(name, int(mv.version))
        return None

    def set_tag(self, name: str, version: int, key: str, value: Any) -> ModelVersion:
        """Set (or, with None, delete) a user tag; keys starting ``ftp.`` or ``mlflow.`` are the lineage's."""
        if key.startswith(OWN):
            raise UserError(f"tag {key!r}: keys starting with 'ftp.' or 'mlflow.' are reserved; pick another")
        with self._calls():
            current = self._existing(name, version)
            if value is None and key not in current.tags:
                return current
            if value is None:
                self.client.delete_model_version_tag(name, str(version), key)
            else:
                text = json.dumps(value, sort_keys=True, default=str)
                if len(text) > LIMIT:
                    raise UserError(f"tag {key!r}: {len(text)} characters; MLflow keeps at most {LIMIT}")
                self.client.set_model_version_tag(name, str(version), key, text)
            self._audit(name, "tag", version, details={"key": key, "value": value, "deleted": value is None})
        return self._existing(name, version)

    def alias(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at; ``latest`` is the highest version and ``v3`` is 3 when it
        exists (reserved in MLflow: read here, never set)."""
        if is_reserved(alias):
            wanted = reserved_version(alias)
            found = self.get(name, wanted)
            return found.version if found is not None else None
        with self._calls():
            mv = self._missing(self.client.get_model_version_by_alias, name, alias)
        return int(mv.version) if mv is not None else None

    def aliases(self, name: str) -> dict[str, int]:
        with self._calls():
            model = self._missing(self.client.get_registered_model, name)
        return {a: int(v) for a, v in sorted((model.aliases if model is not None else {}).items())}

    def set_alias(self, name: str, alias: str, version: int, reason: str = "") -> int | None:
        """Move ``alias`` to ``version`` and log the holder it replaced; setting the alias it already
        has changes nothing and logs nothing. MLflow has no compare-and-set: two moves racing both
        succeed, the last wins, and each logs the holder it read."""
        check_alias(alias)
        rolled_back, why = split_rollback(reason)
        with self._calls():
            if self._existing(name, version).archived:
                raise UserError(f"{name}:{version} is archived; restore it first (ftp models archive "
                                f"{name}:{version} --undo)")
            previous = self.alias(name, alias)
            if previous == version:
                return previous
            self.client.set_registered_model_alias(name, alias, str(version))
            self._audit(name, "rollback" if rolled_back else "alias", version, alias, previous, why)
        return previous

    def delete_alias(self, name: str, alias: str, reason: str = "") -> None:
        with self._calls():
            previous = self.alias(name, alias)
            if previous is None or is_reserved(alias):
                raise UserError(f"{name}@{alias}: no such alias in {self.location}; ftp models show {name} "
                                "lists the aliases")
            self.client.delete_registered_model_alias(name, alias)
            self._audit(name, "unalias", None, alias, previous, reason)

    def archive(self, name: str, version: int, archived: bool = True, reason: str = "") -> ModelVersion:
        """Mark a version as not to be used, or restore it (tag ``ftp.archived``). The checks against
        deployments and aliases are ``ftp.registry.history.archive``'s, shared by every kind."""
        with self._calls():
            current = self._existing(name, version)
            if current.archived == archived:
                return current
            self.client.set_model_version_tag(name, str(version), ARCHIVED, "true" if archived else "false")
            self._audit(name, "archive" if archived else "unarchive", version, reason=reason)
        return self._existing(name, version)

    def history(self, name: str) -> builtins.list[AuditEntry]:
        """Every change ftp made to ``name``, oldest first (from the registered model's audit tags)."""
        with self._calls():
            model = self._missing(self.client.get_registered_model, name)
        tags: dict[str, str] = dict(model.tags) if model is not None else {}
        return [AuditEntry.model_validate_json(tags[key]) for key in sorted(tags) if key.startswith(AUDIT)]


@hookimpl
def ftp_model_registry(kind: str, location: Path) -> MlflowRegistry | None:
    return MlflowRegistry(tracking_uri(location)) if kind == "mlflow" else None
