"""The pipeline file: schema, env expansion, overrides, backend blocks, plugin sections, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import invoke
from pydantic import BaseModel, ConfigDict

from ftp import hookimpl
from ftp.errors import ConfigError, UserError
from ftp.hooks import Hooks
from ftp.config.pipeline_file import load_pipeline
from ftp.types import ConfigSection

BASE = """\
name: demo
data:
  train: data/train.jsonl
model:
  base: builtin:gemma-3-270m
train:
  epochs: 3
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text('{"messages": []}\n', encoding="utf-8")
    return tmp_path


def load(folder: Path, text: str, backend: str = "local", overrides: tuple[str, ...] = (), pm=None):  # noqa: ANN001, ANN201
    from ftp.plugin_manager import get_plugin_manager

    path = folder / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    return load_pipeline(path, backend, Hooks(pm or get_plugin_manager()).catalog(), overrides)


def error_of(folder: Path, text: str, **kw) -> str:  # noqa: ANN003
    with pytest.raises(UserError) as info:
        load(folder, text, **kw)
    return str(info.value)


def test_defaults_come_from_the_field(folder: Path) -> None:
    p = load(folder, BASE)
    s = p.settings
    assert (s.train.method, s.train.batch_size, s.train.resolved_learning_rate()) == ("lora", 8, 2e-4)
    assert (s.train.lora.r, s.train.lora.alpha, s.train.lora.dropout) == (16, 32, 0.05)
    assert s.data.split.ratios == (0.8, 0.1, 0.1) and s.data.split.seed == 42
    assert s.train.model_copy(update={"method": "full"}).resolved_learning_rate() == 2e-5


