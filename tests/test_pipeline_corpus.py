"""The malformed-pipeline corpus: every file in tests/data/pipelines is refused by ``ftp validate``,
``ftp run --dry-run`` and ``ftp run`` with exit 2 and one line naming file, line and key, never a
traceback, and quickly (an alias bomb used to run for a minute and die of MemoryError)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import invoke, make_examples, write_jsonl

CORPUS = Path(__file__).parent / "data" / "pipelines"
FINITE = "expected a finite number"
YES_NO = "expected a number, got a yes/no value"
DUPLICATE = "duplicate key (first at line"
DEEP = "nesting deeper than 64 levels"
CLEAR_TEXT = "http:// would send the API key and tokens in clear text; use https://"
NOT_A_NAME = "must be the name of the environment variable that holds the key"
MAPPING = "the pipeline file must be a mapping of sections"
SECRET_HIDDEN = "(got a value that looks like a secret; not shown)"

# file -> (line, key or None, a fragment of the message)
CASES: dict[str, tuple[int, str | None, str]] = {
    "alias_bomb.yaml": (7, None, "anchors and aliases expand to more than 100,000 values"),
    "alias_recursive.yaml": (6, None, "an alias refers to a value that contains it"),
    "alias_chain_deep.yaml": (69, None, f"{DEEP} once aliases are followed"),
    "deep_flow.yaml": (6, None, DEEP),
    "deep_flow_mapping.yaml": (6, None, DEEP),
    "deep_block.yaml": (70, None, DEEP),
    "nul_escape_in_path.yaml": (3, "data.train", "contains a NUL character"),
    "nul_byte_raw.yaml": (3, None, "invalid YAML: character #x0000 is not allowed"),
    "nul_in_key.yaml": (7, "train.epo\x00chs", "the key contains a NUL character"),
    "control_char.yaml": (7, None, "invalid YAML: character #x0007 is not allowed"),
    "duplicate_section.yaml": (11, "train", f"{DUPLICATE} 6)"),
    "duplicate_key.yaml": (8, "train.epochs", f"{DUPLICATE} 7)"),
    "duplicate_top_name.yaml": (6, "name", f"{DUPLICATE} 1)"),
    "duplicate_flow_mapping.yaml": (7, "train.lora.r", f"{DUPLICATE} 7)"),
    "duplicate_in_backend.yaml": (9, "backends.local.devices", f"{DUPLICATE} 8)"),
    "duplicate_quoted_key.yaml": (8, "train.epochs", f"{DUPLICATE} 7)"),
    "epochs_inf.yaml": (7, "train.epochs", f"{FINITE}, got inf"),
    "epochs_minus_inf.yaml": (7, "train.epochs", f"{FINITE}, got -inf"),
    "learning_rate_nan.yaml": (7, "train.learning_rate", f"{FINITE}, got nan"),
    "exponent_overflow.yaml": (7, "train.learning_rate", f"{FINITE} (got '1.0e400')"),
    "gate_min_inf.yaml": (9, "gate.exact_match.min", FINITE),
    "epochs_yes.yaml": (7, "train.epochs", YES_NO),
    "batch_size_true.yaml": (7, "train.batch_size", YES_NO),
    "lora_r_false.yaml": (8, "train.lora.r", YES_NO),
    "max_seq_length_on.yaml": (6, "model.max_seq_length", YES_NO),
    "split_seed_bool.yaml": (4, "data.split.seed", YES_NO),
    "ratios_bools.yaml": (4, "data.split.ratios.0", YES_NO),
    "backend_number_bool.yaml": (8, "backends.local.pack_multiple", YES_NO),
    "azure_capacity_bool.yaml": (9, "backends.azure.deployment.capacity", YES_NO),
    "azure_max_cost_inf.yaml": (9, "backends.azure.max_cost", FINITE),
    "huge_integer.yaml": (7, "train.epochs", "a number with 5,000 digits"),
    "long_integer.yaml": (7, "train.batch_size", "a number with 200 digits"),
    "complex_key.yaml": (6, None, "a key must be a name, not a list or a mapping"),
    "python_tag.yaml": (6, None, "invalid YAML: could not determine a constructor for the tag"),
    "unknown_tag.yaml": (6, None, "invalid YAML: could not determine a constructor for the tag '!include'"),
    "two_documents.yaml": (6, None, "invalid YAML: but found another document"),
    "tab_indent.yaml": (7, None, "invalid YAML: found character '\\t' that cannot start any token"),
    "unclosed_quote.yaml": (8, None, "invalid YAML: found unexpected end of stream"),
    "not_utf8.yaml": (7, None, "not UTF-8 text (byte 0xff cannot be decoded); save the file as UTF-8"),
    "top_level_list.yaml": (1, None, MAPPING),
    "top_level_scalar.yaml": (1, None, MAPPING),
    "empty.yaml": (1, None, MAPPING),
    "only_comments.yaml": (1, None, MAPPING),
    "azure_http_endpoint.yaml": (8, "backends.azure.endpoint", CLEAR_TEXT),
    "azure_http_private_ip.yaml": (8, "backends.azure.endpoint", CLEAR_TEXT),
    "azure_management_http.yaml": (9, "backends.azure.management_endpoint", CLEAR_TEXT),
    "azure_key_as_endpoint.yaml": (8, "backends.azure.endpoint", f"must be a URL such as https://RESOURCE.openai.azure.com {SECRET_HIDDEN}"),
    "azure_key_as_api_key_env.yaml": (9, "backends.azure.api_key_env", f"{NOT_A_NAME} (e.g. AZURE_OPENAI_API_KEY), not the key itself {SECRET_HIDDEN}"),
    "azure_api_key_env_not_a_name.yaml": (9, "backends.azure.api_key_env", NOT_A_NAME),
}
PASTED_KEYS = {"azure_key_as_endpoint.yaml": "x7Kp2QmZ9vLr4TnB8wYc3HdF6sJe1Ua5",
               "azure_key_as_api_key_env.yaml": "3f9a0c1d5e7b2a4c6d8e0f1a3b5c7d9e"}


@pytest.fixture
def corpus_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The corpus beside a valid training file, as the working directory."""
    for file in CORPUS.iterdir():
        shutil.copy(file, tmp_path / file.name)
    write_jsonl(tmp_path / "data" / "train.jsonl", make_examples(60))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_corpus_file_has_a_case() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(CASES)


