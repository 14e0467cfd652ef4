"""Four narrow fine-tuning tasks, generated deterministically from a seed, for the quality benchmark.

    python benchmarks/quality/tasks.py --out DIR [--seed 0] [--train 800 --validation 100 --test 120]

Each task writes ``DIR/<task>/{train,validation,test}.jsonl`` (chat JSONL, ``{"messages": [...]}``,
the last message the answer) and ``DIR/<task>/templates.json`` (statistics, and the phrasing
templates each example was built from, kept out of the JSONL).

- ``intent``: a customer message -> one of 10 labels, with close pairs (refund/return,
  billing/payment_method, shipping_delay/lost_package, cancel_order/change_address); system message.
- ``order_json``: a free-text clothing order -> compact JSON with 5 keys in a fixed order
  (item, color, size, quantity, gift_wrap); quantities in words or digits, plurals, sizes in words.
- ``normalise``: a messy appointment note -> ``YYYY-MM-DD | HH:MM | City | Surname, Firstname``
  (dates and times in a dozen spellings, names in either order and any case); system message.
- ``order_status``: a three-turn dialogue about two orders; the graded last answer is one field
  (carrier, ship date, tracking code, product) of the order the last question names, whose details
  may have been given two turns earlier; system message.

Train and validation examples are built from the ``train`` half of every phrasing pool in
phrases.py, test examples from the ``test`` half only, so the test split measures generalisation to
wordings never seen in training. ``check_generalisation`` asserts it on every generated set.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import phrases as P  # noqa: E402

SPLITS = ("train", "validation", "test")
DEFAULT_SIZES = (800, 100, 120)


@dataclass
class Example:
    messages: list[dict[str, str]]
    parts: list[tuple[str, str, str]] = field(default_factory=list)  # (part, pool or "none", template)
    category: str = ""  # the label, field or kind of answer: for statistics

    @property
    def template_id(self) -> str:
        return "|".join(f"{part}/{pool}/{tpl}" for part, pool, tpl in self.parts if pool != "none")


def pick(rng: random.Random, ex: Example, part: str, pools: dict[str, list[str]], pool: str) -> str:
    """A template from one half of a phrasing pool, recorded on the example."""
    tpl = rng.choice(pools[pool])
    ex.parts.append((part, pool, tpl))
    return tpl


def optional(rng: random.Random, ex: Example, part: str, pools: dict[str, list[str]], pool: str, p: float) -> str:
    if rng.random() < p:
        return pick(rng, ex, part, pools, pool)
    ex.parts.append((part, "none", ""))
    return ""


def order_number(rng: random.Random) -> str:
    return str(rng.randint(10000, 99999))


def case_style(rng: random.Random, text: str, lower: float = 0.15, upper: float = 0.0) -> str:
    r = rng.random()
    return text.lower() if r < lower else text.upper() if r < lower + upper else text


# --- the four tasks -----------------------------------------------------------------------------------

INTENT_LABELS = list(P.INTENT_CORES)


def intent(rng: random.Random, pool: str, i: int) -> Example:
    label = INTENT_LABELS[i % len(INTENT_LABELS)]
    ex = Example([], category=label)
    opener = optional(rng, ex, "opener", P.INTENT_OPENERS, pool, 0.6)
    core = pick(rng, ex, "core", P.INTENT_CORES[label], pool)
    closer = optional(rng, ex, "closer", P.INTENT_CLOSERS, pool, 0.5)
    amount = f"{rng.choice('$€£')}{rng.randint(5, 400)}.{rng.choice(['00', '99', '49', f'{rng.randint(0, 99):02d}'])}"
    values = {"product": rng.choice(P.PRODUCTS), "order": rng.choice(["#", "", "no. "]) + order_number(rng),
              "amount": amount, "days": rng.randint(3, 30), "carrier": rng.choice(P.CARRIERS),
              "city": rng.choice(P.CITIES), "name": rng.choice(P.FIRST_NAMES)}
    text = " ".join(t for t in (opener, core, closer) if t).format(**values)
    ex.messages = [{"role": "system", "content": P.INTENT_SYSTEM},
                   {"role": "user", "content": case_style(rng, text)}, {"role": "assistant", "content": label}]
    return ex


def _quantity(rng: random.Random, n: int) -> str:
    special = {2: "a pair of", 6: "half a dozen", 12: "a dozen"}
    forms = [P.NUMBER_WORDS[n], str(n)] + ([special[n]] if n in special else [])
    return rng.choice(forms)


def order_json(rng: random.Random, pool: str, i: int) -> Example:
    ex = Example([])
    singular, plural = rng.choice(P.ITEMS)
    colour, code = rng.choice(P.COLOURS), rng.choice(list(P.SIZES))
    n = rng.choice([1, 1, 2, 2, 3, 3, 4, 5, 6, 8, 10, 12])
    gift = rng.random()
    frame = pick(rng, ex, "frame", P.ORDER_FRAMES, pool)
    if gift < 0.35:
        gift_text, wrapped = pick(rng, ex, "gift_yes", P.GIFT_YES, pool), True
    elif gift < 0.65:
        gift_text, wrapped = pick(rng, ex, "gift_no", P.GIFT_NO, pool), False
    else:
        gift_text, wrapped = "", False
        ex.parts.append(("gift", "none", ""))
    request = frame.format(qty=_quantity(rng, n), qtyn=n, items=singular if n == 1 else plural, item=singular,
                           color=colour.title() if rng.random() < 0.2 else colour, size=rng.choice(P.SIZES[code]),
                           gift=gift_text, name=rng.choice(P.FIRST_NAMES))
    answer = json.dumps({"item": singular, "color": colour, "size": code, "quantity": n, "gift_wrap": wrapped},
                        separators=(",", ":"))
    ex.category = "gift" if wrapped else "no-gift"
    ex.messages = [{"role": "user", "content": f"{P.ORDER_INSTRUCTION}\n\n{request}"},
                   {"role": "assistant", "content": answer}]
    return ex


def _ordinal(d: int) -> str:
    return f"{d}{'th' if 10 <= d % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(d % 10, 'th')}"


def _date_text(rng: random.Random, y: int, m: int, d: int) -> str:
    month, mon = P.MONTHS[m - 1], P.MONTHS[m - 1][:3]
    return rng.choice([f"{month} {d}, {y}", f"{d} {month} {y}", f"the {_ordinal(d)} of {month} {y}",
                       f"{mon} {d} {y}", f"{y}-{m:02d}-{d:02d}", f"{d:02d}.{m:02d}.{y}", f"{month} {_ordinal(d)} {y}",
                       f"{d} {mon.lower()}. {y}", f"{_ordinal(d)} {month}, {y}"])


def _time_text(rng: random.Random, h: int, mm: int) -> str:
    h12, ampm = h % 12 or 12, rng.choice([("am", "pm"), ("a.m.", "p.m."), ("AM", "PM")])[h >= 12]
    forms = [f"{h:02d}:{mm:02d}", f"{h12}:{mm:02d} {ampm}", f"{h12}.{mm:02d}{ampm}", f"{h}h{mm:02d}"]
    period = "morning" if 5 <= h < 12 else "afternoon" if 12 <= h < 18 else "evening" if 18 <= h < 23 else ""
    if mm == 0:
        forms += [f"{h12} {ampm}", f"{h12}{ampm}"] + ([f"{h12} o'clock in the {period}"] if period else [])
        if h == 12:
            forms += ["noon", "midday"]
    elif mm == 30 and period:
        forms += [f"half past {P.NUMBER_WORDS[h12]} in the {period}", f"half past {h12} {ampm}"]
    elif mm == 15:
        forms += [f"quarter past {h12} {ampm}"]
    elif mm == 45:
        nxt = (h + 1) % 24
        forms += [f"quarter to {nxt % 12 or 12} {'am' if nxt < 12 else 'pm'}"]
    return rng.choice(forms)


def _person_text(rng: random.Random, first: str, last: str) -> str:
    form = rng.choice([f"{first} {last}", f"{last}, {first}", f"{rng.choice(['Dr', 'Dr.', 'Prof.', 'Mx'])} {first} {last}",
                       f"{last.upper()}, {first}", f"{first} {last.upper()}"])
    return case_style(rng, form, lower=0.25)


def normalise(rng: random.Random, pool: str, i: int) -> Example:
    ex = Example([])
    frame = pick(rng, ex, "frame", P.NORMALISE_FRAMES, pool)
    y, m, d = rng.randint(2024, 2027), rng.randint(1, 12), rng.randint(1, 28)
    h = rng.randint(7, 21) if rng.random() < 0.85 else rng.randint(0, 23)
    mm = rng.choice([0, 0, 15, 30, 30, 45]) if rng.random() < 0.7 else rng.choice(range(0, 60, 5))
    city, first, last = rng.choice(P.CITIES), rng.choice(P.FIRST_NAMES), rng.choice(P.SURNAMES)
    note = frame.format(date=_date_text(rng, y, m, d), time=_time_text(rng, h, mm),
                        city=case_style(rng, city, lower=0.3, upper=0.1), person=_person_text(rng, first, last))
    ex.category = "words" if any(w in note.lower() for w in ("past", "quarter", "noon", "midday", "o'clock")) else "digits"
    ex.messages = [{"role": "system", "content": P.NORMALISE_SYSTEM}, {"role": "user", "content": note},
                   {"role": "assistant", "content": f"{y}-{m:02d}-{d:02d} | {h:02d}:{mm:02d} | {city} | {last}, {first}"}]
    return ex


STATUS_FIELDS = list(P.STATUS_QUESTIONS)


def _tracking(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return "".join(rng.choice(letters) for _ in range(2)) + str(rng.randint(1000, 9999)) + \
        "".join(rng.choice(letters) for _ in range(2))


def order_status(rng: random.Random, pool: str, i: int) -> Example:
    field_name, target = STATUS_FIELDS[i % len(STATUS_FIELDS)], rng.randint(0, 1)
    ex = Example([], category=f"{field_name}/{'first' if target == 0 else 'second'}")
    numbers = rng.sample(range(10000, 100000), 2)
    orders = [{"order": str(numbers[k]), "product": p, "carrier": c, "tracking": _tracking(rng),
               "date": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}
              for k, (p, c) in enumerate(zip(rng.sample(P.PRODUCTS, 2), rng.sample(P.CARRIERS, 2)))]
    first = pick(rng, ex, "first", P.STATUS_FIRST, pool).format(**orders[0])
    reply_a = pick(rng, ex, "reply", P.STATUS_REPLY, pool).format(**orders[0])
    second = pick(rng, ex, "second", P.STATUS_SECOND, pool).format(**orders[1])
    reply_b = pick(rng, ex, "reply", P.STATUS_REPLY, pool).format(**orders[1])
    style = rng.choice(["position", "number"] + (["product"] if field_name != "product" else []))
    ref_forms = P.STATUS_REFS[style][target] if style == "position" else P.STATUS_REFS[style]
    ref = rng.choice(ref_forms).format(**orders[target])
    question = pick(rng, ex, "question", P.STATUS_QUESTIONS[field_name], pool).format(ref=ref)
    ex.messages = [{"role": "system", "content": P.STATUS_SYSTEM}, {"role": "user", "content": first},
                   {"role": "assistant", "content": reply_a}, {"role": "user", "content": second},
                   {"role": "assistant", "content": reply_b},
                   {"role": "user", "content": question[0].upper() + question[1:]},
                   {"role": "assistant", "content": orders[target][field_name]}]
    return ex


TASKS: dict[str, Callable[[random.Random, str, int], Example]] = {
    "intent": intent, "order_json": order_json, "normalise": normalise, "order_status": order_status}
# Every phrasing pool, by task, for the static check that the two halves share no template.
POOLS: dict[str, list[dict[str, list[str]]]] = {
    "intent": [*P.INTENT_CORES.values(), P.INTENT_OPENERS, P.INTENT_CLOSERS],
    "order_json": [P.ORDER_FRAMES, P.GIFT_YES, P.GIFT_NO],
    "normalise": [P.NORMALISE_FRAMES],
    "order_status": [P.STATUS_FIRST, P.STATUS_SECOND, P.STATUS_REPLY, *P.STATUS_QUESTIONS.values()],
}


# --- generation and the generalisation check ----------------------------------------------------------

def prompt_key(messages: list[dict[str, str]]) -> str:
    """Every message before the answer, lower-cased with whitespace collapsed (as ftp's split groups)."""
    return "\n".join(f"{m['role']}: {' '.join(m['content'].lower().split())}" for m in messages[:-1])


def words(text: str) -> str:
    """Lower-case words separated by single spaces, padded, for whole-word phrase search."""
    return " " + " ".join(re.sub(r"[^a-z0-9']+", " ", text.lower()).split()) + " "


def signature_phrase(template: str) -> str:
    """The longest literal run of a template (the text between its slots), as words."""
    chunks = [words(c).strip() for c in re.split(r"\{[^}]*\}", template)]
    return max(chunks, key=lambda c: len(c.split()), default="")


MIN_PHRASE_WORDS = 3


def check_generalisation(splits: dict[str, list[Example]], task: str) -> dict[str, Any]:
    """Assert the test split shares no phrasing with train/validation; return what was checked.

    1. The two halves of every pool share no template (static).
    2. Train and validation use only ``train`` templates; test only ``test`` ones (or none, for optional parts).
    3. No test prompt equals a train or validation prompt.
    4. The rule on rendered text: the signature phrase (longest literal run, >= 3 words) of every test
       template occurs, as whole words, in no train or validation prompt; and every test example has at
       least one such template (its core phrasing).
    """
    for pool in POOLS[task]:
        shared = set(pool["train"]) & set(pool["test"])
        assert not shared, f"{task}: templates in both halves of a pool: {sorted(shared)[:3]}"
    for split, rows in splits.items():
        allowed = {"test", "none"} if split == "test" else {"train", "none"}
        for ex in rows:
            bad = [p for p in ex.parts if p[1] not in allowed]
            assert not bad, f"{task}/{split}: uses templates of the wrong pool: {bad[:2]}"
    seen = [ex for split in ("train", "validation") for ex in splits.get(split, [])]
    seen_keys = {prompt_key(ex.messages) for ex in seen}
    leaked = [ex for ex in splits.get("test", []) if prompt_key(ex.messages) in seen_keys]
    assert not leaked, f"{task}: {len(leaked)} test prompts also occur in train/validation"
    corpus = "\n".join(words(" ".join(m["content"] for m in ex.messages[:-1])) for ex in seen)
    checked: dict[str, str] = {}
    for ex in splits.get("test", []):
        strong = 0
        for _, pool, tpl in ex.parts:
            if pool != "test":
                continue
            phrase = signature_phrase(tpl)
            if len(phrase.split()) < MIN_PHRASE_WORDS:
                continue
            if tpl not in checked:
                assert f" {phrase} " not in corpus, f"{task}: test phrase {phrase!r} occurs in a training prompt"
                checked[tpl] = phrase
            strong += 1
        assert strong, f"{task}: a test example has no distinctive test template: {ex.parts}"
    return {"test_templates_checked": len(checked), "rule": "signature phrases of test templates absent from "
            "train/validation prompts; pools disjoint; no shared prompt"}


def generate(task: str, seed: int = 0, sizes: tuple[int, int, int] = DEFAULT_SIZES) -> dict[str, list[Example]]:
    """The three splits of one task; deterministic for (task, seed, sizes). No prompt repeats across splits."""
    make, seen, out = TASKS[task], set(), {}
    for split, n in zip(SPLITS, sizes):
        rng = random.Random(f"{seed}:{task}:{split}")
        pool = "test" if split == "test" else "train"
        rows: list[Example] = []
        tries = 0
        while len(rows) < n:
            ex = make(rng, pool, len(rows))
            key = prompt_key(ex.messages)
            if key in seen:
                tries += 1
                if tries > 20 * n + 100:
                    raise RuntimeError(f"{task}/{split}: cannot make {n} distinct prompts")
                continue
            seen.add(key)
            rows.append(ex)
        rng.shuffle(rows)
        out[split] = rows
    check_generalisation(out, task)
    return out


def stats(splits: dict[str, list[Example]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for split, rows in splits.items():
        answers = Counter(ex.messages[-1]["content"] for ex in rows)
        out[split] = {"examples": len(rows), "distinct_prompts": len({prompt_key(ex.messages) for ex in rows}),
                      "distinct_templates": len({ex.template_id for ex in rows}),
                      "distinct_answers": len(answers), "categories": dict(sorted(Counter(ex.category for ex in rows).items())),
                      "mean_prompt_chars": round(sum(len(prompt_key(ex.messages)) for ex in rows) / max(1, len(rows)), 1),
                      "turns": max((len(ex.messages) for ex in rows), default=0)}
    return out


def write_task(out_dir: Path, task: str, seed: int = 0, sizes: tuple[int, int, int] = DEFAULT_SIZES) -> dict[str, Any]:
    """Write one task's three JSONL files and templates.json; return its statistics."""
    splits = generate(task, seed, sizes)
    folder = out_dir / task
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps({"messages": ex.messages}, ensure_ascii=False) + "\n"
                                                       for ex in rows), encoding="utf-8")
    info = {"task": task, "seed": seed, "sizes": list(sizes), "stats": stats(splits),
            "check": check_generalisation(splits, task),
            "templates": {split: [ex.template_id for ex in rows] for split, rows in splits.items()}}
    (folder / "templates.json").write_text(json.dumps(info, indent=1, ensure_ascii=False), encoding="utf-8")
    return {k: v for k, v in info.items() if k != "templates"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=DEFAULT_SIZES[0])
    parser.add_argument("--validation", type=int, default=DEFAULT_SIZES[1])
    parser.add_argument("--test", type=int, default=DEFAULT_SIZES[2])
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: " + ", ".join(TASKS))
    args = parser.parse_args(argv)
    sizes = (args.train, args.validation, args.test)
    for task in args.tasks.split(","):
        print(json.dumps(write_task(args.out, task.strip(), args.seed, sizes)))


if __name__ == "__main__":
    main()
