"""The phrasing check (test and validation prompts against training's) and the settings advice it feeds."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke, write_jsonl

from ftp.data.advice import Situation, tuning

THINGS = ["jacket", "lamp", "kettle", "sofa", "bike", "phone", "desk", "scarf", "boots", "tent"]
CITIES = ["Oslo", "Lima", "Porto", "Dakar", "Quito", "Hanoi", "Perth", "Turin"]
# training wordings, and wordings the training file never uses
SEEN = ["Hello, I would like to return the {thing} from order {n} because it arrived broken.",
        "My {thing} from order {n} has not arrived yet, can you tell me where it is?",
        "Please cancel order {n} for the {thing} before it ships to {city}.",
        "I was charged twice for the {thing} on order {n}, please refund one payment."]
NEW = ["Yo, that {thing} (ref {n}) showed up smashed to bits, sending it straight back.",
       "Still waiting on parcel {n}, the {thing}, any clue which depot it is stuck at?",
       "Scrap purchase {n} with the {thing} right now, nothing should leave for {city}.",
       "Your system billed my card two times over the {thing}, ref {n}; reverse the extra."]


def rows(templates: list[str], n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = rng.choice(templates).format(thing=rng.choice(THINGS), n=rng.randint(10000, 99999),
                                            city=rng.choice(CITIES))
        out.append({"messages": [{"role": "system", "content": "Label the customer message."},
                                 {"role": "user", "content": text}, {"role": "assistant", "content": str(i % 4)}]})
    return out


def files(tmp_path: Path, validation: list[str], test: list[str], train_n: int = 400) -> tuple[Path, Path, Path]:
    return (write_jsonl(tmp_path / "train.jsonl", rows(SEEN, train_n, 1)),
            write_jsonl(tmp_path / "validation.jsonl", rows(validation, 60, 2)),
            write_jsonl(tmp_path / "test.jsonl", rows(test, 80, 3)))


def check(train: Path, validation: Path, test: Path) -> dict[str, Any]:
    result = invoke("data", "check", str(train), "--validation", str(validation), "--test", str(test), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def codes(report: dict[str, Any]) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in report["findings"] if f["plugin"] == "ftp.plugins.phrasing"
            or f["code"] in ("novel-test-phrasing", "validation-unlike-test")}


def test_the_statistic_separates_reused_from_new_wordings(tmp_path: Path) -> None:
    reused = check(*files(tmp_path, SEEN, SEEN))
    splits = reused["summaries"]["phrasing"]["splits"]
    assert splits["test"]["novel_share"] < 0.1 and splits["test"]["mean_seen_share"] > 0.7
    assert not codes(reused)
    new = check(*files(tmp_path, SEEN, NEW))
    splits = new["summaries"]["phrasing"]["splits"]
    assert splits["test"]["novel_share"] > 0.9 and splits["test"]["mean_seen_share"] < 0.3
    assert splits["test"]["near_duplicate_share"] == 0 and splits["validation"]["novel_share"] < 0.1
    assert codes(new) == {"novel-test-phrasing": "info", "validation-unlike-test": "warning"}
    summary = new["summaries"]["phrasing"]
    assert summary["train_prompts_indexed"] == 400 and summary["train_stride"] == 1 and not summary["ngrams_capped"]


def test_validation_worded_like_the_test_is_no_warning(tmp_path: Path) -> None:
    report = check(*files(tmp_path, NEW, NEW))
    assert codes(report) == {"novel-test-phrasing": "info"}


def test_near_duplicates_of_training_are_counted(tmp_path: Path) -> None:
    train = rows(SEEN, 200, 1)
    copies = [json.loads(json.dumps(r)) for r in train[:40]]
    for r in copies:  # one word changed: a near duplicate, not an exact one
        r["messages"][1]["content"] = r["messages"][1]["content"].replace("order", "Order no.", 1)
    report = check(write_jsonl(tmp_path / "t.jsonl", train), write_jsonl(tmp_path / "v.jsonl", rows(SEEN, 30, 5)),
                   write_jsonl(tmp_path / "x.jsonl", copies))
    assert report["summaries"]["phrasing"]["splits"]["test"]["near_duplicate_share"] > 0.8


def test_memory_is_bounded_by_a_stride(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ftp.plugins import phrasing

    monkeypatch.setattr(phrasing, "TRAIN_CAP", 100)
    monkeypatch.setattr(phrasing, "EVAL_CAP", 25)
    summary = check(*files(tmp_path, SEEN, NEW))["summaries"]["phrasing"]
    assert summary["train_stride"] == 4 and summary["train_prompts_indexed"] == 100
    assert summary["splits"]["test"]["measured"] == 20 and summary["splits"]["test"]["novel_share"] > 0.9


def test_the_check_stays_off_without_validation_or_test(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", rows(SEEN, 100, 1))
    report = json.loads(invoke("data", "check", str(train), "--json").output)
    assert "phrasing" not in report["summaries"]


def test_ngrams_ignore_case_punctuation_and_digits() -> None:
    from ftp.plugins.phrasing import ngrams, user_text

    assert ngrams("Order 12345 is LATE!") == ngrams("order 9, is late")
    assert len(ngrams("two words")) == 0
    example = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
                            {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
                            {"role": "assistant", "content": "d"}]}
    assert user_text(example) == "a\nc"


def test_tuning_lines() -> None:
    assert tuning(Situation(examples=800)) == []
    novel = tuning(Situation(examples=800, test_novel_share=0.9, validation_novel_share=0.05))
    assert [line.split(":")[0] for line in novel] == ["train.seed", "data.validation", "train.neftune_alpha",
                                                     "train.lora.dropout", "train.epochs", "evidence"]
    assert "+4.2 points [+0.4, +8.3]" in novel[2] and "try and compare" in novel[3]
    assert not any(line.startswith("data.validation") for line in
                   tuning(Situation(examples=800, test_novel_share=0.9, validation_novel_share=0.6)))
    small = tuning(Situation(examples=120))
    assert [line.split(":")[0] for line in small] == ["data.train", "train.epochs", "train.seed"]
    assert "more epochs are not the fix" in small[1] and "few-shot" in small[0]


def test_advise_takes_validation_and_test(tmp_path: Path) -> None:
    train, validation, test = files(tmp_path, SEEN, NEW)
    args = ("advise", str(train), "--validation", str(validation), "--test", str(test), "--prompting-tried")
    text = invoke(*args).output
    assert "settings to consider for this data" in text
    assert "  - train.seed: train 3+ seeds (--set train.seed=N)" in text and "train.neftune_alpha: 5" in text
    assert "data.validation: build it from phrasings held out of training" in text
    out = json.loads(invoke(*args, "--json").output)
    assert out["situation"]["test_novel_share"] == 1.0 and len(out["settings"]) == 6
    plain = json.loads(invoke("advise", str(train), "--prompting-tried", "--json").output)
    assert plain["settings"] == []  # 400 examples and no test file: nothing to change


def test_plan_and_run_print_the_advice(project: Path) -> None:
    text = invoke("plan", "pipeline.yaml").output
    assert "predicted peak" in text and "settings to consider" in text  # 60 examples, 48 to train on
    assert "train.epochs: more epochs are not the fix" in text and "data.train: 48 examples" in text
    events = [json.loads(line) for line in invoke("run", "pipeline.yaml", "--steps", "validate", "--json").output
              .splitlines()]
    assert any(e["event"] == "advice" and "more epochs are not the fix" in e["message"] for e in events)


def test_plan_with_a_novel_test_split(project: Path) -> None:
    write_jsonl(project / "data" / "train.jsonl", rows(SEEN, 400, 1))
    write_jsonl(project / "data" / "validation.jsonl", rows(SEEN, 40, 2))
    write_jsonl(project / "data" / "test.jsonl", rows(NEW, 40, 3))
    pipeline = (project / "pipeline.yaml").read_text().replace(
        "  train: data/train.jsonl\n", "  train: data/train.jsonl\n  validation: data/validation.jsonl\n"
                                       "  test: data/test.jsonl\n")
    (project / "pipeline.yaml").write_text(pipeline)
    lines = [line.strip() for line in invoke("plan", "pipeline.yaml").output.splitlines()]
    assert "- train.lora.dropout: 0.1 - try and compare" in " ".join(lines)
    assert not any("data.train:" in line for line in lines)
