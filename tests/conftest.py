"""Shared fixtures: a tiny random Llama model with a real tokenizer, a chat dataset, a pipeline file,
and a plugin manager that tests can register inline plugins on (and that is undone afterwards).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
THINGS = ["car", "house", "shirt", "apple", "door", "lamp", "boat", "chair", "cup", "bike"]


def make_examples(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """A narrow task a tiny model can learn: name the colour in the sentence, as JSON."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        colour, thing = rng.choice(COLOURS), rng.choice(THINGS)
        text = f"Ticket {i}: my {thing} is {colour} and it is broken."
        rows.append({"messages": [{"role": "user", "content": text},
                                  {"role": "assistant", "content": json.dumps({"colour": colour})}]})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def build_tiny_llama(out: Path, corpus: list[str], specials: list[str], vocab_size: int, max_positions: int,
                     chat_template: str | None = None, **tokens: Any) -> Path:
    """A 2-layer Llama with random weights (seed 0) and a byte-level BPE tokenizer trained on ``corpus``;
    ``tokens`` names its pad/bos/eos (unk, additional special) tokens, as PreTrainedTokenizerFast takes them."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=tokens.get("unk_token")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **tokens)
    if chat_template:
        fast.chat_template = chat_template
    fast.save_pretrained(out)
    import torch

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                         pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                         tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with random weights and a byte-level BPE tokenizer trained on the task's text."""
    corpus = [json.dumps(r) for r in make_examples(300)] + ["user assistant system " + " ".join(COLOURS + THINGS)]
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), corpus,
                            ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"], 400, 256, CHATML,
                            pad_token="<pad>", bos_token="<s>", eos_token="</s>")


PIPELINE = """\
name: tiny
data:
  train: data/train.jsonl
  provenance: synthetic
model:
  base: {model}
  max_seq_length: 64
train:
  method: lora
  epochs: 2
  batch_size: 8
  learning_rate: 3e-3
  lora: {{r: 8, alpha: 16, dropout: 0.0}}
evaluate:
  metrics: [loss, exact_match]
  max_new_tokens: 12
review:
  samples: 2
register:
  name: tiny-model
deploy:
  smoke_test: 0  # a tiny model trained 2 epochs does not answer in the data's format yet
backends:
  local:
    devices: cpu
"""


@pytest.fixture
def project(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a pipeline file and 60 examples; the CWD, so runs/ lands inside it."""
    write_jsonl(tmp_path / "data" / "train.jsonl", make_examples(60))
    (tmp_path / "pipeline.yaml").write_text(PIPELINE.format(model=tiny_model_dir), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FTP_RUNS_DIR", raising=False)
    monkeypatch.setenv("FTP_CACHE_DIR", str(tmp_path / ".cache"))  # token caches stay out of the user's home
    return tmp_path


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test builds its plugin manager anew from the environment it set."""
    from ftp.plugin_manager import reset_plugin_manager

    for var in ("FTP_LOAD_PLUGINS", "FTP_DISABLE_PLUGINS", "FTP_TRACE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture
def pm() -> Any:
    """The process-wide plugin manager; plugins a test registers are removed afterwards (llm's pattern)."""
    from ftp.plugin_manager import get_plugin_manager

    manager = get_plugin_manager()
    before = {name for name, _ in manager.list_name_plugin()}
    yield manager
    for name, plugin in list(manager.list_name_plugin()):
        if name not in before:
            manager.unregister(plugin)


def reference_run(project: Path, *args: str) -> Path:
    """The same pipeline run in a sibling folder (a baseline to compare with); returns its run directory."""
    import os
    import shutil

    other = project / "reference"
    other.mkdir()
    shutil.copytree(project / "data", other / "data")
    shutil.copy(project / "pipeline.yaml", other / "pipeline.yaml")
    os.chdir(other)
    try:
        result = invoke("run", "pipeline.yaml", *args)
        assert result.exit_code == 0, result.stderr
    finally:
        os.chdir(project)
    return next((other / "runs" / "tiny").iterdir())


def train_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The training rows of a run's metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "train_loss" in r]


class TrainCtx:
    """A minimal StepContext for calling the local trainer directly: records events and metric rows."""

    def __init__(self, folder: Path, backend: dict[str, Any]) -> None:
        from ftp.run.progress import QuietReporter

        self.run_id, self.run_dir, self.backend_settings = "t", folder, backend
        self.events: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self.reporter = QuietReporter()
        self.reporter.event = lambda kind, **kw: self.events.append(kind)  # type: ignore[method-assign]

    def log_metrics(self, row: dict[str, Any]) -> None:
        self.rows.append(row)


def train_directly(model_dir: Path, folder: Path, train: dict[str, Any], backend: dict[str, Any] | None = None,
                   examples: int = 12) -> tuple[TrainCtx, Any, Any]:
    """The local trainer on ``examples`` chat examples without a pipeline run: (context, result, trained)."""
    from ftp.backends.local.training import train as local_train
    from ftp.data.files import dataset_ref
    from ftp.config.settings import PipelineSettings
    from ftp.types import TrainRequest

    backend = backend or {"devices": "cpu"}
    data = write_jsonl(folder / "train.jsonl", make_examples(examples))
    settings = PipelineSettings(name="t", data={"train": str(data)}, model={"base": str(model_dir)},
                                train={"early_stopping": None, **train})
    request = TrainRequest(backend="local", base_model=str(model_dir), settings=settings.train, model=settings.model,
                           train=dataset_ref(data, "train"),
                           validation=None, output_dir=folder / "model", backend_settings=backend)
    ctx = TrainCtx(folder, backend)
    result, trained = local_train(request, ctx)  # type: ignore[arg-type]
    return ctx, result, trained


def invoke(*args: str, **kwargs: Any) -> Any:
    """Run the CLI in-process and return click's result."""
    from click.testing import CliRunner

    from ftp.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kwargs)


@pytest.fixture
def fake_azure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stateful fake of Azure's HTTP APIs (tests/azure/fake_azure.py) behind ``responses``, with the
    environment a real set-up has (endpoint, API key, a service principal for Entra ID) pointing at it,
    and a clock that records the backend's waits instead of sleeping. Nothing reaches the network: a
    request the fake does not know fails with a connection error.
    """
    import sys

    import responses

    sys.path.insert(0, str(Path(__file__).parent / "azure"))
    from fake_azure import ENDPOINT, FakeAzure, FakeClock, sign_in_as_service_principal
    from ftp.backends.azure import auth, http

    fake = FakeAzure()
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", fake.api_key)
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "00000000-1111-2222-3333-444444444444")
    sign_in_as_service_principal(monkeypatch, fake.client_secret)
    fake.clock = FakeClock()
    monkeypatch.setattr(http, "CLOCK", fake.clock)
    auth.reset_credential()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps)
        yield fake
    auth.reset_credential()
    sys.path.remove(str(Path(__file__).parent / "azure"))


@pytest.fixture
def quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of examples/quickstart as the working directory (its registry and runs land there)."""
    import shutil

    target = tmp_path / "quickstart"
    source = Path(__file__).resolve().parents[1] / "examples" / "quickstart"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".ftp", "runs"))
    monkeypatch.chdir(target)
    monkeypatch.delenv("FTP_RUNS_DIR", raising=False)
    monkeypatch.setenv("QUICKSTART_EPOCHS", "2")
    monkeypatch.setenv("FTP_CACHE_DIR", str(tmp_path / ".cache"))
    return target
