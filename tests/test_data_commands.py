"""``ftp advise`` and ``ftp data split``, and the advice ``ftp run`` gives when fine-tuning is premature."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import invoke, make_examples, write_jsonl

from ftp.data.advice import Situation, advise

CORPUS = Path(__file__).parent / "data" / "corpus"


@pytest.mark.parametrize("situation, technique, fine_tune", [
    (Situation(examples=500, needs_fresh_knowledge=True, prompting_tried=True), "RAG", False),
    (Situation(examples=500, needs_citations=True, prompting_tried=True), "RAG with grounding and citations", False),
    (Situation(examples=30, prompting_tried=True), "few-shot prompting", False),
    (Situation(examples=500), "prompting first (system instructions + few-shot)", False),
    (Situation(examples=500, prompting_tried=True, narrow_task=False), "RAG or a larger model with better prompting", False),
    (Situation(examples=80, prompting_tried=True, needs_format=True), "LoRA/QLoRA fine-tuning (prototype)", True),
    (Situation(examples=500, prompting_tried=True, needs_format=True), "LoRA/QLoRA fine-tuning", True),
    (Situation(examples=80_000, prompting_tried=True), "full fine-tuning (or LoRA with a higher rank)", True),
    (Situation(examples=200_000, domain_corpus=True), "continued pre-training", True),
])
def test_the_decision_framework(situation: Situation, technique: str, fine_tune: bool) -> None:
    advice = advise(situation)
    assert (advice.technique, advice.fine_tune) == (technique, fine_tune)
    assert advice.reasons


def test_advise_reads_the_data(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", make_examples(120))
    out = json.loads(invoke("advise", str(data), "--prompting-tried", "--needs-format", "--json").output)
    assert out["situation"]["examples"] == 120 and out["fine_tune"] is True
    assert out["technique"] == "LoRA/QLoRA fine-tuning" and "$" in out["cost_and_time"]
    text = invoke("advise", str(CORPUS / "thirty_examples.jsonl")).output
    assert text.startswith("recommended: few-shot prompting (do not fine-tune yet)")


def distinct_examples(n: int) -> list[dict]:
    """Inputs with nothing in common, so no two are near-duplicates and the ratios come out exact."""
    import random

    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(5000)]
    return [{"messages": [{"role": "user", "content": " ".join(rng.sample(vocab, 12))},
                          {"role": "assistant", "content": "ok"}]} for _ in range(n)]


def test_data_split_writes_three_files_and_a_manifest(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", distinct_examples(100))
    result = invoke("data", "split", str(data), "--out", str(tmp_path / "out"), "--ratios", "0.7,0.2,0.1", "--json")
    assert result.exit_code == 0, result.stderr
    split = json.loads(result.output)
    assert [split[p]["examples"] for p in ("train", "validation", "test")] == [70, 20, 10]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["ratios"] == [0.7, 0.2, 0.1] and manifest["files"]["test"]["examples"] == 10
    again = invoke("data", "split", str(data), "--out", str(tmp_path / "again"), "--ratios", "0.7,0.2,0.1")
    assert (tmp_path / "again" / "test.jsonl").read_bytes() == (tmp_path / "out" / "test.jsonl").read_bytes()
    assert "sha256" in again.output


def test_data_split_refuses_bad_input(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", make_examples(20))
    bad = invoke("data", "split", str(data), "--out", str(tmp_path / "o"), "--ratios", "0.9,0.2,0.1")
    assert bad.exit_code == 2 and "sum to 1" in bad.stderr
    broken = invoke("data", "split", str(CORPUS / "several_problems.jsonl"), "--out", str(tmp_path / "o"))
    assert broken.exit_code == 2 and "ftp data check" in broken.stderr
    missing = invoke("data", "split", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o"))
    assert missing.exit_code == 2 and "file not found" in missing.stderr


def test_run_warns_when_the_data_says_fine_tuning_is_premature(project: Path) -> None:
    write_jsonl(project / "data" / "train.jsonl", make_examples(30))
    result = invoke("run", "pipeline.yaml", "--steps", "validate", "--json")
    events = [json.loads(line) for line in result.output.splitlines()]
    advice = [e for e in events if e["event"] == "warning" and e["message"].startswith("advice:")]
    assert advice and "few-shot prompting" in advice[0]["message"]


def test_azure_lengths_use_o200k_when_its_file_is_here_else_a_labelled_estimate(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from ftp.backends.azure.tokens import tiktoken_counter

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    assert tiktoken_counter() is None
    data = write_jsonl(tmp_path / "d.jsonl", make_examples(12))
    out = json.loads(invoke("data", "check", str(data), "--backend", "azure", "--json").output)
    assert out["summaries"]["length"]["tokenizer"].startswith("estimate") and not out["summaries"]["length"]["exact"]
    assert out["summaries"]["length"]["limit"] == 65_536


def test_the_cookbook_count_with_an_encoding() -> None:
    from ftp.backends.azure.tokens import TiktokenCounter

    class Chars:  # one token per character
        def encode(self, text: str, disallowed_special: tuple = ()) -> list[int]:
            return list(range(len(text)))

    example = {"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi", "name": "b"}]}
    # 3 + (3 + len("user") + len("hello")) + (3 + len("assistant") + len("hi") + len("b") + 1)
    assert TiktokenCounter(Chars()).count([example]) == [3 + 12 + 3 + 9 + 2 + 1 + 1]
