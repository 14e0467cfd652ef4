"""The LLM judge (``evaluate.judge``): a model behind an OpenAI-compatible endpoint grades the answers.

- **Pointwise** (``judge_score``, an evaluator): the judge sees the conversation, the reference answer
  and one candidate's answer, and returns ``{"reason", "score", "pass"}`` with ``score`` an integer
  from 1 (wrong) to 5 (as good as the reference). The metric is the mean score (1-5 scale) over the
  examples judged; ``details["pass_rate"]`` is the share the judge passed.
- **Pairwise** (``judge_preference``, a comparison): the fine-tuned model's answer against each
  baseline's, every example judged in both presentation orders; a verdict that changes with the order
  is a tie (position bias). The value is (wins - losses) / judged, with a paired bootstrap interval and
  an exact sign test (two-sided binomial on wins vs losses, ties left out).

The rubric is reference-guided: the judge is shown the reference answer as the standard of
correctness. Verdicts the judge could not give (malformed after the retries, failed calls) are
``judge_error``: reported and left out of the denominator, never scored 0.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import ValidationError

from ftp import hookimpl
from ftp.config.settings import JudgeSettings
from ftp.data.files import message_text
from ftp.errors import UserError
from ftp.plugins.judge_client import Judge, Verdict, parse_score, parse_winner, sha256
from ftp.types import Comparison, EvalRequest, Example, Metric, MetricSpec, ScoredTable

CANDIDATE = "fine-tuned"

SYSTEM = ("You are an impartial judge of an AI assistant's answers. Grade strictly by the rubric, using the "
          "reference answer as the standard of correctness. Reply with one JSON object and nothing else.")

POINTWISE = """Rubric: {rubric}

<conversation>
{conversation}
</conversation>

<reference>
{reference}
</reference>

<answer>
{answer}
</answer>

Grade the answer against the reference answer under the rubric, on a scale of 1 to 5: 5 = correct and \
complete, as good as the reference; 4 = correct with minor flaws; 3 = partly correct; 2 = mostly wrong; \
1 = wrong or no answer. "pass" is true when the answer is acceptable.
Reply with only this JSON object: {{"reason": "<one or two sentences>", "score": <1-5>, "pass": <true|false>}}"""

PAIRWISE = """Rubric: {rubric}

<conversation>
{conversation}
</conversation>

<reference>
{reference}
</reference>

<answer_1>
{first}
</answer_1>

<answer_2>
{second}
</answer_2>

Which answer is better under the rubric, judged against the reference answer? Do not let the order or \
the length of the answers sway you. Say "tie" when they are equally good or equally bad.
Reply with only this JSON object: {{"reason": "<one or two sentences>", "winner": "1" | "2" | "tie"}}"""

SCORE_SCHEMA: dict[str, Any] = {"name": "judge_score", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["reason", "score", "pass"],
    "properties": {"reason": {"type": "string"}, "score": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
                   "pass": {"type": "boolean"}}}}
WINNER_SCHEMA: dict[str, Any] = {"name": "judge_preference", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["reason", "winner"],
    "properties": {"reason": {"type": "string"}, "winner": {"type": "string", "enum": ["1", "2", "tie"]}}}}


def judge_settings(settings: dict[str, Any]) -> JudgeSettings | None:
    """``evaluate.judge`` of the pipeline dict, validated; None when the file sets no judge."""
    raw = (settings.get("evaluate") or {}).get("judge")
    if not raw:
        return None
    try:
        return JudgeSettings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"evaluate.judge.{where}: {first['msg']}") from None


def template_sha256(template: str, rubric: str) -> str:
    """The cache's and the report's name for "this prompt": system prompt, template and rubric."""
    return sha256("\n\x00".join([SYSTEM, template, rubric]))


def prompt_messages(example: Example | None) -> list[dict[str, Any]]:
    """The conversation the answer replies to: the example's messages without the reference answer."""
    messages = list((example or {}).get("messages") or [])
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    return [m for m in messages if isinstance(m, dict)]


def render_conversation(messages: list[dict[str, Any]]) -> str:
    return "\n\n".join(f"{m.get('role', 'user')}: {message_text(m.get('content'))}" for m in messages)


def candidate_first(index: int, seed: int) -> bool:
    """Whether the fine-tuned answer is shown first in example ``index``'s first judgement: the first
    bit of sha256("{seed}:{index}"), so anyone can reconstruct the order from the report."""
    return hashlib.sha256(f"{seed}:{index}".encode()).digest()[0] % 2 == 0