def test_relative_paths_resolve_against_the_file_not_the_cwd(folder: Path, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    p = load(folder, BASE)
    assert p.settings.data.train == (folder / "data" / "train.jsonl").resolve()
    assert p.settings.registration.store == (folder / ".ftp" / "registry.db").resolve()


def test_unknown_key_names_file_line_key_and_suggests(folder: Path) -> None:
    msg = error_of(folder, BASE.replace("  epochs: 3", "  epocs: 3"))
    assert msg == f"{folder / 'pipeline.yaml'}:7: train.epocs: unknown key; did you mean 'epochs'?"


def test_unknown_top_level_section_suggests(folder: Path) -> None:
    msg = error_of(folder, BASE + "evalute:\n  metrics: [loss]\n")
    assert ":8: evalute: unknown key; did you mean 'evaluate'?" in msg


def test_wrong_type_is_one_line_with_the_value(folder: Path) -> None:
    msg = error_of(folder, BASE.replace("epochs: 3", "epochs: lots"))
    assert ":7: train.epochs:" in msg and "'lots'" in msg and "\n" not in msg


def test_missing_data_file(folder: Path) -> None:
    msg = error_of(folder, BASE.replace("data/train.jsonl", "data/nope.jsonl"))
    assert ":3: data.train: file not found:" in msg and "nope.jsonl" in msg


def test_unknown_backend_lists_the_valid_ones(folder: Path) -> None:
    assert "unknown backend 'lcal'; available: azure, local (did you mean 'local'?)" in error_of(folder, BASE, backend="lcal")


def test_unknown_backend_block_in_the_file(folder: Path) -> None:
    msg = error_of(folder, BASE + "backends:\n  lcoal:\n    devices: cpu\n")
    assert ":9: backends.lcoal: unknown backend; did you mean 'local'?" in msg


def test_bad_key_in_a_backend_block(folder: Path) -> None:
    msg = error_of(folder, BASE + "backends:\n  local:\n    device: cpu\n")
    assert ":10: backends.local.device: unknown key; did you mean 'devices'?" in msg
    msg = error_of(folder, BASE + "backends:\n  local:\n    train:\n      epochz: 1\n")
    assert "backends.local.train.epochz: unknown key; did you mean 'epochs'?" in msg


def test_backend_block_overrides_common_settings(folder: Path, tiny_model_dir: Path) -> None:
    text = BASE + f"backends:\n  local:\n    model: {{base: {tiny_model_dir}}}\n    train: {{epochs: 1}}\n    devices: cpu\n"
    p = load(folder, text)
    assert p.settings.model.base == str(tiny_model_dir)
    assert p.settings.train.epochs == 1
    assert p.settings.train.batch_size == 8  # untouched keys of the section survive the merge
    assert p.backend_settings["devices"] == "cpu"


def test_env_vars_and_defaults(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPOCHS", "5")
    monkeypatch.delenv("BATCH", raising=False)
    p = load(folder, BASE.replace("epochs: 3", "epochs: ${EPOCHS}\n  batch_size: ${BATCH:-4}"))
    assert (p.settings.train.epochs, p.settings.train.batch_size) == (5, 4)


def test_missing_env_var_is_an_error_with_the_fix(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_EPOCHS", raising=False)
    msg = error_of(folder, BASE.replace("epochs: 3", "epochs: ${NOPE_EPOCHS}"))
    assert ":7: train.epochs: environment variable NOPE_EPOCHS is not set; export NOPE_EPOCHS=" in msg


def test_set_overrides_and_their_errors(folder: Path) -> None:
    p = load(folder, BASE, overrides=("train.epochs=1", "train.lora.r=4", "evaluate.metrics=[loss]"))
    assert (p.settings.train.epochs, p.settings.train.lora.r, p.settings.evaluate.metrics) == (1, 4, ["loss"])
    msg = error_of(folder, BASE, overrides=("train.epochs=abc",))
    assert msg.startswith("--set train.epochs=abc: train.epochs:")
    assert "'epochs'" in error_of(folder, BASE, overrides=("train.epoch=1",))
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        load(folder, BASE, overrides=("train.epochs",))


def test_unknown_metric_in_gate_and_evaluate(folder: Path) -> None:
    assert "gate.exact_matc: unknown metric; did you mean 'exact_match'?" in error_of(
        folder, BASE + "gate:\n  exact_matc: {min: 0.5}\n")
    assert "evaluate.metrics.0: unknown metric 'los'; did you mean 'loss'?" in error_of(
        folder, BASE + "evaluate:\n  metrics: [los]\n")


def test_gate_rule_needs_a_threshold(folder: Path) -> None:
    assert "gate.loss: give at least one of" in error_of(folder, BASE + "gate:\n  loss: {}\n")


def test_invalid_yaml_points_at_the_line(folder: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(folder, BASE + "train: [unclosed\n")
    assert info.value.line is not None and "invalid YAML" in str(info.value)


def test_hub_model_ids_are_refused_before_running(folder: Path) -> None:
    from ftp.backends.local import LocalTrainer
    from ftp.config.settings import TrainSettings
    from ftp.types import TrainSpec

    with pytest.raises(UserError, match="ftp never downloads weights"):
        LocalTrainer().preflight(TrainSpec(backend="local", base_model="meta-llama/Llama-3.2-1B", settings=TrainSettings()))


def test_secrets_are_redacted_in_the_resolved_file(folder: Path, monkeypatch: pytest.MonkeyPatch, pm) -> None:  # noqa: ANN001
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        api_key: str = ""
        endpoint: str = ""

    class Plugin:
        @hookimpl
        def ftp_config_sections(self) -> list[ConfigSection]:
            return [ConfigSection(path="notify", model=Settings)]

    pm.register(Plugin(), name="notify-plugin")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "s3cr3t-value")
    text = BASE + "notify:\n  api_key: hunter2\n  endpoint: https://x/?sig=${MY_SERVICE_TOKEN}\n"
    p = load(folder, text, pm=pm)
    assert p.section("notify").api_key == "hunter2"
    resolved = p.resolved_yaml()
    assert "hunter2" not in resolved and "s3cr3t-value" not in resolved and "***" in resolved
    assert "max_new_tokens: auto" in resolved  # a key that merely mentions tokens is no secret


def test_plugin_sections_are_validated_like_core_ones(folder: Path, pm) -> None:  # noqa: ANN001
    class Words(BaseModel):
        model_config = ConfigDict(extra="forbid")
        max_words: int = 200

    class Plugin:
        @hookimpl
        def ftp_config_sections(self) -> list[ConfigSection]:
            return [ConfigSection(path="validate.words", model=Words)]

    pm.register(Plugin(), name="words-plugin")
    p = load(folder, BASE + "validate:\n  words: {max_words: 5}\n", pm=pm)
    assert p.section("validate.words").max_words == 5
    assert p.as_dict()["validate"]["words"] == {"max_words": 5}
    msg = error_of(folder, BASE + "validate:\n  words: {max_wrds: 5}\n", pm=pm)
    assert "validate.words.max_wrds: unknown key; did you mean 'max_words'?" in msg
    msg = error_of(folder, BASE + "validate:\n  wrds: {}\n", pm=pm)
    assert "validate.wrds: no installed validator plugin owns this section; did you mean 'words'?" in msg


@pytest.mark.parametrize("edit, expected", [
    (("epochs: 3", "epocs: 3"), "train.epocs: unknown key; did you mean 'epochs'?"),
    (("epochs: 3", "epochs: many"), "train.epochs:"),
    (("data/train.jsonl", "data/missing.jsonl"), "data.train: file not found"),
])
def test_cli_bad_file_exits_2_with_one_line_and_no_traceback(folder: Path, edit: tuple[str, str], expected: str) -> None:
    path = folder / "pipeline.yaml"
    path.write_text(BASE.replace(*edit), encoding="utf-8")
    for command in (["run", str(path)], ["validate", str(path)], ["run", str(path), "--dry-run"]):
        result = invoke(*command)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.output


def test_cli_unknown_backend_exits_2(folder: Path) -> None:
    (folder / "pipeline.yaml").write_text(BASE, encoding="utf-8")
    result = invoke("run", str(folder / "pipeline.yaml"), "--backend", "nope")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: unknown backend 'nope'; available: azure, local"


def test_debug_shows_the_traceback(folder: Path) -> None:
    (folder / "pipeline.yaml").write_text(BASE.replace("epochs: 3", "epocs: 3"), encoding="utf-8")
    result = invoke("run", str(folder / "pipeline.yaml"), "--debug")
    assert result.exit_code == 2 and "Traceback" in result.stderr


def test_a_gated_metric_must_be_evaluated(folder: Path) -> None:
    msg = error_of(folder, BASE + "evaluate:\n  metrics: [loss]\ngate:\n  exact_match: {min: 0.5}\n")
    assert "gate.exact_match: the gate needs this metric but evaluate.metrics does not compute it; add exact_match" in msg


def test_unknown_chat_template_is_refused_at_load(folder: Path) -> None:
    assert "model.chat_template:" in error_of(folder, BASE.replace("  base: builtin:gemma-3-270m",
                                                                   "  base: builtin:gemma-3-270m\n  chat_template: foo"))


def test_a_base_model_that_needs_a_download_is_located_in_the_file(folder: Path) -> None:
    (folder / "pipeline.yaml").write_text(BASE.replace("builtin:gemma-3-270m", "meta-llama/Llama-3.2-1B"))
    result = invoke("validate", str(folder / "pipeline.yaml"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {folder / 'pipeline.yaml'}:5: model.base: 'meta-llama/Llama-3.2-1B' is not")
