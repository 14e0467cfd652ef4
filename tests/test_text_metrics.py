"""Text metrics: normalisation, JSON by value, Unicode tokens, token F1, ROUGE-L, chrF, BLEU, length ratio.

Expected values are worked out by hand in the comments; chrF and BLEU are also checked against
sacrebleu's own corpus score, whole and on a resample with repeated rows."""

from __future__ import annotations

import math

import pytest

from ftp.errors import UserError
from ftp.eval.normalize import answers_match, normalize, tokens
from ftp.hooks import default_hooks
from ftp.plugins import metrics, text_metrics
from ftp.plugins.text_metrics import lcs_length, length_ratio_from_stats, rouge_l, sacrebleu_stats, token_f1
from ftp.types import EvalRequest, Metric

MODEL = {"kind": "base", "base": "m", "backend": "local"}

# Real sentences (English, German, French) with plausible system outputs: some exact, some partial.
HYPS = ["The cat sat on the mat.", "Der Hund läuft schnell über die Straße.", "Il fait beau aujourd'hui.",
        "A quick brown fox jumps over the lazy dog.", "I have two apples and one pear.", "",
        "She reads books every evening after dinner.", "The meeting was moved to Friday afternoon.",
        "Paris is the capital of France.", "He did not want to go to school today."]
REFS = ["The cat is sitting on the mat.", "Der Hund rennt schnell über die Straße.", "Il fait très beau aujourd'hui.",
        "The quick brown fox jumps over the lazy dog.", "I have two apples and a pear.", "Nothing to say.",
        "Every evening after dinner she reads books.", "The meeting has been moved to Friday.",
        "Paris is the capital of France.", "He didn't want to go to school."]


def request(predictions: list[str], references: list[str], names: list[str],
            settings: dict | None = None) -> EvalRequest:
    return EvalRequest(candidate="fine-tuned", model=MODEL, examples=[], predictions=predictions,
                       references=references, metrics=names, settings=settings or {})


def by_name(found: list[Metric]) -> dict[str, Metric]:
    return {m.name: m for m in found}


# --- normalisation and exact match ---


def test_the_three_modes_normalise_as_documented() -> None:
    assert normalize("  The  Cat\n sat! ", "none") == "  The  Cat\n sat! "
    assert normalize("  The  Cat\n sat! ", "basic") == "the cat sat!"
    assert normalize("  The  Cat\n sat! ", "squad") == "cat sat"
    # Unicode punctuation (¿ « » ’ 「 」 。) goes too, not only ASCII; "ça" keeps its "a"
    assert normalize("¿Qué? «ça» a l’été", "squad") == "qué ça lété"
    assert normalize("「猫」。", "squad") == "猫"
    # articles are whole words only
    assert normalize("Anthem of the theatre, an apple", "squad") == "anthem of theatre apple"


def test_squad_drops_punctuation_and_articles_where_basic_does_not() -> None:
    assert answers_match("The cat!", "cat", "squad")
    assert not answers_match("The cat!", "cat", "basic")
    assert not answers_match("the cat", "The cat", "none")


def test_basic_casefolds_beyond_lowercase() -> None:
    assert "straße".lower() != "strasse"  # lower() alone would miss it
    assert answers_match("Straße", "STRASSE", "basic")
    assert not answers_match("Straße", "STRASSE", "none")


@pytest.mark.parametrize("pred, ref, mode, same", [
    ('{"a": 1, "b": "x"}', ' {"b": "x",\n "a": 1} ', "basic", True),  # key order and whitespace
    ('{"a": 1, "b": "x"}', '{"b": "x", "a": 1}', "none", False),  # none compares the raw text
    ('{"a": "X"}', '{"a": "x"}', "basic", False),  # values are case-sensitive
    ('{"a": "X"}', '{"a": "x"}', "squad", False),
    ('{"ok": true}', '{"ok": 1}', "basic", False),  # true is not 1
    ('{"n": 1}', '{"n": 1.0}', "basic", True),  # the same JSON number
    ("[1, 2]", "[2, 1]", "basic", False),  # arrays keep their order
    ('[{"k": [1, {"z": null}]}]', '[ {"k":[1,{"z":null}]} ]', "squad", True),
    ("42", "42.0", "basic", False),  # bare numbers are text
])
def test_json_objects_and_arrays_compare_by_value(pred: str, ref: str, mode: str, same: bool) -> None:
    assert answers_match(pred, ref, mode) is same  # type: ignore[arg-type]