def _details(judge: Judge, s: JudgeSettings, template: str, errors: int, judged: int, mode: str) -> dict[str, Any]:
    """What every judge result carries: counts, the judge's identity, the prompt's hashes, warnings."""
    details: dict[str, Any] = {"judge_errors": errors, "n_judged": judged, "judge": s.model,
                               "rubric_sha256": sha256(s.rubric), "template_sha256": template_sha256(template, s.rubric),
                               "mode": mode, "calls": judge.stats.calls, "cached": judge.stats.cached}
    warnings = [f"{errors} verdict(s) are judge_error, left out of the denominator"] if errors else []
    if trouble := judge.warning():
        warnings.append(trouble)
    if warnings:
        details["warning"] = "; ".join(warnings)
    return details


# --- pointwise ---


def score_one(judge: Judge, s: JudgeSettings, example: Example | None, reference: str, answer: str) -> Verdict:
    conversation = prompt_messages(example)
    user = POINTWISE.format(rubric=s.rubric, conversation=render_conversation(conversation), reference=reference,
                            answer=answer)
    shown = {"mode": "pointwise", "conversation": conversation, "reference": reference, "answers": [answer]}
    return judge.ask([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}], shown,
                     SCORE_SCHEMA, parse_score)


def judge_scores(request: EvalRequest, s: JudgeSettings) -> Metric:
    """``judge_score`` of one candidate: the mean 1-5 score over the examples the judge could grade."""
    judge = Judge(s, template_sha256(POINTWISE, s.rubric))
    count = min(len(request.predictions), len(request.references), s.max_examples or len(request.references))
    verdicts = [score_one(judge, s, request.examples[i] if i < len(request.examples) else None,
                          request.references[i], request.predictions[i]) for i in range(count)]
    scores = [v.parsed["score"] for v in verdicts if v.parsed is not None]
    passes = [v.parsed["pass"] for v in verdicts if v.parsed is not None]
    errors = count - len(scores)
    details = _details(judge, s, POINTWISE, errors, len(scores), "pointwise")
    details["scale"] = "1-5"
    details["pass_rate"] = sum(passes) / len(passes) if passes else None
    details["per_example"] = [
        {"index": i, "verdict": "judged" if v.parsed else "judge_error", "score": (v.parsed or {}).get("score"),
         "pass": (v.parsed or {}).get("pass"), "reason": (v.parsed or {}).get("reason", v.error), "raw": v.raw}
        for i, v in enumerate(verdicts)]
    complete = errors == 0 and count == len(request.references)
    return Metric(name="judge_score", value=sum(scores) / len(scores) if scores else float("nan"),
                  candidate=request.candidate, n=len(scores), scores=scores if complete else None, details=details)


# --- pairwise ---


def side(verdict: Verdict, first_is_ours: bool) -> str:
    """Which candidate one ordered verdict prefers: "candidate", "baseline", "tie" or "judge_error"."""
    if verdict.parsed is None:
        return "judge_error"
    winner = verdict.parsed["winner"]
    if winner == "tie":
        return "tie"
    return "candidate" if (winner == "1") == first_is_ours else "baseline"


def preference(judge: Judge, s: JudgeSettings, example: Example | None, reference: str, ours: str, theirs: str,
               ours_first: bool) -> tuple[str, bool, list[Verdict]]:
    """One example judged in both orders, ``ours_first`` deciding the first: (verdict, the two mapped
    verdicts agree, the two raw verdicts). A verdict that changes with the order is a tie."""
    conversation = prompt_messages(example)
    mapped: list[str] = []
    verdicts: list[Verdict] = []
    for first_is_ours in (ours_first, not ours_first):
        first, second = (ours, theirs) if first_is_ours else (theirs, ours)
        user = PAIRWISE.format(rubric=s.rubric, conversation=render_conversation(conversation),
                               reference=reference, first=first, second=second)
        shown = {"mode": "pairwise", "conversation": conversation, "reference": reference, "answers": [first, second]}
        verdict = judge.ask([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}], shown,
                            WINNER_SCHEMA, parse_winner)
        verdicts.append(verdict)
        mapped.append(side(verdict, first_is_ours))
    if "judge_error" in mapped:
        return "judge_error", False, verdicts
    return (mapped[0] if mapped[0] == mapped[1] else "tie"), mapped[0] == mapped[1], verdicts


