"""Chat templates and answer-only loss masks.

The template is the tokenizer's own when it has one; base models without one get the built-in template
of the family whose turn tokens the vocabulary has (Gemma, Llama 3, ChatML/Qwen, Mistral, Phi-3; else
ChatML), which is saved with the adapter so inference formats prompts exactly as training did.

Masks come from character spans: for each trained assistant turn, the text rendered up to and
including that turn minus the text rendered up to the generation prompt before it. The span
includes the end-of-turn marker, so the model learns to stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftp.data.files import message_text
from ftp.errors import UserError

IGNORE = -100

# Families without a system role: ``first`` is the system text and a blank line, to open the first user
# turn; ``turns`` the messages after it.
_SYSTEM_OPENS_FIRST_TURN = (
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set first = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set first = '' %}{% set turns = messages %}{% endif %}"
)

# Each family's published chat format, written so that every prefix of a conversation renders as a prefix
# of the whole (answer masks need it). Where the official template differs, it is on purpose:
# - gemma: Gemma has no system role; the system text opens the first user turn, followed by a blank line.
# - mistral: the system text opens the *first* user turn (Mistral's v0.3 template puts it in the last one
#   and drops it when the conversation ends with an answer, i.e. in every training example); the same
#   for one-turn prompts.
# - phi3: no end-of-text token after the last turn (the official one adds it outside generation, which
#   would put it in the middle of a multi-turn conversation's prefix); ``<|end|>`` ends every answer.
# tests/test_chat_templates.py checks each against the family's documented rendering.
TEMPLATES: dict[str, str] = {
    "gemma": (
        "{{ bos_token }}" + _SYSTEM_OPENS_FIRST_TURN +
        "{% for m in turns %}"
        "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
        "{{ first if loop.first else '' }}{{ m['content'] | trim }}<end_of_turn>\n"
        "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    ),
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for m in messages %}"
        "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>"
        "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
    ),
    "mistral": (
        "{{ bos_token }}" + _SYSTEM_OPENS_FIRST_TURN +
        "{% for m in turns %}"
        "{% if m['role'] == 'assistant' %} {{ m['content'] | trim }}{{ eos_token }}"
        "{% else %}[INST] {{ first if loop.first else '' }}{{ m['content'] }}[/INST]{% endif %}"
        "{% endfor %}"
    ),
    "phi3": (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
}
# The special token that identifies a family's format in a vocabulary, for base models without a template.
FAMILY_MARKERS: tuple[tuple[str, str], ...] = (("<start_of_turn>", "gemma"), ("<|start_header_id|>", "llama3"),
                                               ("<|im_start|>", "chatml"), ("[INST]", "mistral"),
                                               ("<|assistant|>", "phi3"))


def family_of(tokenizer: Any) -> str:
    """The built-in template a vocabulary was made for (chatml when none of the families' tokens is in it)."""
    vocab = tokenizer.get_vocab()
    return next((name for marker, name in FAMILY_MARKERS if marker in vocab), "chatml")


@dataclass
class ChatFormat:
    """A tokenizer with the template training uses, and the tokens that end an answer."""

    tokenizer: Any
    name: str
    template: str
    stop_ids: list[int]

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(_plain(messages), chat_template=self.template, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Templates want string content; flatten the list-of-parts form."""
    return [{**m, "content": message_text(m.get("content"))} for m in messages]


def chat_format(tokenizer: Any, choice: str = "auto") -> ChatFormat:
    """Pick the template: the tokenizer's own, or a named default (see module docstring)."""
    own = getattr(tokenizer, "chat_template", None)
    if choice in ("auto", "tokenizer") and own:
        name, template = "tokenizer", own
    elif choice == "tokenizer":
        raise UserError("model.chat_template: tokenizer, but this tokenizer has no chat template; "
                        f"use one of: auto, {', '.join(TEMPLATES)}")
    elif choice == "auto":
        name = family_of(tokenizer)
        template = TEMPLATES[name]
    elif choice in TEMPLATES:
        name, template = choice, TEMPLATES[choice]
    else:
        raise UserError(f"model.chat_template: unknown template {choice!r}; use auto, tokenizer, "
                        + ", ".join(TEMPLATES))
    fmt = ChatFormat(tokenizer, name, template, [])
    stops = [end_of_turn_id(fmt)] + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])
    fmt.stop_ids = sorted({s for s in stops if s is not None})
    return fmt


def end_of_turn_id(fmt: ChatFormat) -> int | None:
    """The special token a template puts right after an answer: generation stops there."""
    probe = "\u2063probe\u2063"
    text = fmt.render([{"role": "user", "content": "q"}, {"role": "assistant", "content": probe}])
    suffix = text[text.rindex(probe) + len(probe):]
    special = set(fmt.tokenizer.all_special_ids) | set(fmt.tokenizer.added_tokens_decoder)
    ids = fmt.tokenizer(suffix, add_special_tokens=False)["input_ids"]
    return next((i for i in ids if i in special), None)


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def answer_spans(fmt: ChatFormat, messages: list[dict[str, Any]], loss_on: str = "assistant"
                 ) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans to train on: every assistant turn (not
    ``weight: 0`` ones), only the last one, or (``all``) the whole text."""
    full = fmt.render(messages)
    if loss_on == "all":
        return full, [(0, len(full))]
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    spans = []
    for i, m in enumerate(messages):
        if m.get("role") != "assistant" or m.get("weight", 1) == 0 or (loss_on == "last_assistant" and i != last):
            continue
        prefix = fmt.render(messages[:i], add_generation_prompt=True)
        upto = fmt.render(messages[: i + 1])
        if not (upto.startswith(prefix) and full.startswith(upto)):
            raise UserError(f"chat template {fmt.name!r} renders a conversation differently from its prefix, so "
                            "answer tokens cannot be located; set model.chat_template: chatml (or gemma)")
        spans.append((len(prefix), len(upto)))
    return full, spans


def encode(fmt: ChatFormat, messages: list[dict[str, Any]], max_length: int, loss_on: str = "assistant") -> Encoded:
    """Token ids and labels (IGNORE outside the trained answers), truncated to ``max_length``."""
    text, spans = answer_spans(fmt, messages, loss_on)
    enc = fmt.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [tok if any(s <= start < e for s, e in spans) and end > start else IGNORE
              for tok, (start, end) in zip(ids, offsets)]
    truncated = len(ids) > max_length
    return Encoded(ids[:max_length], labels[:max_length], truncated)


def show_mask(fmt: ChatFormat, enc: Encoded) -> str:
    """One example as text with the trained tokens between ⟦ and ⟧, so a user can see the mask."""
    out: list[str] = []
    trained, run = False, list[int]()
    for tok, label in zip(enc.input_ids, enc.labels):
        if (label != IGNORE) != trained:
            out.append(fmt.tokenizer.decode(run))
            out.append("⟧" if trained else "⟦")
            run, trained = [], not trained
        run.append(tok)
    out.append(fmt.tokenizer.decode(run))
    if trained:
        out.append("⟧")
    return "".join(out)