def test_exact_match_reads_evaluate_normalize_and_says_so() -> None:
    preds, refs = ["The cat!", "Straße", '{"b": 2, "a": 1}'], ["cat", "STRASSE", '{"a": 1, "b": 2}']
    got = {mode: by_name(metrics.ftp_evaluate(request(preds, refs, ["exact_match"],
                                                      {"evaluate": {"normalize": mode}})))["exact_match"]
           for mode in ("none", "basic", "squad")}
    assert [got[m].scores for m in ("none", "basic", "squad")] == [[0, 0, 0], [0, 1, 1], [1, 1, 1]]
    assert got["basic"].value == pytest.approx(2 / 3) and got["basic"].n == 3
    assert got["none"].details == {"normalize": "none", "json_by_value": False}
    assert got["squad"].details == {"normalize": "squad", "json_by_value": True}
    default = by_name(metrics.ftp_evaluate(request(preds, refs, ["exact_match"], {"train": {}})))["exact_match"]
    assert default.details["normalize"] == "basic" and default.scores == [0, 1, 1]
    assert metrics.exact_match_scores(preds, refs, "squad") == [1.0, 1.0, 1.0]
    with pytest.raises(UserError, match="evaluate.normalize"):
        metrics.ftp_evaluate(request(preds, refs, ["exact_match"], {"evaluate": {"normalize": "loose"}}))


# --- tokens ---


def test_tokens_are_unicode_words_and_cjk_characters() -> None:
    assert tokens("Die Brücke über den Fluß!") == ["Die", "Brücke", "über", "den", "Fluß"]
    assert tokens("我喜欢猫") == ["我", "喜", "欢", "猫"]
    assert tokens("猫がすき, I like cats") == ["猫", "が", "す", "き", "I", "like", "cats"]
    assert tokens("고양이 좋아") == ["고", "양", "이", "좋", "아"]
    assert tokens("हिन्दी भाषा") == ["हिन्दी", "भाषा"]  # vowel signs and virama stay inside the word
    assert tokens("cafe\u0301 x_1") == ["café", "x_1"]  # decomposed accent composed first
    assert tokens(" ... ") == []


# --- token F1 ---


def test_token_f1_by_hand() -> None:
    # basic: [the cat sat] vs [a cat sat down]: 2 common, P 2/3, R 2/4, F1 = 2·(1/3)/(7/6) = 4/7
    assert token_f1("the cat sat", "a cat sat down", "basic") == pytest.approx(4 / 7)
    # squad: [cat sat] vs [cat sat down]: P 1, R 2/3, F1 = (4/3)/(5/3) = 4/5
    assert token_f1("the cat sat", "a cat sat down", "squad") == pytest.approx(4 / 5)
    # multisets: [a a b] vs [a b b]: common a, b = 2; P = R = 2/3
    assert token_f1("a a b", "a b b", "none") == pytest.approx(2 / 3)
    assert token_f1("", "", "basic") == 1.0
    assert token_f1("", "cat", "basic") == 0.0 and token_f1("cat", "!", "squad") == 0.0
    # Chinese per character: [我 喜 欢 猫] vs [我 喜 欢 狗]: 3 common of 4 each
    assert token_f1("我喜欢猫", "我喜欢狗", "basic") == pytest.approx(3 / 4)


# --- ROUGE-L ---


def test_lcs_by_hand() -> None:
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # e.g. BCBA
    assert lcs_length(list("abc"), []) == 0
    assert lcs_length(list("xyz"), list("xyz")) == 3


@pytest.mark.parametrize("pred, ref, expected", [
    # 6 vs 7 tokens (the cat is on the mat / the cat is sitting on the mat): LCS 6, P 1, R 6/7 -> 12/13
    ("The cat is on the mat", "the cat is sitting on the mat", 12 / 13),
    # word order counts: [b a] vs [a b]: LCS 1, P = R = 1/2
    ("b a", "a b", 1 / 2),
    # French: 5 vs 4 tokens, LCS 4 (le café était bon): P 4/5, R 1 -> 8/9
    ("le café était très bon", "le café était bon", 8 / 9),
    # Chinese per character: LCS 3 (我喜欢) of 4 and 4 -> 3/4 (an [a-z0-9] tokenizer gives 0)
    ("我喜欢猫", "我喜欢狗", 3 / 4),
    # German: [die brücke über den fluss] vs [die brücke ist über dem fluss]: LCS 4, P 4/5, R 4/6 -> 8/11
    ("Die Brücke über den Fluss", "die Brücke ist über dem Fluss", 8 / 11),
    # Russian: [кошка сидит] vs [кошка спит]: LCS 1 -> 1/2
    ("Кошка сидит", "кошка спит", 1 / 2),
    ("", "", 1.0),
    ("", "something", 0.0),
])
def test_rouge_l_by_hand(pred: str, ref: str, expected: float) -> None:
    assert rouge_l(pred, ref) == pytest.approx(expected)


# --- chrF and BLEU ---


def test_bleu_and_chrf_by_hand() -> None:
    # BLEU [a b c d] vs [a b c d e]: every n-gram precision 100, brevity penalty exp(1 - 5/4)
    stats, from_stats, signature = sacrebleu_stats("bleu", ["a b c d"], ["a b c d e"])
    assert from_stats(stats[0]) == pytest.approx(100 * math.exp(-0.25))
    assert stats[0][:2] == [4.0, 5.0] and signature.startswith("nrefs:1|") and "tok:13a" in signature
    # chrF "ab" vs "abc": orders 1, 2 have n-grams on both sides; P = 1, 1; R = 2/3, 1/2; mean P 1, R 7/12;
    # F_beta=2 = 5·(7/12) / (4 + 7/12) = 7/11
    stats, from_stats, signature = sacrebleu_stats("chrf", ["ab"], ["abc"])
    assert from_stats(stats[0]) == pytest.approx(100 * 7 / 11)
    assert signature.startswith("nrefs:1|") and "nc:6" in signature


