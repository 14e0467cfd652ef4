"""Generate the synthetic support-ticket triage dataset used by the quickstart.

The data is entirely synthetic: every ticket is assembled by this script from
hand-written templates, using a fixed random seed, so the output is fully
deterministic. No real customer data is involved.

Task: turn a short free-text customer support ticket into a compact JSON triage
record with exactly these keys, in this order::

    {"category": ..., "priority": ..., "product": ...}

* category -- billing | bug | account | feature_request | shipping
  (follows from the problem the ticket describes)
* priority -- low | medium | high
  (follows from urgency cues: "ASAP", "production is down" -> high;
  "no rush", "when you get a chance" -> low; no cue -> medium)
* product  -- mobile app | web dashboard | smart thermostat | security camera
  (always named in the ticket, sometimes by a synonym such as "iOS app")

Each line of the output is one chat fine-tuning example in OpenAI/Azure format
(no system message, to keep sequences short for CPU training)::

    {"messages": [{"role": "user", "content": "Triage this support ticket as JSON.\\n\\nTicket: ..."},
                  {"role": "assistant", "content": "{\\"category\\": ..., ...}"}]}

Regenerate the committed file (byte-identical) with::

    python examples/quickstart/make_data.py

Options: --n (number of examples, default 320), --seed (default 42),
--out (default data/tickets.jsonl next to this script). Uses only the stdlib.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

INSTRUCTION = "Triage this support ticket as JSON."

CATEGORIES = ["billing", "bug", "account", "feature_request", "shipping"]
PRIORITIES = ["low", "medium", "high"]

# Canonical product label -> ways customers refer to it in a ticket.
PRODUCTS = {
    "mobile app": ["mobile app", "iOS app", "Android app", "phone app"],
    "web dashboard": ["web dashboard", "dashboard", "web portal", "online dashboard"],
    "smart thermostat": ["smart thermostat", "thermostat", "Wi-Fi thermostat"],
    "security camera": ["security camera", "camera", "outdoor camera", "indoor camera"],
}
HARDWARE = ["smart thermostat", "security camera"]

# Problem sentences per category. {p} = product mention, {o} = order number,
# {d} = a day reference ("on Monday"), {s} = a day after "since",
# {f} = a feature idea, {e} = an error message.
# Each entry is (template, allowed products or None for all products).
PROBLEMS = {
    "billing": [
        ("I was charged twice for my {p} subscription this month.", None),
        ("My card was billed twice for the {p} plan.", None),
        ("I would like a refund for the {p} I bought last week.", HARDWARE),
        ("Please refund the {p} subscription, I cancelled it {d}.", None),
        ("The invoice for my {p} plan shows the wrong amount.", None),
        ("I can't find the invoice for order {o} for the {p}.", HARDWARE),
        ("I was overcharged for the {p} premium plan.", None),
        ("You billed me again after I cancelled my {p} subscription.", None),
        ("There is a duplicate charge on my statement for the {p}.", None),
        ("Could you send me a corrected invoice for the {p}? The tax is wrong.", None),
        ("I need a refund for order {o}, the {p} was charged at the wrong price.", HARDWARE),
        ("My {p} plan renewed at a higher price than I was quoted.", None),
    ],
    "bug": [
        ("The {p} crashes every time I open the settings page.", None),
        ("I get an error message saying \"{e}\" in the {p}.", None),
        ("The {p} freezes after a few minutes of use.", None),
        ("Since {s} the {p} shows a blank screen on startup.", None),
        ("The {p} stopped responding after the last update.", None),
        ("The {p} keeps rebooting on its own.", HARDWARE),
        ("The {p} shows the wrong temperature reading.", ["smart thermostat"]),
        ("The live video in the {p} freezes and then goes black.", ["security camera"]),
        ("Charts in the {p} fail to load and show \"{e}\".", ["web dashboard"]),
        ("The {p} crashes when I try to upload a photo.", ["mobile app"]),
        ("Buttons in the {p} do nothing when I tap them.", ["mobile app"]),
        ("The {p} throws an error every time I save my changes.", None),
    ],
    "account": [
        ("I can't reset my password for the {p}.", None),
        ("I'm locked out of my {p} account after too many login attempts.", None),
        ("I need to change the email address on my {p} account.", None),
        ("The password reset link for the {p} never arrives.", None),
        ("Please help me update the username on my {p} account.", None),
        ("I lost my phone and can't get past two-factor login on the {p}.", None),
        ("How do I transfer my {p} account to a new email?", None),
        ("Please delete my {p} account and all of my data.", None),
        ("My {p} login says my account is disabled.", None),
        ("I want to add a second user to my {p} account but can't find how.", None),
        ("I forgot which email I used to sign up for the {p}.", None),
    ],
    "feature_request": [
        ("It would be great if the {p} had {f}.", None),
        ("Please add {f} to the {p}.", None),
        ("Could you add {f} to the {p}?", None),
        ("I'd love to see {f} in the {p}.", None),
        ("Feature idea: {f} for the {p}.", None),
        ("Any plans to add {f} to the {p}? It would really help.", None),
        ("It would be really useful if the {p} supported {f}.", None),
        ("Suggestion for the {p}: please add {f}.", None),
    ],
    "shipping": [
        ("My {p} order {o} still hasn't arrived and it is a week late.", HARDWARE),
        ("I received the wrong item instead of the {p} I ordered.", HARDWARE),
        ("The tracking for my {p} order {o} hasn't updated since {s}.", HARDWARE),
        ("The package with my {p} was delivered to the wrong address.", HARDWARE),
        ("The {p} I ordered arrived in a crushed box.", HARDWARE),
        ("My {p} delivery was marked delivered but there was no package.", HARDWARE),
        ("Order {o} for a {p} shows shipped but the tracking link is broken.", HARDWARE),
        ("I was sent two chargers but no {p} in order {o}.", HARDWARE),
        ("When will my {p} ship? Order {o} has been pending for ten days.", HARDWARE),
        ("The courier left my {p} package at the wrong house.", HARDWARE),
    ],
}

# Optional second sentence giving more detail, per category.
DETAILS = {
    "billing": [
        "The order number is {o}.",
        "I paid with the same card both times.",
        "I have attached a screenshot of my bank statement.",
        "This happened {d}.",
        "I am on the monthly plan.",
    ],
    "bug": [
        "It started {d}, right after an update.",
        "I already tried restarting it.",
        "Reinstalling did not help.",
        "It happens every single time.",
        "I can reproduce it on two devices.",
    ],
    "account": [
        "I have tried three times already.",
        "My old email address no longer works.",
        "This started {d}.",
        "I am the account owner.",
    ],
    "feature_request": [
        "A lot of people in my household would use it.",
        "Other products I use already have this.",
        "It would save me a lot of time.",
        "My team has been asking for this.",
    ],
    "shipping": [
        "I paid for express delivery.",
        "The carrier says it left the warehouse {d}.",
        "I have attached a photo of the label.",
        "Nobody at my address signed for it.",
    ],
}

FEATURES = {
    "mobile app": ["a dark mode", "a home screen widget", "offline mode",
                   "Face ID login", "landscape mode"],
    "web dashboard": ["CSV export", "scheduled reports", "a dark mode",
                      "custom date ranges", "keyboard shortcuts"],
    "smart thermostat": ["a vacation mode", "humidity alerts", "weekly schedules",
                         "voice assistant support", "an energy usage report"],
    "security camera": ["person detection alerts", "longer clip storage",
                        "privacy zones", "a night vision toggle", "two-way audio"],
}

ERRORS = ["Something went wrong", "Error 500", "Unable to connect",
          "Request failed", "Unexpected error, please try again"]

DAYS = ["on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday",
        "yesterday", "last week", "over the weekend"]
SINCE_DAYS = ["Monday", "Tuesday", "Thursday", "Friday", "yesterday", "last week",
              "the weekend"]

PRIORITY_CUES = {
    "high": [
        ("This is urgent.", None),
        ("Please fix this ASAP.", ["billing", "bug", "account", "shipping"]),
        ("I need this resolved today, it is urgent.", None),
        ("We are losing money every hour this goes on.", ["billing", "bug", "shipping"]),
        ("Our production is down because of this.", ["bug"]),
        ("Urgent: this is blocking my whole team.", ["bug", "account"]),
        ("Please treat this as urgent.", None),
        ("We need this ASAP for a client launch.", ["feature_request"]),
        ("This is critical for our business, please help ASAP.", None),
    ],
    "low": [
        ("No rush on this.", None),
        ("Whenever you get a chance is fine.", None),
        ("Just look at it when you get a chance.", None),
        ("No rush, whenever you have time.", None),
        ("Low priority, just wanted to let you know.", None),
        ("It can wait, no rush at all.", None),
    ],
    # Medium has no urgency cue; sometimes a neutral closing line.
    "medium": [
        ("Could you take a look?", None),
        ("Let me know what you find.", None),
        ("Please let me know the next steps.", None),
        ("Could you help with this?", None),
    ],
}

GREETINGS = ["Hi,", "Hello,", "Hey team,", "Hi support,", "Good morning,",
             "Hello there,", "Hi all,"]
SIGNOFFS = ["Thanks, {n}", "Best, {n}", "Regards, {n}", "Thank you, {n}",
            "Cheers, {n}", "- {n}", "Thanks!"]
NAMES = ["Maria", "James", "Priya", "Tom", "Aisha", "Lukas", "Chen", "Sofia",
         "Daniel", "Fatima", "Olga", "Marcus", "Yuki", "Ben", "Elena", "Omar"]
FILLERS = ["I have been a customer for three years.",
           "Thanks for your help.",
           "Hope you are having a good day.",
           "A friend recommended your products to me.",
           "I appreciate the support.",
           "Thanks in advance."]

MIN_WORDS, MAX_WORDS = 15, 45


def _pick(rng: random.Random, options, key):
    """Choose an entry whose allowed-set (None = any) contains key."""
    return rng.choice([text for text, allowed in options if allowed is None or key in allowed])


def _fill(rng: random.Random, template: str, product: str) -> str:
    return template.format(
        p=rng.choice(PRODUCTS[product]),
        o=f"#{rng.randint(10000, 99999)}",
        d=rng.choice(DAYS),
        s=rng.choice(SINCE_DAYS),
        f=rng.choice(FEATURES[product]),
        e=rng.choice(ERRORS),
    )


def make_ticket(rng: random.Random, category: str, priority: str) -> tuple[str, str]:
    """Return (ticket_text, product) for the given labels."""
    products = sorted({p for tmpl, allowed in PROBLEMS[category]
                       for p in (allowed or PRODUCTS)})
    # Shipping tickets are hardware-only, so elsewhere lean towards the software
    # products to keep the overall product counts roughly even.
    weights = [3 if p in HARDWARE else 5 for p in products]
    product = rng.choices(products, weights=weights)[0]
    problem = _fill(rng, _pick(rng, [(t, a) for t, a in PROBLEMS[category]
                                     if a is None or product in a], product), product)

    body = [problem]
    if rng.random() < 0.5:
        body.append(_fill(rng, rng.choice(DETAILS[category]), product))

    cue = None
    if priority != "medium" or rng.random() < 0.5:
        cue = _pick(rng, PRIORITY_CUES[priority], category)
    if cue is not None:
        # Urgency usually comes after the problem, sometimes up front; the
        # neutral medium lines always come after it.
        if priority != "medium" and rng.random() < 0.3:
            body.insert(0, cue)
        else:
            body.append(cue)

    if rng.random() < 0.25:
        body.append(rng.choice(FILLERS))

    parts = []
    if rng.random() < 0.6:
        parts.append(rng.choice(GREETINGS))
    parts.extend(body)
    if rng.random() < 0.6:
        parts.append(rng.choice(SIGNOFFS).format(n=rng.choice(NAMES)))
    return " ".join(parts), product


def make_example(ticket: str, category: str, priority: str, product: str) -> dict:
    label = json.dumps({"category": category, "priority": priority, "product": product},
                       separators=(", ", ": "))
    return {"messages": [
        {"role": "user", "content": f"{INSTRUCTION}\n\nTicket: {ticket}"},
        {"role": "assistant", "content": label},
    ]}


def generate(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    seen: set[str] = set()
    examples = []
    i = 0
    while len(examples) < n:
        # Cycle through all (category, priority) pairs for a balanced set.
        category = CATEGORIES[i % len(CATEGORIES)]
        priority = PRIORITIES[(i // len(CATEGORIES)) % len(PRIORITIES)]
        for _ in range(1000):
            ticket, product = make_ticket(rng, category, priority)
            if ticket not in seen and MIN_WORDS <= len(ticket.split()) <= MAX_WORDS:
                break
        else:
            raise RuntimeError(f"could not make a unique ticket for {category}/{priority}")
        seen.add(ticket)
        examples.append(make_example(ticket, category, priority, product))
        i += 1
    rng.shuffle(examples)
    return examples


def main() -> None:
    default_out = Path(__file__).resolve().parent / "data" / "tickets.jsonl"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=320, help="number of examples (default 320)")
    ap.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    ap.add_argument("--out", type=Path, default=default_out,
                    help="output JSONL path (default: data/tickets.jsonl next to this script)")
    args = ap.parse_args()

    examples = generate(args.n, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8", newline="\n") as f:
        for ex in examples:
            f.write(json.dumps(ex, ensure_ascii=False) + "\n")
    print(f"wrote {len(examples)} examples to {args.out}")


if __name__ == "__main__":
    main()