def bootstrap_interval(values: list[float], resamples: int, seed: int, confidence: float) -> tuple[float, float]:
    """Percentile interval of the mean of per-example values (+1 win, 0 tie, -1 loss), examples resampled."""
    import numpy as np

    if not values:
        return float("nan"), float("nan")
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial test of wins against losses at p = 0.5 (ties left out): 1.0 when none."""
    if wins + losses == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(wins, wins + losses, 0.5, alternative="two-sided").pvalue)


def compare_pair(s: JudgeSettings, table: ScoredTable, baseline: str) -> Comparison:
    """``judge_preference`` of the fine-tuned model over ``baseline`` on the same test examples."""
    judge = Judge(s, template_sha256(PAIRWISE, s.rubric))
    ours, theirs = table.predictions[CANDIDATE], table.predictions[baseline]
    count = min(len(ours), len(theirs), len(table.references), s.max_examples or len(ours))
    rows, values, agree = [], [], 0
    for i in range(count):
        example = table.examples[i] if i < len(table.examples) else None
        first = candidate_first(i, table.seed)
        verdict, consistent, raw = preference(judge, s, example, table.references[i], ours[i], theirs[i], first)
        rows.append({"index": i, "verdict": verdict, "candidate_first": first, "raw": [v.raw for v in raw],
                     **({"error": next(v.error for v in raw if v.parsed is None)} if verdict == "judge_error" else {})})
        if verdict != "judge_error":
            values.append({"candidate": 1.0, "baseline": -1.0, "tie": 0.0}[verdict])
            agree += consistent
    wins, losses = values.count(1.0), values.count(-1.0)
    ties, judged = len(values) - wins - losses, len(values)
    low, high = bootstrap_interval(values, table.resamples, table.seed, table.confidence)
    details = _details(judge, s, PAIRWISE, count - judged, judged, "pairwise")
    details.update({
        "win_rate": (wins + ties / 2) / judged if judged else None,
        "position_consistency": agree / judged if judged else None,
        "mean_length": {CANDIDATE: sum(len(a) for a in ours[:count]) / count if count else 0.0,
                        baseline: sum(len(a) for a in theirs[:count]) / count if count else 0.0},
        "per_example": rows})
    return Comparison(
        metric="judge_preference", candidate=CANDIDATE, baseline=baseline,
        difference=(wins - losses) / judged if judged else float("nan"), low=low, high=high,
        confidence=table.confidence, n=judged, p_value=sign_test(wins, losses) if judged else None,
        test="sign_test_exact", wins=wins, ties=ties, losses=losses, resamples=table.resamples, seed=table.seed,
        candidate_value=details["win_rate"], baseline_value=(losses + ties / 2) / judged if judged else None,
        method=(f"LLM judge {s.model}, both orders (order-dependent verdicts are ties); paired bootstrap, "
                f"{table.resamples} resamples; exact sign test"),
        details=details)


# --- hooks ---


@hookimpl
def ftp_metrics() -> list[MetricSpec]:
    return [
        MetricSpec(name="judge_score", description="LLM judge's mean score (1-5) of the answer against the "
                                                   "reference, over the examples judged (evaluate.judge)"),
        MetricSpec(name="judge_preference", description="LLM judge's pairwise preference of the fine-tuned "
                   "answer over the baseline's: (wins - losses) / judged, both orders (evaluate.judge)"),
    ]


@hookimpl
def ftp_evaluate(request: EvalRequest) -> list[Metric]:
    s = judge_settings(request.settings)
    if s is None or ("judge_score" not in request.metrics and s.mode != "pointwise"):
        return []
    if not request.references or not request.predictions:
        return []
    return [judge_scores(request, s)]


@hookimpl
def ftp_compare(table: ScoredTable) -> list[Comparison]:
    s = judge_settings(table.settings)
    wanted = "judge_preference" in ((table.settings.get("evaluate") or {}).get("metrics") or [])
    if s is None or (s.mode != "pairwise" and not wanted) or CANDIDATE not in table.predictions:
        return []
    baselines = [c for c in table.candidates if c != CANDIDATE and c in table.predictions]
    if not baselines or not table.references:
        return []
    return [compare_pair(s, table, b) for b in baselines]
