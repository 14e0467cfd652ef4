"""The fine-tuned model and its base answering in the same batches on a CPU (``backends/local/joint.py``): the same
answers and losses as one candidate at a time, from one decoding loop instead of two, and each case
PEFT cannot route per row answered one candidate at a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import invoke, make_examples, write_jsonl
from test_eval_speed import forwards, predictor


def fresh_copy(ours: object) -> object:
    """A predictor on the same weights with nothing scored yet."""
    return type(ours)(ours.model, ours.fmt, ours.where, ours.max_length, ours.adapter_off)  # type: ignore[attr-defined]


def test_one_batch_answers_and_scores_as_each_candidate_does_alone(tiny_model_dir: Path) -> None:
    examples = make_examples(6, seed=11)
    conversations = [e["messages"][:-1] for e in examples]
    tuned = predictor(tiny_model_dir, adapter=True)
    base = tuned.without_adapter()
    alone_tuned, alone_base = fresh_copy(tuned), fresh_copy(base)
    expected = (alone_tuned.generate_scored(examples, 8), alone_base.generate_scored(examples, 8))  # type: ignore[attr-defined]
    assert expected[0] != expected[1]  # the adapter changes the answers: a mixed-up routing would show

    found = tuned.joint([base])
    assert found is not None
    joint, which = found
    assert which == [0]
    calls = forwards(tuned.model)
    answers = joint.generate_scored(examples, 8)
    assert [a[0] for a in answers] == expected[0] and [a[1] for a in answers] == expected[1]
    assert len(calls) <= 8 + 1  # one decoding loop (at most 8 new tokens) and the scoring pass, not two loops

    loss_calls = forwards(tuned.model)
    assert tuned.loss(examples) == pytest.approx(alone_tuned.loss(examples), rel=1e-5)  # type: ignore[attr-defined]
    assert base.loss(examples) == pytest.approx(alone_base.loss(examples), rel=1e-5)  # type: ignore[attr-defined]
    assert not loss_calls  # both losses came from the joint batch's cache
    assert [a[0] for a in joint.generate(conversations, 8)] == expected[0]


def test_only_predictors_on_the_same_weights_and_routable_adapters_answer_together(tiny_model_dir: Path) -> None:
    from ftp.backends.local.modeling import Placement, causal_lm

    tuned = predictor(tiny_model_dir, adapter=True)
    other = predictor(tiny_model_dir, adapter=True)
    assert tuned.joint([other]) is None  # another copy of the model: its own batch
    assert tuned.joint([tuned]) is None  # the same candidate twice is not two candidates
    assert tuned.joint([other, tuned.without_adapter()]) is not None
    assert tuned.joint([other, tuned.without_adapter()])[1] == [1]  # type: ignore[index]

    plain = predictor(tiny_model_dir)  # no PEFT model: nothing to route
    assert plain.joint([plain.without_adapter()]) is None

    tuned.model.merge_adapter()  # merged into the weights: PEFT cannot route rows past it
    assert tuned.joint([tuned.without_adapter()]) is None
    tuned.model.unmerge_adapter()
    assert tuned.joint([tuned.without_adapter()]) is not None

    on_gpu = type(tuned)(tuned.model, tuned.fmt, Placement("cuda", tuned.where.dtype_name), tuned.max_length)
    assert on_gpu.joint([on_gpu.without_adapter()]) is None  # measured slower on a GPU: one candidate at a time

    causal_lm(tuned.model).get_decoder().layers[0].compile()  # compiled layers would recompile per batch
    assert tuned.joint([tuned.without_adapter()]) is None


def test_a_predictor_that_can_never_join_says_so_before_the_other_candidates_load(tiny_model_dir: Path) -> None:
    from ftp.backends.local.modeling import Placement

    tuned = predictor(tiny_model_dir, adapter=True)
    assert tuned.can_join() and not predictor(tiny_model_dir).can_join()  # no PEFT model: nothing to route
    on_gpu = type(tuned)(tuned.model, tuned.fmt, Placement("cuda", tuned.where.dtype_name), tuned.max_length)
    assert not on_gpu.can_join()  # so evaluation on a GPU loads the base only after the fine-tuned model answered
    tuned.model.merge_adapter()
    assert not tuned.can_join()


def test_ftp_eval_answers_the_fine_tuned_model_and_its_base_together(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(2)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                           LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    adapter = tmp_path / "adapter"
    model.save_pretrained(str(adapter))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(adapter))  # as a trained folder holds it
    test = write_jsonl(tmp_path / "test.jsonl", make_examples(10, seed=4))
    result = invoke("eval", str(adapter), "--data", str(test), "--report", str(tmp_path / "r"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert report["timing"]["base"]["with"] == ["fine-tuned", "base"]
    assert report["timing"]["fine-tuned"]["seconds"] == report["timing"]["base"]["seconds"]

    alone = predictor(tiny_model_dir, adapter=False)
    from peft import PeftModel

    tuned = type(alone)(PeftModel.from_pretrained(alone.model, str(adapter)), alone.fmt, alone.where, 64)
    examples = make_examples(10, seed=4)
    conversations = [e["messages"][:-1] for e in examples]
    answers = {c: [row[c] for row in report["examples"]] for c in ("fine-tuned", "base")}
    assert answers["fine-tuned"] == tuned.generate(conversations, report["decoding"]["max_new_tokens"])
    assert answers["base"] == tuned.without_adapter().generate(conversations, report["decoding"]["max_new_tokens"])