def expected_error(name: str) -> str:
    line, key, fragment = CASES[name]
    return f"error: {name}:{line}: " + (f"{key}: " if key else "") + fragment


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("command", [("validate",), ("run", "--dry-run"), ("run",)])
def test_malformed_pipeline_is_one_line_with_exit_2(corpus_dir: Path, name: str, command: tuple[str, ...]) -> None:
    backend = "azure" if name.startswith("azure_") else "local"
    started = time.monotonic()
    result = invoke(command[0], name, "--backend", backend, *command[1:])
    assert time.monotonic() - started < 10
    assert result.exit_code == 2, result.output + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output + result.stderr
    assert result.stderr.startswith(expected_error(name)), result.stderr
    assert not (corpus_dir / "runs").exists()  # refused before a run directory exists
    if name in PASTED_KEYS:
        assert PASTED_KEYS[name] not in result.output + result.stderr


@pytest.mark.parametrize("name", ["alias_bomb.yaml", "deep_flow.yaml", "huge_integer.yaml", "nul_byte_raw.yaml"])
def test_hostile_files_in_a_real_process(corpus_dir: Path, name: str) -> None:
    """Out of process too: a RecursionError or MemoryError would not be caught by the test's own runner."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ftp", "validate", name], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONFAULTHANDLER": ""})
    assert time.monotonic() - started < 30
    assert proc.returncode == 2 and proc.stderr.startswith(expected_error(name)) and proc.stderr.count("\n") == 1


def test_oversized_pipeline_file_is_refused_unread(corpus_dir: Path) -> None:
    big = corpus_dir / "big.yaml"
    big.write_text("name: x\n" + "# padding\n" * 200_000, encoding="utf-8")
    result = invoke("validate", "big.yaml")
    assert result.exit_code == 2 and "is too large for a pipeline file (at most 1 MiB" in result.stderr


@pytest.mark.parametrize(("assignment", "message"), [
    ("train.epochs=.inf", f"error: --set train.epochs=.inf: train.epochs: {FINITE}, got inf"),
    ("train.epochs=yes", f"error: --set train.epochs=yes: train.epochs: {YES_NO}"),
    ("train.batch_size=1e999", f"error: --set train.batch_size=1e999: train.batch_size: {FINITE} (got '1e999')"),
    ("train.lora=" + "[" * 300, f"error: --set train.lora={'[' * 66}...: train.lora: {DEEP}"),
    ("train.epochs=" + "7" * 5000, "train.epochs: a number with 5,000 digits"),
])
def test_set_values_get_the_same_bounds(corpus_dir: Path, assignment: str, message: str) -> None:
    shutil.copy(CORPUS / "epochs_yes.yaml", corpus_dir / "ok.yaml")
    (corpus_dir / "ok.yaml").write_text((corpus_dir / "ok.yaml").read_text().replace("epochs: yes", "epochs: 1"))
    result = invoke("validate", "ok.yaml", "--set", assignment)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert message in result.stderr, result.stderr


def test_merge_keys_are_not_duplicates(corpus_dir: Path) -> None:
    """``<<: *base`` then a key of its own is YAML's way to override, not a repeated key."""
    from ftp.hooks import default_hooks
    from ftp.config.pipeline_file import load_pipeline

    (corpus_dir / "merge.yaml").write_text(
        "name: merged\ndata: {train: data/train.jsonl}\nmodel: {base: builtin:gemma-3-270m}\n"
        "train: &t {epochs: 2, batch_size: 4}\nbackends:\n  azure:\n    train:\n      <<: *t\n      epochs: 5\n",
        encoding="utf-8")
    loaded = load_pipeline(corpus_dir / "merge.yaml", "azure", default_hooks().catalog())
    assert (loaded.settings.train.epochs, loaded.settings.train.batch_size) == (5, 4)
