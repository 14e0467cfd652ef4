"""What makes ``ftp eval`` cost no more than a hand-written generate loop: the test loss scored from the
cache generation filled (the same numbers as a pass of its own), and a tokenizer read once per process."""

from __future__ import annotations

import gc
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import make_examples

MULTI_TURN = {"messages": [{"role": "user", "content": "Ticket 1: my car is red."},
                           {"role": "assistant", "content": '{"colour": "red"}'},
                           {"role": "user", "content": "Ticket 2: my cup is blue."},
                           {"role": "assistant", "content": '{"colour": "blue"}'}]}  # trains an answer inside the prompt
TOO_LONG = {"messages": [{"role": "user", "content": "Ticket 3: " + "my lamp is green and broken " * 12},
                         {"role": "assistant", "content": '{"colour": "green"}'}]}  # cut off at max_seq_length


def predictor(model_dir: Path, adapter: bool = False) -> Any:
    """The tiny model as the local backend answers with it; ``adapter``: with random LoRA weights on it
    (not the no-op PEFT starts from), so the fine-tuned and the base model answer differently."""
    from ftp.backends.local.predictor import LocalPredictor, load_predictor
    from ftp.types import ModelRef

    loaded = load_predictor(ModelRef(kind="base", base=str(model_dir), backend="local"), None, {"devices": "cpu"},
                            {"max_seq_length": 64})
    if not adapter:
        return loaded
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    model = get_peft_model(loaded.model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    return LocalPredictor(model, loaded.fmt, loaded.where, loaded.max_length)


def forwards(model: Any) -> list[int]:
    """Counts the decoder's forward passes from now on (a hook on the real model; nothing is replaced)."""
    from ftp.backends.local.modeling import causal_lm

    calls: list[int] = []
    causal_lm(model).get_decoder().register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_the_loss_scored_while_answering_is_the_loss_of_its_own_pass(tiny_model_dir: Path) -> None:
    examples = make_examples(10, seed=3)
    tuned = predictor(tiny_model_dir, adapter=True)
    for ours in (tuned, tuned.without_adapter()):
        fresh = type(ours)(ours.model, ours.fmt, ours.where, ours.max_length, ours.adapter_off)
        plain = [a for i in range(0, 10, 4) for a in fresh.generate([e["messages"][:-1] for e in examples[i:i + 4]], 8)]
        scored = [a for i in range(0, 10, 4) for a in ours.generate_scored(examples[i:i + 4], 8)]
        assert scored == plain  # answering is unchanged: the same generate call, its cache kept
        calls = forwards(ours.model)
        loss = ours.loss(examples)
        assert not calls  # every example was scored on the way: no pass over the prompts again
        assert loss == pytest.approx(fresh.loss(examples), rel=1e-5)
    assert tuned.loss(examples) != pytest.approx(tuned.without_adapter().loss(examples), rel=1e-5)  # two models


def test_examples_that_are_not_their_prompt_continued_are_scored_the_usual_way(tiny_model_dir: Path) -> None:
    examples = [*make_examples(4, seed=5), MULTI_TURN, TOO_LONG]
    ours = predictor(tiny_model_dir)
    fresh = predictor(tiny_model_dir)
    assert ours.generate_scored(examples, 6) == fresh.generate([e["messages"][:-1] for e in examples], 6)
    assert [len(keys) for keys, _, _ in ours.scored] == [4]  # the multi-turn and the cut-off example left out
    calls = forwards(ours.model)
    assert ours.loss(examples) == pytest.approx(fresh.loss(examples), rel=1e-5)
    assert len(calls) == 1  # one batch for the two left out


def test_a_cache_a_sliding_window_could_have_cut_is_not_continued(tiny_model_dir: Path) -> None:
    from ftp.backends.local.modeling import causal_lm

    examples = make_examples(4, seed=6)
    ours, fresh = predictor(tiny_model_dir), predictor(tiny_model_dir)
    causal_lm(ours.model).config.sliding_window = 8  # shorter than a prompt: a windowed layer would have dropped columns
    ours.generate_scored(examples, 6)
    assert ours.scored == []
    assert ours.loss(examples) == pytest.approx(fresh.loss(examples), rel=1e-5)


def test_a_group_scored_together_counts_only_when_all_of_it_is_asked_for(tiny_model_dir: Path) -> None:
    examples = make_examples(8, seed=9)
    ours = predictor(tiny_model_dir)
    ours.generate_scored(examples[:4], 6)
    ours.generate_scored(examples[4:], 6)
    fresh = predictor(tiny_model_dir)
    for asked in (examples[:4], examples[2:6], examples[4:] + examples[:4], examples + examples[:1]):
        assert ours.loss(asked) == pytest.approx(fresh.loss(asked), rel=1e-5)
    assert ours.loss([]) is None


def test_answering_leaves_the_tokenizer_as_it_was_and_pads_on_the_left(tiny_model_dir: Path) -> None:
    ours = predictor(tiny_model_dir)
    side = ours.fmt.tokenizer.padding_side
    prompts = [e["messages"][:-1] for e in make_examples(3, seed=2)]
    prompts[1][0]["content"] += " and it has been broken for a very long time now"
    together = ours.generate(prompts, 6)
    assert together == [ours.generate([p], 6)[0] for p in prompts]
    assert ours.fmt.tokenizer.padding_side == side


def test_identical_tokenizer_files_are_read_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    from ftp.backends.local.modeling import TOKENIZER_FILES, load_tokenizer, shared_tokenizer, tokenizer_fingerprint

    copy = tmp_path / "adapter"  # what an adapter folder holds: a copy of its base model's tokenizer files
    copy.mkdir()
    for name in TOKENIZER_FILES:
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, copy / name)
    first = shared_tokenizer(tiny_model_dir)
    assert shared_tokenizer(copy) is first and tokenizer_fingerprint(copy) == tokenizer_fingerprint(tiny_model_dir)
    text = 'Ticket 7: my boat is purple. {"colour": "purple"}<|im_end|>'
    assert first(text)["input_ids"] == load_tokenizer(copy)(text)["input_ids"]
    assert first.pad_token_id == load_tokenizer(copy).pad_token_id

    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    (copy / "chat_template.jinja").write_text(template)
    other = shared_tokenizer(copy)  # one file differs: its own tokenizer, with its own template
    assert other is not first and other.chat_template == template
    assert tokenizer_fingerprint(tmp_path) is None  # no tokenizer.json there

    key = tokenizer_fingerprint(tiny_model_dir)
    del first, other
    gc.collect()
    from ftp.backends.local import modeling

    assert key not in {k for k, ref in modeling._SHARED.items() if ref() is not None}  # freed once unused


class Scoring:
    """A predictor that says which of its methods answered."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def generate(self, conversations: Sequence[list[dict[str, Any]]], max_new_tokens: int) -> list[str]:
        self.calls.append("generate")
        return ["" for _ in conversations]

    def generate_scored(self, examples: Sequence[dict[str, Any]], max_new_tokens: int) -> list[str]:
        self.calls.append("generate_scored")
        return [ex["messages"][-2]["content"] for ex in examples]

    def loss(self, examples: Sequence[Any]) -> float | None:
        return None

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_the_session_lets_a_predictor_score_while_it_answers_when_the_loss_is_wanted() -> None:
    from test_eval_session import Quiet

    from ftp.eval.answers import generate_batched

    examples = make_examples(5)
    conversations = [e["messages"][:-1] for e in examples]
    ours = Scoring()
    assert generate_batched(ours, conversations, 8, 2, Quiet(), "x", examples) == [c[-1]["content"] for c in conversations]
    assert ours.calls == ["generate_scored"] * 3
    ours.calls.clear()
    generate_batched(ours, conversations, 8, 2, Quiet(), "x")
    assert ours.calls == ["generate"] * 3
