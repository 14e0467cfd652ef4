"""The built-in chat templates against each family's published format: what a base model without a
template of its own is trained on must be what the family's instruct models see at inference.

The expected strings are written out from the formats the model cards document (Gemma 3, ChatML as
Qwen uses it, Llama 3, Mistral Instruct, Phi-3), not produced by the code under test.
"""

from __future__ import annotations

from typing import Any

import pytest

from ftp.backends.local.chat import IGNORE, TEMPLATES, answer_spans, chat_format, encode, end_of_turn_id, family_of

SYSTEM, USER, ANSWER, USER2, ANSWER2 = "You sort tickets.", "My order is late.", "shipping", "And now?", "billing"
ONE_TURN = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER},
            {"role": "assistant", "content": ANSWER}]
TWO_TURNS = ONE_TURN + [{"role": "user", "content": USER2}, {"role": "assistant", "content": ANSWER2}]

# family -> (special tokens: bos, eos, turn tokens), one turn with a system text, two turns, generation prompt
FAMILIES: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "gemma": (
        {"bos": "<bos>", "eos": "<eos>", "extra": ["<start_of_turn>", "<end_of_turn>"]},
        f"<bos><start_of_turn>user\n{SYSTEM}\n\n{USER}<end_of_turn>\n<start_of_turn>model\n{ANSWER}<end_of_turn>\n",
        f"<bos><start_of_turn>user\n{SYSTEM}\n\n{USER}<end_of_turn>\n<start_of_turn>model\n{ANSWER}<end_of_turn>\n"
        f"<start_of_turn>user\n{USER2}<end_of_turn>\n<start_of_turn>model\n{ANSWER2}<end_of_turn>\n",
        f"<bos><start_of_turn>user\n{SYSTEM}\n\n{USER}<end_of_turn>\n<start_of_turn>model\n",
    ),
    "chatml": (
        {"bos": None, "eos": "<|endoftext|>", "extra": ["<|im_start|>", "<|im_end|>"]},
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{USER}<|im_end|>\n"
        f"<|im_start|>assistant\n{ANSWER}<|im_end|>\n",
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{USER}<|im_end|>\n"
        f"<|im_start|>assistant\n{ANSWER}<|im_end|>\n<|im_start|>user\n{USER2}<|im_end|>\n"
        f"<|im_start|>assistant\n{ANSWER2}<|im_end|>\n",
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n",
    ),
    "llama3": (
        {"bos": "<|begin_of_text|>", "eos": "<|end_of_text|>",
         "extra": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]},
        f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{SYSTEM}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\n{USER}<|eot_id|>"
        f"<|start_header_id|>assistant<|end_header_id|>\n\n{ANSWER}<|eot_id|>",
        f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{SYSTEM}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\n{USER}<|eot_id|>"
        f"<|start_header_id|>assistant<|end_header_id|>\n\n{ANSWER}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\n{USER2}<|eot_id|>"
        f"<|start_header_id|>assistant<|end_header_id|>\n\n{ANSWER2}<|eot_id|>",
        f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{SYSTEM}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\n{USER}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    "mistral": (
        {"bos": "<s>", "eos": "</s>", "extra": ["[INST]", "[/INST]"]},
        f"<s>[INST] {SYSTEM}\n\n{USER}[/INST] {ANSWER}</s>",
        f"<s>[INST] {SYSTEM}\n\n{USER}[/INST] {ANSWER}</s>[INST] {USER2}[/INST] {ANSWER2}</s>",
        f"<s>[INST] {SYSTEM}\n\n{USER}[/INST]",
    ),
    "phi3": (
        {"bos": None, "eos": "<|endoftext|>", "extra": ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]},
        f"<|system|>\n{SYSTEM}<|end|>\n<|user|>\n{USER}<|end|>\n<|assistant|>\n{ANSWER}<|end|>\n",
        f"<|system|>\n{SYSTEM}<|end|>\n<|user|>\n{USER}<|end|>\n<|assistant|>\n{ANSWER}<|end|>\n"
        f"<|user|>\n{USER2}<|end|>\n<|assistant|>\n{ANSWER2}<|end|>\n",
        f"<|system|>\n{SYSTEM}<|end|>\n<|user|>\n{USER}<|end|>\n<|assistant|>\n",
    ),
}
END_OF_TURN = {"gemma": "<end_of_turn>", "chatml": "<|im_end|>", "llama3": "<|eot_id|>", "mistral": "</s>",
               "phi3": "<|end|>"}


def family_tokenizer(specials: dict[str, Any]) -> Any:
    """A small byte-level BPE tokenizer with one family's special tokens and no chat template of its own."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    named = [t for t in (specials["bos"], specials["eos"]) if t]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [SYSTEM, USER, ANSWER, USER2, ANSWER2, "system user assistant model"]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=named + specials["extra"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=specials["bos"], eos_token=specials["eos"],
                                   additional_special_tokens=specials["extra"])
    fast.chat_template = None
    return fast


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_built_in_template_renders_the_family_format(family: str) -> None:
    specials, one, two, prompt = FAMILIES[family]
    fmt = chat_format(family_tokenizer(specials), "auto")
    assert fmt.name == family  # picked from the vocabulary's turn tokens
    assert fmt.render(ONE_TURN) == one
    assert fmt.render(TWO_TURNS) == two
    assert fmt.render(ONE_TURN[:2], add_generation_prompt=True) == prompt


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_masks_cover_each_answer_and_its_end_of_turn(family: str) -> None:
    specials, _, two, _ = FAMILIES[family]
    fmt = chat_format(family_tokenizer(specials), family)
    text, spans = answer_spans(fmt, TWO_TURNS)
    assert text == two
    trained = [text[a:b] for a, b in spans]
    assert [t.strip().removesuffix("\n") for t in trained] == [f"{ANSWER}{END_OF_TURN[family]}",
                                                               f"{ANSWER2}{END_OF_TURN[family]}"]
    end = end_of_turn_id(fmt)
    assert fmt.tokenizer.convert_ids_to_tokens(end) == END_OF_TURN[family] and end in fmt.stop_ids
    enc = encode(fmt, TWO_TURNS, max_length=512)
    learnt = fmt.tokenizer.decode([t for t, label in zip(enc.input_ids, enc.labels) if label != IGNORE])
    assert SYSTEM not in learnt and USER not in learnt and ANSWER in learnt and END_OF_TURN[family] in learnt


def test_gemma_has_no_system_turn() -> None:
    """The bug that cost 10 points of accuracy: a system message rendered as a second user turn."""
    fmt = chat_format(family_tokenizer(FAMILIES["gemma"][0]), "gemma")
    rendered = fmt.render(ONE_TURN)
    assert rendered.count("<start_of_turn>user") == 1 and "<start_of_turn>system" not in rendered


def test_every_template_is_tested() -> None:
    assert sorted(TEMPLATES) == sorted(FAMILIES)


def test_unknown_vocabulary_falls_back_to_chatml() -> None:
    fmt = family_tokenizer({"bos": "<s>", "eos": "</s>", "extra": []})
    assert family_of(fmt) == "chatml"
