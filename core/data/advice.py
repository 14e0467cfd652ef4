"""Fine-tune or not: the field's decision framework, applied to the data and what the user says.

Fine-tune when prompting (and RAG, where knowledge is the gap) were tried and fell short, a consistent
output format or style is needed, latency or cost per call matters, there are at least 100 curated
examples, and the task is narrow. Do not fine-tune for fresh knowledge (RAG), for factual accuracy
(grounding and citations), or with fewer than 50 examples (few-shot prompting).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SPECTRUM = ("prompting", "few-shot prompting", "system instructions", "RAG", "LoRA/QLoRA fine-tuning",
            "full fine-tuning", "continued pre-training")


@dataclass
class Situation:
    examples: int
    consistent_format: bool | None = None  # from the output-format check, when known
    median_tokens: float | None = None
    needs_fresh_knowledge: bool = False
    needs_citations: bool = False
    prompting_tried: bool = False
    rag_tried: bool = False
    needs_format: bool = False
    latency_critical: bool = False
    narrow_task: bool = True
    domain_corpus: bool = False  # a large unlabelled corpus of a new domain or language
    prices: dict[str, float] = field(default_factory=dict)  # backend -> its declared USD per 1M training tokens
    test_novel_share: float | None = None  # test prompts phrased unlike training (the phrasing check)
    validation_novel_share: float | None = None


@dataclass
class Advice:
    technique: str
    fine_tune: bool
    reasons: list[str] = field(default_factory=list)
    data_needed: str = ""
    cost_and_time: str = ""
    also: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _lora_cost(s: Situation) -> str:
    tokens = s.examples * (s.median_tokens or 300) * 3
    clouds = "".join(f"; on {name} about ${tokens / 1e6 * price:.2f} at ${price:g} per 1M tokens (check current prices)"
                     for name, price in sorted(s.prices.items()))
    return (f"about {tokens / 1e6:.2f}M training tokens for 3 epochs; LoRA on a 1-8B model: minutes to an hour on "
            f"one GPU{clouds}")


def advise(s: Situation) -> Advice:
    if s.domain_corpus and s.examples >= 100_000:
        return Advice("continued pre-training", True, ["a large unlabelled corpus of a new domain or language"],
                      "millions of tokens of in-domain text, then a small instruction set",
                      "days of multi-GPU time", also=["then LoRA on instructions for the task itself"])
    if s.needs_fresh_knowledge:
        return Advice("RAG", False, ["the task needs up-to-date knowledge: fine-tuning bakes in a snapshot and "
                                     "retraining for every change is slow and costly"],
                      "a searchable document store", "hours to set up; no training",
                      also=["fine-tune later for format or tone, on top of RAG"])
    if s.needs_citations:
        return Advice("RAG with grounding and citations", False,
                      ["factual accuracy needs answers grounded in sources the user can check; a fine-tuned model "
                       "cannot cite what it memorised"], "the source documents", "hours; no training")
    if s.examples < 50:
        return Advice("few-shot prompting", False, [f"{s.examples} examples is too few to fine-tune; put the best "
                                                    "5-20 into the prompt"],
                      "collect at least 100 curated examples (1,000+ for production) before fine-tuning",
                      "no training; a prompt change", also=["system instructions for the format"])
    if not s.prompting_tried:
        return Advice("prompting first (system instructions + few-shot)", False,
                      ["prompting was not tried: it is cheaper, faster to iterate, and the baseline a fine-tune must "
                       "beat"], f"your {s.examples} examples make the evaluation set for the prompt",
                      "an afternoon", also=["if prompting falls short, fine-tune with LoRA on these examples"])
    reasons = ["prompting was tried and fell short"]
    if s.needs_format or s.consistent_format:
        reasons.append("a consistent output format is needed, which fine-tuning teaches reliably")
    if s.latency_critical:
        reasons.append("latency or cost per call matters: a small fine-tuned model replaces a long prompt")
    if not s.narrow_task:
        return Advice("RAG or a larger model with better prompting", False,
                      reasons + ["the task is broad: fine-tuning narrows a model, it does not broaden it"],
                      "", "", also=["split the job into narrow tasks and fine-tune those"])
    if s.examples < 100:
        return Advice("LoRA/QLoRA fine-tuning (prototype)", True,
                      reasons + [f"{s.examples} examples is enough for a prototype, thin for production"],
                      "grow to 1,000+ curated examples", _lora_cost(s))
    technique = "LoRA/QLoRA fine-tuning"
    if s.examples >= 50_000 and not s.latency_critical:
        technique = "full fine-tuning (or LoRA with a higher rank)"
        reasons.append("tens of thousands of examples can move every weight usefully")
    return Advice(technique, True, reasons + [f"{s.examples} curated examples"],
                  "keep a held-out test split; 1,000+ examples for production", _lora_cost(s))


def situation_from(report: Any, prices: dict[str, float] | None = None) -> Situation:
    """What the data says, for the advice; ``prices``: the backends' declared training prices."""
    s = report.summaries
    examples = (s.get("quantity", {}).get("examples") or {}).get("train", 0)
    out_fmt = s.get("output_format", {})
    consistent = None
    if out_fmt:
        consistent = bool(out_fmt.get("enforced"))
    train_len = ((s.get("length", {}).get("splits") or {}).get("train") or {})
    phrasing = (s.get("phrasing", {}).get("splits") or {})
    return Situation(examples=examples, consistent_format=consistent, median_tokens=train_len.get("median"),
                     prices=dict(prices or {}), test_novel_share=(phrasing.get("test") or {}).get("novel_share"),
                     validation_novel_share=(phrasing.get("validation") or {}).get("novel_share"))


