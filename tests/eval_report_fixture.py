"""A realistic evaluation report folder, as ftp.eval.files writes it (see the helpers' eval-files notes):
a ticket-routing task whose answers are JSON objects ``{"team", "priority"}``, 30 test examples, the
fine-tuned model against the base model (the champion not evaluated), with every number computed from
the answers below: per-example scores, accuracy / macro-F1 with a confusion matrix that has
``__invalid__``, per-field accuracy, paired intervals, McNemar and sign-flip p-values, a pairwise judge
comparison, a human review summary and the run's loss curves.

``build()`` returns the payloads (eval.json, the examples.jsonl rows, loss_curve.json) for tests that
want them in memory; ``make_report(tmp)`` writes them as a run directory and returns its path.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

TEAMS = ["billing", "bug", "account"]
PRIORITIES = ["low", "high"]
INVALID = "__invalid__"
SCRIPT = "<script>alert(1)</script>"
TICKETS = {
    "billing": ["I was charged twice for invoice {i}.", "The refund for order {i} never arrived.",
                "Why did my plan price go up this month?", "Please send a VAT receipt for payment {i}."],
    "bug": ["The export button crashes the app (build {i}).", "Search returns nothing since the update.",
            "Images fail to upload on Android, error {i}.", "The dashboard shows last week's numbers."],
    "account": ["I cannot reset my password.", "Please merge my two accounts, ids {i} and {i}1.",
                "How do I change the email on my account?", "My account was locked after 3 attempts."],
}
SYSTEM = "Route the support ticket. Answer with JSON: {\"team\": billing|bug|account, \"priority\": low|high}."
SEED, RESAMPLES, CONFIDENCE = 42, 1000, 0.95
FT_ERRORS = {4: "priority", 7: "script", 11: "team", 19: "priority", 23: "team"}
PLUGINS = {"exact_match": "ftp.plugins.metrics", "field_accuracy": "ftp.plugins.extraction_metrics",
           "json_parse_rate": "ftp.plugins.extraction_metrics", "accuracy": "ftp.plugins.classification_metrics",
           "macro_f1": "ftp.plugins.classification_metrics"}


def answer(team: str, priority: str) -> str:
    return json.dumps({"team": team, "priority": priority})


def other(values: list[str], value: str) -> str:
    return values[(values.index(value) + 1) % len(values)]


def cases() -> list[dict[str, Any]]:
    """The 30 test examples with the reference and each model's answer."""
    out = []
    for i in range(30):
        team, priority = TEAMS[i % 3], PRIORITIES[(i // 3) % 2]
        prompt = [{"role": "system", "content": SYSTEM},
                  {"role": "user", "content": TICKETS[team][(i // 3) % 4].format(i=1000 + i)}]
        error = FT_ERRORS.get(i)
        tuned = {None: answer(team, priority), "priority": answer(team, other(PRIORITIES, priority)),
                 "team": answer(other(TEAMS, team), priority), "script": SCRIPT}[error]
        base = [answer(team, priority), f"Sure! This looks like a {team} issue, probably {priority} priority.",
                answer(other(TEAMS, team), priority), json.dumps({"team": team, "priority": "medium"})][i % 4]
        out.append({"index": i, "id": f"t-{100 + i}", "prompt": prompt, "reference": answer(team, priority),
                    "fine-tuned": tuned, "base": base})
    return out


def parse(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def label(text: str) -> str:
    value = parse(text)
    return value["team"] if value and value.get("team") in TEAMS else INVALID


def scores(reference: str, text: str) -> dict[str, float]:
    ref, got = parse(reference) or {}, parse(text)
    fields = [float(got is not None and got.get(k) == v) for k, v in ref.items()]
    return {"exact_match": float(got == ref), "field_accuracy": sum(fields) / len(fields),
            "json_parse_rate": float(got is not None), "accuracy": float(label(text) == ref["team"])}


def macro_f1(gold: Sequence[str], mapped: Sequence[str]) -> float:
    """Mean F1 over the classes in the references or the answers (``__invalid__`` included)."""
    f1s = []
    for c in dict.fromkeys([*gold, *mapped]):
        tp = sum(g == c and m == c for g, m in zip(gold, mapped))
        fp = sum(g != c and m == c for g, m in zip(gold, mapped))
        fn = sum(g == c and m != c for g, m in zip(gold, mapped))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / len(f1s)


def class_details(gold: list[str], mapped: list[str]) -> dict[str, Any]:
    classes = [*TEAMS, INVALID]
    per_class = {}
    for c in [c for c in classes if c in gold or c in mapped]:
        tp = sum(g == c and m == c for g, m in zip(gold, mapped))
        predicted, support = mapped.count(c), gold.count(c)
        p, r = (tp / predicted if predicted else 0.0), (tp / support if support else 0.0)
        per_class[c] = {"precision": p, "recall": r, "f1-score": 2 * p * r / (p + r) if p + r else 0.0,
                        "support": support}
    matrix = [[sum(g == a and m == b for g, m in zip(gold, mapped)) for b in classes] for a in classes]
    return {"per_class": per_class, "confusion_matrix": {"labels": classes, "matrix": matrix},
            "invalid": mapped.count(INVALID), "labels": {"set": TEAMS, "source": "references"}}


def field_details(refs: list[str], answers: list[str]) -> dict[str, Any]:
    fields = {}
    for key in ("team", "priority"):
        got = [parse(a) for a in answers]
        right = sum(g is not None and g.get(key) == parse(r)[key] for g, r in zip(got, refs))  # type: ignore[index]
        present = sum(g is not None and key in g for g in got)
        fields[key] = {"accuracy": right / len(refs), "normalized_accuracy": right / len(refs),
                       "presence": present / len(refs), "missing": len(refs) - present,
                       "wrong": present - right, "extra": 0, "n": len(refs)}
    return {"fields": fields, "missing": sum(f["missing"] for f in fields.values()),
            "wrong_value": sum(f["wrong"] for f in fields.values()), "extra": 0}


def interval(statistic: Callable[[list[int]], float], n: int) -> tuple[float, float]:
    """Percentile interval of a paired statistic over example indices resampled with replacement."""
    rng = random.Random(SEED)
    values = sorted(statistic([rng.randrange(n) for _ in range(n)]) for _ in range(RESAMPLES))
    tail = (1 - CONFIDENCE) / 2
    return values[int(tail * RESAMPLES)], values[int((1 - tail) * RESAMPLES) - 1]


def mcnemar_exact(b: int, c: int) -> float:
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n) if n else 1.0


def sign_flip(diffs: list[float]) -> float:
    rng = random.Random(SEED)
    observed = abs(sum(diffs))
    hits = sum(abs(sum(d if rng.random() < 0.5 else -d for d in diffs)) >= observed - 1e-12 for _ in range(RESAMPLES))
    return (hits + 1) / (RESAMPLES + 1)


def compare(metric: str, ft: list[float], base: list[float]) -> dict[str, Any]:
    """A Comparison dump for a mean of per-example scores: bootstrap interval, McNemar or sign-flip p."""
    n = len(ft)
    diffs = [a - b for a, b in zip(ft, base)]
    low, high = interval(lambda idx: sum(diffs[i] for i in idx) / n, n)
    binary = all(v in (0.0, 1.0) for v in ft + base)
    b, c = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return {"metric": metric, "candidate": "fine-tuned", "baseline": "base", "difference": sum(diffs) / n,
            "low": low, "high": high, "confidence": CONFIDENCE, "n": n, "method": "paired_bootstrap",
            "plugin": "ftp.plugins.compare", "p_value": mcnemar_exact(b, c) if binary else sign_flip(diffs),
            "test": "mcnemar_exact" if binary else "sign_flip", "wins": b, "ties": n - b - c, "losses": c,
            "resamples": RESAMPLES, "seed": SEED, "candidate_value": sum(ft) / n, "baseline_value": sum(base) / n,
            "details": {}}


def compare_macro_f1(gold: list[str], ft: list[str], base: list[str]) -> dict[str, Any]:
    """Corpus bootstrap (the same indices for both models) and approximate randomisation."""
    n = len(gold)

    def gap(idx: list[int]) -> float:
        g = [gold[i] for i in idx]
        return macro_f1(g, [ft[i] for i in idx]) - macro_f1(g, [base[i] for i in idx])

    low, high = interval(gap, n)
    observed, rng, hits = gap(list(range(n))), random.Random(SEED), 0
    for _ in range(RESAMPLES):
        swap = [rng.random() < 0.5 for _ in range(n)]
        a = [base[i] if s else ft[i] for i, s in enumerate(swap)]
        b = [ft[i] if s else base[i] for i, s in enumerate(swap)]
        hits += abs(macro_f1(gold, a) - macro_f1(gold, b)) >= abs(observed) - 1e-12
    return {"metric": "macro_f1", "candidate": "fine-tuned", "baseline": "base", "difference": observed,
            "low": low, "high": high, "confidence": CONFIDENCE, "n": n, "method": "corpus_bootstrap",
            "plugin": "ftp.plugins.compare", "p_value": (hits + 1) / (RESAMPLES + 1),
            "test": "approximate_randomisation", "wins": None, "ties": None, "losses": None,
            "resamples": RESAMPLES, "seed": SEED, "candidate_value": macro_f1(gold, ft),
            "baseline_value": macro_f1(gold, base), "details": {}}


def judge_comparison(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A pairwise judge that prefers the answer scoring higher on field accuracy (ties when equal)."""
    values = [(r["scores"]["fine-tuned"]["field_accuracy"] > r["scores"]["base"]["field_accuracy"])
              - (r["scores"]["fine-tuned"]["field_accuracy"] < r["scores"]["base"]["field_accuracy"]) for r in rows]
    n, wins, losses = len(values), values.count(1), values.count(-1)
    low, high = interval(lambda idx: sum(values[i] for i in idx) / n, n)
    return {"metric": "judge_preference", "candidate": "fine-tuned", "baseline": "base",
            "difference": (wins - losses) / n, "low": low, "high": high, "confidence": CONFIDENCE, "n": n,
            "method": f"LLM judge gpt-4.1-mini, both orders; paired bootstrap, {RESAMPLES} resamples; exact sign test",
            "plugin": "ftp.plugins.judge", "p_value": mcnemar_exact(wins, losses), "test": "sign_test_exact",
            "wins": wins, "ties": n - wins - losses, "losses": losses, "resamples": RESAMPLES, "seed": SEED,
            "candidate_value": (wins + (n - wins - losses) / 2) / n, "baseline_value": (losses + (n - wins - losses) / 2) / n,
            "details": {"judge_errors": 0, "n_judged": n, "judge": "gpt-4.1-mini", "mode": "pairwise",
                        "rubric_sha256": hashlib.sha256(b"rubric").hexdigest(),
                        "template_sha256": hashlib.sha256(b"template").hexdigest(), "calls": 2 * n, "cached": 0,
                        "win_rate": (wins + (n - wins - losses) / 2) / n, "position_consistency": 0.9,
                        "mean_length": {"fine-tuned": sum(len(r["fine-tuned"]) for r in rows) / n,
                                        "base": sum(len(r["base"]) for r in rows) / n},
                        "per_example": [{"index": r["index"], "verdict": "judged"} for r in rows]}}


def test_jsonl() -> str:
    """The test split the report was made from (its sha256 is the report's data hash)."""
    return "".join(json.dumps({"id": r["id"], "messages": [*r["prompt"], {"role": "assistant", "content": r["reference"]}]})
                   + "\n" for r in cases())


def loss_curve() -> dict[str, list[dict[str, float]]]:
    train = [{"step": s, "loss": round(0.35 + 2.6 * math.exp(-s / 14) + 0.04 * math.sin(s), 4)} for s in range(1, 61)]
    val = [{"step": s, "loss": round(0.48 + 2.1 * math.exp(-s / 16), 4)} for s in range(10, 61, 10)]
    return {"train_loss": train, "eval_loss": val}


def build(data_path: str = "/data/tickets/test.jsonl") -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """(eval.json, examples.jsonl rows, loss_curve.json) of the report."""
    rows = cases()
    for r in rows:
        r["scores"] = {c: scores(r["reference"], r[c]) for c in ("fine-tuned", "base")}
    names = ["exact_match", "field_accuracy", "json_parse_rate", "accuracy"]
    gold = [parse(r["reference"])["team"] for r in rows]  # type: ignore[index]
    mapped = {c: [label(r[c]) for r in rows] for c in ("fine-tuned", "base")}
    metrics: dict[str, dict[str, float]] = {}
    details = []
    for c in ("fine-tuned", "base"):
        per = {m: [r["scores"][c][m] for r in rows] for m in names}
        metrics[c] = {m: sum(v) / len(v) for m, v in per.items()}
        metrics[c]["macro_f1"] = macro_f1(gold, mapped[c])
        metrics[c]["loss"] = {"fine-tuned": 0.4137, "base": 1.9281}[c]
        extra = {"field_accuracy": field_details([r["reference"] for r in rows], [r[c] for r in rows]),
                 "accuracy": class_details(gold, mapped[c]), "exact_match": {"normalize": "basic", "json_by_value": True}}
        for m in [*names, "macro_f1", "loss"]:
            details.append({"name": m, "value": metrics[c][m], "candidate": c, "n": len(rows),
                            "higher_is_better": m != "loss", "plugin": PLUGINS.get(m, "ftp.backends.local"),
                            "scores": per.get(m), "details": extra.get(m, extra["accuracy"] if m == "macro_f1" else {})})
    comparisons = [compare(m, [r["scores"]["fine-tuned"][m] for r in rows], [r["scores"]["base"][m] for r in rows])
                   for m in ("exact_match", "field_accuracy", "json_parse_rate", "accuracy")]
    comparisons.append(compare_macro_f1(gold, mapped["fine-tuned"], mapped["base"]))
    comparisons.append(judge_comparison(rows))
    same = sum(r["fine-tuned"] == r["base"] for r in rows)
    test_file = test_jsonl()
    report: dict[str, Any] = {
        "n": len(rows), "candidates": ["fine-tuned", "base"], "metrics": metrics,
        "higher_is_better": {m: m != "loss" for m in [*names, "macro_f1", "loss"]},
        "details": details, "comparisons": comparisons,
        "answer_format": {"kind": "json", "labels": [], "keys": ["team", "priority"], "pattern": None, "share": 1.0,
                          "reason": "30 of 30 references are JSON objects with keys team, priority"},
        "metrics_chosen": {"names": [*names, "macro_f1", "loss"], "auto": True,
                           "reason": "answers are JSON objects; team is a label from a set of 3"},
        "decoding": {"greedy": True, "max_new_tokens": 40, "batch_size": 8},
        "versions": {"ftp": "0.4.0", "scipy": "1.17.1", "sacrebleu": "2.6.0", "scikit-learn": "1.9.1",
                     "jsonschema": "4.25.1"},
        "data": {"path": data_path, "sha256": hashlib.sha256(test_file.encode()).hexdigest(), "examples": len(rows)},
        "seed": SEED, "resamples": RESAMPLES, "confidence": CONFIDENCE,
        "timing": {"fine-tuned": {"seconds": 3.1, "answers": len(rows)}, "base": {"seconds": 2.7, "answers": len(rows)}},
        "warnings": [f"fine-tuned answers equal the base model's on {same / len(rows):.0%} of examples ({same} of "
                     f"{len(rows)}): check that the adapter was applied"],
        "not_evaluated": {"champion": "no version of ticket-triage is deployed yet"},
        "overfitting": "no sign of overfitting",
        "examples": [{"index": r["index"], "prompt": r["prompt"], "reference": r["reference"],
                      "fine-tuned": r["fine-tuned"], "base": r["base"]} for r in rows],
        "human_review": {"n": 24, "wins": 15, "ties": 4, "losses": 4, "both_bad": 1, "win_rate": 0.7083,
                         "low": 0.52, "high": 0.875, "confidence": 0.95, "reviewers": ["ana", "li"]},
    }
    jsonl = [{"id": r["index"], "example_id": r["id"], "candidate": c, "prompt": r["prompt"], "answer": r[c],
              "reference": r["reference"], "scores": r["scores"][c]} for r in rows for c in ("fine-tuned", "base")]
    return report, jsonl, loss_curve()


def make_report(tmp: Path) -> Path:
    """A run directory ``tmp/runs/ticket-triage/RUN_ID`` holding eval.json, eval/examples.jsonl,
    loss_curve.json, state.json and pipeline.resolved.yaml (the run is the report folder)."""
    run = tmp / "runs" / "ticket-triage" / "20260301-101500-a1b2"
    data = tmp / "data" / "test.jsonl"
    report, rows, curves = build(str(data))
    (run / "eval").mkdir(parents=True)
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text(test_jsonl(), encoding="utf-8")
    (run / "eval.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    (run / "eval" / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (run / "loss_curve.json").write_text(json.dumps(curves, indent=1), encoding="utf-8")
    state = {"run_id": run.name, "pipeline_name": "ticket-triage", "pipeline_file": str(tmp / "pipeline.yaml"),
             "pipeline_sha256": hashlib.sha256(b"pipeline").hexdigest(), "backend": "local",
             "created_at": "2026-03-01T10:15:00", "updated_at": "2026-03-01T10:31:00", "status": "done",
             "steps": {"register": {"status": "done", "outputs": {"name": "ticket-triage", "version": 3}}}}
    (run / "state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
    (run / "pipeline.resolved.yaml").write_text("name: ticket-triage\nmodel:\n  base: Qwen/Qwen2.5-0.5B-Instruct\n",
                                                encoding="utf-8")
    return run