@pytest.mark.parametrize("name", ["chrf", "bleu"])
def test_stats_reproduce_sacrebleus_corpus_score_whole_and_resampled(name: str) -> None:
    from sacrebleu.metrics import BLEU, CHRF

    def corpus(hyps: list[str], refs: list[str]) -> float:
        return float((CHRF() if name == "chrf" else BLEU()).corpus_score(hyps, [refs]).score)

    stats, from_stats, _ = sacrebleu_stats(name, HYPS, REFS)
    assert len(stats) == len(HYPS)
    whole = corpus(HYPS, REFS)
    assert 20 < whole < 95  # a real, partial score, not a degenerate 0 or 100
    assert from_stats([sum(col) for col in zip(*stats)]) == pytest.approx(whole, abs=1e-9)
    picks = [3, 3, 0, 7, 7, 7, 5, 1, 9, 1]  # a bootstrap replicate: rows repeated, some left out
    resampled = from_stats([sum(col) for col in zip(*(stats[i] for i in picks))])
    assert resampled == pytest.approx(corpus([HYPS[i] for i in picks], [REFS[i] for i in picks]), abs=1e-9)
    assert resampled != pytest.approx(whole)


def test_corpus_metrics_survive_empty_answers_and_an_empty_split() -> None:
    names = ["chrf", "bleu", "length_ratio", "token_f1", "rouge_l"]
    empty = by_name(text_metrics.ftp_evaluate(request([], [], names)))
    assert {m.value for n, m in empty.items() if n != "length_ratio"} == {0.0}
    assert all(m.n == 0 for m in empty.values()) and empty["bleu"].stats == []
    assert empty["bleu"].details["signature"].startswith("nrefs:1|")
    blank = by_name(text_metrics.ftp_evaluate(request(["", "x"], ["", ""], names)))
    assert blank["chrf"].value == 0.0 and blank["bleu"].value == 0.0 and len(blank["bleu"].stats or []) == 2
    assert blank["token_f1"].scores == [1.0, 0.0]


# --- length ratio ---


def test_length_ratio_by_hand() -> None:
    # answers 3 + 1 = 4 tokens ("the cat sat", "猫"), references 4 + 4 = 8 ("a cat sat down", "我喜欢狗") -> 0.5
    found = by_name(text_metrics.ftp_evaluate(request(["the cat sat", "猫"], ["a cat sat down", "我喜欢狗"],
                                                      ["length_ratio"])))
    ratio = found["length_ratio"]
    assert ratio.value == 0.5 and ratio.stats == [[3.0, 4.0], [1.0, 4.0]] and ratio.details == {"ideal": 1.0}
    assert ratio.from_stats is not None and ratio.from_stats([2.0, 8.0]) == 0.25  # a resample: the first row twice
    assert length_ratio_from_stats([0.0, 0.0]) == 1.0 and length_ratio_from_stats([3.0, 0.0]) == 3.0


# --- through the hook ---


def test_the_hook_computes_only_what_was_asked_with_what_each_metric_carries() -> None:
    hooks = default_hooks()
    specs = hooks.metrics()
    assert {"token_f1", "rouge_l", "chrf", "bleu", "length_ratio"} <= set(specs)
    assert "0-100" in specs["bleu"].description and "ideal 1" in specs["length_ratio"].description
    names = ["token_f1", "rouge_l", "chrf", "bleu", "length_ratio", "exact_match"]
    found = by_name(hooks.evaluate(request(HYPS, REFS, names, {"evaluate": {"normalize": "squad"}})))
    assert set(found) == set(names)
    assert {m.plugin for n, m in found.items() if n != "exact_match"} == {"ftp.plugins.text_metrics"}
    assert all(m.candidate == "fine-tuned" and m.n == len(REFS) for m in found.values())
    for name in ("token_f1", "rouge_l"):
        m = found[name]
        assert m.scores is not None and len(m.scores) == len(REFS) and m.stats is None
        assert m.value == pytest.approx(sum(m.scores) / len(m.scores))
    assert found["token_f1"].details == {"normalize": "squad"}
    assert found["token_f1"].scores[8] == 1.0 and found["token_f1"].scores[5] == 0.0  # identical; empty answer
    for name in ("chrf", "bleu", "length_ratio"):
        m = found[name]
        assert m.scores is None and m.stats is not None and len(m.stats) == len(REFS) and m.from_stats is not None
        assert m.from_stats([sum(col) for col in zip(*m.stats)]) == m.value
    assert found["bleu"].details["signature"].startswith("nrefs:1|case:mixed")
    only = hooks.evaluate(request(HYPS, REFS, ["rouge_l"]))
    assert [m.name for m in only] == ["rouge_l"]