# --- which settings to change ------------------------------------------------------------------------

NOVEL_TEST = 0.5  # this share of novel test prompts: the test measures new phrasings (the phrasing check's default)
VALIDATION_LIKE_TRAIN = 0.25
SMALL_TRAIN = 300
EVIDENCE = ("evidence: benchmarks/README.md (Quality): Gemma 3 270M on one H200, 4 synthetic tasks whose test "
            "wordings never occur in training, 4-8 seeds per setting; none of these beat the defaults on every task")


def tuning(s: Situation) -> list[str]:
    """Settings to change, one line each with why, when the data calls for it (empty otherwise)."""
    lines: list[str] = []
    novel = s.test_novel_share is not None and s.test_novel_share >= NOVEL_TEST
    if novel:
        lines.append(f"train.seed: train 3+ seeds (--set train.seed=N) and keep the best on validation: "
                     f"{s.test_novel_share:.0%} of test prompts are new phrasings; with new test wordings, exact "
                     "match on order_json varied 10-15 points (SD) over seeds alone")
        if s.validation_novel_share is not None and s.validation_novel_share <= VALIDATION_LIKE_TRAIN:
            lines.append(f"data.validation: build it from phrasings held out of training (now "
                         f"{s.validation_novel_share:.0%} of its prompts are new), or early stopping and the seed "
                         "you keep select for recall, not generalisation")
        lines += ["train.neftune_alpha: 5 - try and compare: +4.2 points [+0.4, +8.3] on the intent task, no gain "
                  "on order_json",
                  "train.lora.dropout: 0.1 - try and compare: intent level with the TRL reference (89.4 vs 90.0), "
                  "order_json lower (73.8 vs 80.6)",
                  "train.epochs: 2 - try and compare: order_json 85.0 vs 80.6 at 3 epochs, but with lora.dropout "
                  "0.1 normalise lost 5 points (93.9 vs 99.2)"]
    if 0 < s.examples < SMALL_TRAIN:
        lines += [f"data.train: {s.examples} examples is small; more examples (in varied wordings) help more than "
                  "any setting; compare with few-shot prompting of the best 5-20",
                  "train.epochs: more epochs are not the fix: on a small set they memorise; keep "
                  "train.early_stopping on and a validation split to stop on"]
        if not novel:
            lines.append("train.seed: small sets make runs noisy; train 2-3 seeds and compare them on validation")
    if novel:
        lines.append(EVIDENCE)
    return lines
