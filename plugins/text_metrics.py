"""Built-in evaluators for free-text answers: token F1, ROUGE-L, chrF, BLEU and the length ratio.

Token F1 and ROUGE-L are means of per-example scores (``Metric.scores``); chrF, BLEU and the length
ratio are corpus metrics, so they carry each example's summable statistics (``Metric.stats``) and the
function from their column sums to the value (``Metric.from_stats``), which is how paired resampling
recomputes them. Words are :func:`ftp.eval.normalize.tokens`: Unicode-aware, CJK per character.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ftp import hookimpl
from ftp.eval.normalize import NormalizeMode, normalize, tokens
from ftp.plugins.metrics import normalize_mode
from ftp.types import EvalRequest, Metric, MetricSpec

CORPUS = ("chrf", "bleu")
FromStats = Callable[[Sequence[float]], float]


def token_f1(prediction: str, reference: str, mode: NormalizeMode = "basic") -> float:
    """F1 of the two token multisets after ``normalize(…, mode)``: partial credit for a partly right
    answer. 1.0 when both are empty (nothing asked, nothing said), 0.0 when only one is."""
    said, wanted = tokens(normalize(prediction, mode)), tokens(normalize(reference, mode))
    if not said or not wanted:
        return float(not said and not wanted)
    common = sum((Counter(said) & Counter(wanted)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(said), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, by the O(len(a)·len(b)) table kept one row at a time."""
    if len(b) > len(a):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0  # row[j-1] of the previous row
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if x == y else max(row[j - 1], above)
            diagonal = above
    return row[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (beta 1) over the casefolded Unicode word tokens: the longest in-order overlap,
    so word order counts where token F1 ignores it. 1.0 when both are empty, 0.0 when only one is."""
    said, wanted = tokens(prediction.casefold()), tokens(reference.casefold())
    if not said or not wanted:
        return float(not said and not wanted)
    lcs = lcs_length(said, wanted)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(said), lcs / len(wanted)
    return 2 * precision * recall / (precision + recall)


def sacrebleu_stats(name: str, predictions: list[str], references: list[str]) -> tuple[list[list[float]], FromStats, str]:
    """Per-example sufficient statistics of sacrebleu's ``CHRF()`` or ``BLEU()``, the function from their
    column sums to the corpus score (0-100, what ``corpus_score`` reports), and the metric's signature.
    These are sacrebleu's own per-segment extraction and scoring, so a sum over a resample of rows
    scores exactly what ``corpus_score`` would on those examples."""
    from sacrebleu.metrics import BLEU, CHRF

    scorer = CHRF() if name == "chrf" else BLEU()
    # An empty split still gets one empty pair scored: it sets the reference count the signature needs.
    rows = scorer._extract_corpus_statistics(predictions or [""], [references or [""]])
    stats = [[float(x) for x in row] for row in rows] if references else []

    def from_stats(sums: Sequence[float]) -> float:
        counts: list[Any] = list(sums)  # sacrebleu annotates ints; float sums of ints score the same
        return float(scorer._compute_score_from_stats(counts).score)

    return stats, from_stats, str(scorer.get_signature())


def length_stats(predictions: list[str], references: list[str]) -> list[list[float]]:
    """Per example ``[answer tokens, reference tokens]``."""
    return [[float(len(tokens(p))), float(len(tokens(r)))] for p, r in zip(predictions, references)]


def length_ratio_from_stats(sums: Sequence[float]) -> float:
    """Answer tokens over reference tokens. With no reference tokens: 1.0 when the answers are empty
    too, else the answer token count (as if the references had one token), so it stays finite."""
    said, wanted = sums[0], sums[1]
    if wanted == 0:
        return 1.0 if said == 0 else float(said)
    return float(said / wanted)


def column_sums(stats: list[list[float]], width: int) -> list[float]:
    return [sum(row[i] for row in stats) for i in range(width)]


@hookimpl
def ftp_metrics() -> list[MetricSpec]:
    return [
        MetricSpec(name="token_f1", description="mean per-example F1 of word-token multisets after evaluate.normalize "
                   "(default basic); Unicode words, CJK per character; 1 when both are empty; 0-1"),
        MetricSpec(name="rouge_l", description="mean per-example ROUGE-L F1 (longest common subsequence of casefolded "
                   "Unicode word tokens, CJK per character); 0-1"),
        MetricSpec(name="chrf", description="sacrebleu CHRF() corpus score (character 6-grams, beta 2, no "
                   "normalisation), 0-100; fair on short answers"),
        MetricSpec(name="bleu", description="sacrebleu BLEU() corpus score (13a tokens, exp smoothing, case kept), "
                   "0-100; near 0 on short answers, prefer chrf there"),
        MetricSpec(name="length_ratio", description="answer tokens / reference tokens over the test split (Unicode "
                   "words); ideal 1.0: below is too short, above too long (gate it with min and max)"),
    ]


def _mean(scores: list[float]) -> float:
    return sum(scores) / len(scores) if scores else 0.0


@hookimpl
def ftp_evaluate(request: EvalRequest) -> list[Metric]:
    wanted = set(request.metrics)
    preds, refs = request.predictions, request.references
    out: list[Metric] = []

    def add(name: str, value: float, **carried: Any) -> None:
        out.append(Metric(name=name, value=value, candidate=request.candidate, n=len(refs), **carried))

    if "token_f1" in wanted:
        mode = normalize_mode(request.settings)
        scores = [token_f1(p, r, mode) for p, r in zip(preds, refs)]
        add("token_f1", _mean(scores), scores=scores, details={"normalize": mode})
    if "rouge_l" in wanted:
        scores = [rouge_l(p, r) for p, r in zip(preds, refs)]
        add("rouge_l", _mean(scores), scores=scores, details={"tokens": "unicode words, CJK per character, casefolded"})
    for name in CORPUS:
        if name in wanted:
            stats, from_stats, signature = sacrebleu_stats(name, preds, refs)
            width = len(stats[0]) if stats else 0
            value = from_stats(column_sums(stats, width)) if stats else 0.0
            add(name, value, stats=stats, from_stats=from_stats, details={"signature": signature})
    if "length_ratio" in wanted:
        stats = length_stats(preds, refs)
        add("length_ratio", length_ratio_from_stats(column_sums(stats, 2)), stats=stats,
            from_stats=length_ratio_from_stats, details={"ideal": 1.0})
    return out
