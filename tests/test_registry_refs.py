"""Naming versions (``NAME``, ``NAME:3``, ``NAME@alias``) and where base models come from, parsed once."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftp.config.model_source import model_source
from ftp.errors import UserError
from ftp.plugins.registry_sqlite import SqliteRegistry
from ftp.registry.refs import VersionRef, parse_ref, resolve
from ftp.types import ModelRef, ModelVersion


@pytest.mark.parametrize("text, ref", [("triage", VersionRef("triage")), ("triage:3", VersionRef("triage", version=3)),
                                       ("triage@production", VersionRef("triage", alias="production")),
                                       ("a.b-c_d:12", VersionRef("a.b-c_d", version=12))])
def test_references_parse_and_print_back(text: str, ref: VersionRef) -> None:
    assert parse_ref(text) == ref and str(ref) == text


@pytest.mark.parametrize("text, message", [("triage:x", "the version must be a number from 1, e.g. triage:1"),
                                           ("triage:0", "the version must be a number from 1"),
                                           ("triage@prod:1", "a version or an alias, not both"),
                                           ("", "not a model name"), ("tri age", "not a model name"),
                                           ("triage@", "not an alias")])
def test_malformed_references_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_ref(text)


def version(n: int) -> ModelVersion:
    return ModelVersion(name="triage", version=0, created_at="t", run_id=f"run{n}", backend="local", base_model="b",
                        model=ModelRef(kind="adapter", base="b", backend="local", path=Path(f"m{n}")), data_sha256={},
                        hyperparameters={}, metrics={}, pipeline_sha256="p", code_version="c")


def test_resolving_against_a_registry(tmp_path: Path) -> None:
    reg = SqliteRegistry(tmp_path / "r.db")
    for n in (1, 2):
        reg.register(version(n))
    assert resolve(reg, parse_ref("triage")).run_id == "run2"
    assert resolve(reg, parse_ref("triage:1")).model.path == Path("m1")
    with pytest.raises(UserError, match="no model 'triage:9' in .*r.db; models: triage"):
        resolve(reg, parse_ref("triage:9"))
    with pytest.raises(UserError, match=r"no alias 'production' for triage in .*r\.db \(aliases: none\)"):
        resolve(reg, parse_ref("triage@production"))


def test_model_sources(tmp_path: Path) -> None:
    assert model_source("builtin:gemma-3-270m").builtin == "gemma-3-270m"
    assert model_source("builtin:gemma-3-270m").kind == "builtin" and model_source(str(tmp_path)).kind == "path"
    assert model_source("./model").kind == "path" and model_source("gpt-4o-mini-2024-07-18").kind == "id"
    assert model_source("meta-llama/Llama-3.2-1B").kind == "id" and not model_source("gpt-4o").on_this_machine
