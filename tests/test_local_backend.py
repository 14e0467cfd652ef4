"""The local backend's pieces: chat templates and answer-only masks, the loss, loading from disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftp.backends.local.chat import IGNORE, TEMPLATES, chat_format, encode
from ftp.backends.local.modeling import load_tokenizer
from ftp.errors import UserError

CONVO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Colour of my red car?"},
         {"role": "assistant", "content": "red"}, {"role": "user", "content": "And the sky?"},
         {"role": "assistant", "content": "blue"}]


def trained_text(tok, enc) -> str:  # noqa: ANN001
    return tok.decode([t for t, label in zip(enc.input_ids, enc.labels) if label != IGNORE])


def test_only_answers_and_their_end_of_turn_are_trained(tiny_model_dir: Path) -> None:
    tok = load_tokenizer(tiny_model_dir)
    fmt = chat_format(tok)
    assert fmt.name == "tokenizer"
    enc = encode(fmt, CONVO, 256)
    assert trained_text(tok, enc) == "red<|im_end|>\nblue<|im_end|>\n"
    assert tok.convert_tokens_to_ids("<|im_end|>") in fmt.stop_ids


def test_weight_zero_turns_are_not_trained(tiny_model_dir: Path) -> None:
    fmt = chat_format(load_tokenizer(tiny_model_dir))
    convo = [dict(m) for m in CONVO]
    convo[2]["weight"] = 0
    assert trained_text(fmt.tokenizer, encode(fmt, convo, 256)) == "blue<|im_end|>\n"


def test_truncation_is_reported(tiny_model_dir: Path) -> None:
    fmt = chat_format(load_tokenizer(tiny_model_dir))
    enc = encode(fmt, CONVO, 8)
    assert enc.truncated and len(enc.input_ids) == 8 and enc.trained_tokens == 0


def test_default_template_when_the_tokenizer_has_none(tiny_model_dir: Path) -> None:
    tok = load_tokenizer(tiny_model_dir)
    tok.chat_template = None
    fmt = chat_format(tok)
    assert fmt.name == "chatml" and fmt.template == TEMPLATES["chatml"]
    with pytest.raises(UserError, match="has no chat template"):
        chat_format(tok, "tokenizer")
    with pytest.raises(UserError, match="unknown template 'llama9'"):
        chat_format(tok, "llama9")


def test_gemma_template_is_prefix_consistent(tiny_model_dir: Path) -> None:
    fmt = chat_format(load_tokenizer(tiny_model_dir), "gemma")
    text = fmt.render(CONVO[1:3])
    assert text.endswith("<start_of_turn>model\nred<end_of_turn>\n")
    assert text.startswith(fmt.render(CONVO[1:2], add_generation_prompt=True))


def test_answer_loss_matches_the_plain_loss(tiny_model_dir: Path) -> None:
    """The logits_to_keep shortcut must give exactly the loss of full logits with masked labels."""
    import torch
    from transformers import AutoModelForCausalLM

    from ftp.backends.local.loss import answer_loss
    from ftp.backends.local.modeling import collate

    fmt = chat_format(load_tokenizer(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = [encode(fmt, CONVO, 256), encode(fmt, CONVO[1:3], 256)]
    batch = collate(rows, fmt.tokenizer.pad_token_id, "cpu")
    summed, n = answer_loss(model, batch)
    with torch.no_grad():
        plain = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
    assert n == sum(r.trained_tokens for r in rows)
    assert torch.allclose(summed / n, plain, atol=1e-5)


def test_the_chunked_loss_has_the_plain_loss_and_gradients(tiny_model_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Logits are made a few positions at a time and recomputed in the backward pass: same numbers."""
    import torch
    from transformers import AutoModelForCausalLM

    from ftp.backends.local import loss as loss_module
    from ftp.backends.local.loss import answer_loss
    from ftp.backends.local.modeling import collate

    fmt = chat_format(load_tokenizer(tiny_model_dir))
    rows = [encode(fmt, CONVO, 256), encode(fmt, CONVO[1:3], 256)]
    batch = collate(rows, fmt.tokenizer.pad_token_id, "cpu")

    def grads(chunk_elements: int) -> tuple[float, list]:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        monkeypatch.setattr(loss_module, "CHUNK_ELEMENTS", chunk_elements)
        summed, _ = answer_loss(model, batch)
        summed.backward()
        return float(summed), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    vocab = AutoModelForCausalLM.from_pretrained(tiny_model_dir).config.vocab_size
    whole, g1 = grads(2**30)
    chunked, g2 = grads(3 * vocab)  # three positions per chunk
    assert batch.positions.numel() > 6  # so there really are several chunks
    assert abs(whole - chunked) < 1e-4 * abs(whole) and len(g1) == len(g2) > 0
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g1, g2))


def test_adapter_reloads_from_disk_with_its_template(project: Path) -> None:
    """A resumed run evaluates from disk: the saved adapter must answer exactly like the in-memory one."""
    from conftest import invoke

    from ftp.backends.local.predictor import load_predictor
    from ftp.types import ModelRef

    assert invoke("run", "pipeline.yaml", "--quiet", "--steps", "validate,split,train").exit_code == 0
    run_dir = next((project / "runs" / "tiny").iterdir())
    ref = ModelRef(kind="adapter", base=str(project.parent), backend="local", path=run_dir / "model")
    import yaml

    base = yaml.safe_load((project / "pipeline.yaml").read_text())["model"]["base"]
    ref = ref.model_copy(update={"base": base})
    predictor = load_predictor(ref, None, {"devices": "cpu"}, {"max_seq_length": 64})
    assert predictor.fmt.name == "tokenizer"
    prompt = [[{"role": "user", "content": "Ticket 1: my car is red and it is broken."}]]
    first = predictor.generate(prompt, 6)
    assert first == predictor.generate(prompt, 6) and isinstance(first[0], str)
    assert predictor.loss([{"messages": prompt[0] + [{"role": "assistant", "content": '{"colour": "red"}'}]}]) > 0


class CharTokenizer:
    """What transformers < 5.24 makes of the Gemma 3 GGUF tokenizer: one token per character."""

    def tokenize(self, text: str) -> list[str]:
        return list(text)


def test_a_broken_gguf_tokenizer_conversion_is_refused() -> None:
    from ftp.backends.local.models import check_tokenizer
    from ftp.errors import FtpError

    with pytest.raises(FtpError, match=r"tokenizer converted by transformers .* is broken.*transformers>=5.24"):
        check_tokenizer(CharTokenizer(), "builtin:gemma-3-270m")


def test_unknown_builtin_models_are_named() -> None:
    from ftp.backends.local.models import check_base_model

    with pytest.raises(UserError, match="unknown built-in model 'gemma-9'; built-ins: builtin:gemma-3-270m"):
        check_base_model("builtin:gemma-9")


def test_a_packed_batch_has_the_loss_of_the_same_examples_unpacked(tiny_model_dir: Path) -> None:
    """Padding-free packing: positions restart per example and attention never crosses an example."""
    import torch
    from transformers import AutoModelForCausalLM

    from conftest import make_examples
    from ftp.backends.local.loss import answer_loss
    from ftp.backends.local.modeling import collate, collate_packed

    fmt = chat_format(load_tokenizer(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = [encode(fmt, ex["messages"], 256, mode) for ex, mode in
            zip(make_examples(6), ["assistant", "all", "assistant", "all", "assistant", "assistant"])]
    with torch.no_grad():
        padded, n1 = answer_loss(model, collate(rows, fmt.tokenizer.pad_token_id, "cpu"))
        packed, n2 = answer_loss(model, collate_packed(rows, "cpu"))
        one_by_one = sum(float(answer_loss(model, collate([r], fmt.tokenizer.pad_token_id, "cpu"))[0]) for r in rows)
    assert n1 == n2
    assert abs(float(packed) - float(padded)) < 1e-3 and abs(float(packed) - one_by_one) < 1e-3
    # without restarting positions (one long example) the loss differs: the test can fail
    batch = collate_packed(rows, "cpu")
    batch.position_ids = None
    with torch.no_grad():
        crossed, _ = answer_loss(model, batch)
    assert abs(float(crossed) - float(packed)) > 1e-3


def test_a_packed_row_rounded_up_keeps_its_loss(tiny_model_dir: Path) -> None:
    """The filler that rounds a packed row up to a multiple is its own example and never trained."""
    import torch
    from transformers import AutoModelForCausalLM

    from conftest import make_examples
    from ftp.backends.local.loss import answer_loss
    from ftp.backends.local.modeling import collate_packed

    fmt = chat_format(load_tokenizer(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = [encode(fmt, ex["messages"], 256) for ex in make_examples(3)]
    plain, rounded = collate_packed(rows, "cpu"), collate_packed(rows, "cpu", fmt.tokenizer.pad_token_id, 64)
    assert rounded.input_ids.size(1) % 64 == 0 and rounded.input_ids.size(1) > plain.input_ids.size(1)
    assert rounded.tokens == plain.tokens and rounded.trained == plain.trained
    with torch.no_grad():
        assert abs(float(answer_loss(model, rounded)[0]) - float(answer_loss(model, plain)[0])) < 1e-3
