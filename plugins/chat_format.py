"""The chat JSONL format that OpenAI and Azure fine-tuning accept, checked line by line.

One JSON object per line with a ``messages`` list; roles system/user/assistant/tool; a system
message only first; the conversation ends with the assistant's answer, which is what is trained.

Inside a message, list-of-parts content and ``tool_calls`` are checked too: they fail late or
silently otherwise (a text part whose ``text`` is a number crashes the token count; a bare-string or
image part is dropped by every text backend, so the model trains on an empty prompt or answer;
malformed ``tool_calls`` are refused by the fine-tuning services only after the upload).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

from ftp.data.checks import DataCheck, Record, check_hooks
from ftp.types import CheckContext, Finding, Severity

ROLES = {"system", "user", "assistant", "tool", "function"}
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}
PART_TYPES = {"text", "image_url", "image", "input_audio", "file", "refusal"}  # OpenAI's, and HF templates' image
SHOWN_KEYS = 10


class Problem(NamedTuple):
    """One thing wrong with an example: a finding's code, message and severity."""

    code: str
    message: str
    severity: Severity = "error"


def short(value: Any, limit: int = 40, quote: bool = True) -> str:
    """A value from the data for a message (``repr``, or the bare string), cut so that a hostile 1 MB key
    makes no 1 MB message."""
    text = repr(value) if quote or not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit - 3] + "..."


def kind(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


# --- content parts and tool calls ------------------------------------------------------------------


def _part_problem(part: Any) -> str | None:
    """What is wrong with one content part, or None."""
    if not isinstance(part, dict):
        return f"is a JSON {kind(part)}, not a part object"
    type_ = part.get("type")
    if not isinstance(type_, str):
        return "has no 'type'" if type_ is None else f"has a 'type' that is a JSON {kind(type_)}"
    if type_ not in PART_TYPES:
        return f"has unknown type {short(type_)}; expected one of {', '.join(sorted(PART_TYPES))}"
    if type_ == "text" and not isinstance(part.get("text"), str):
        return f"is a text part whose 'text' is a JSON {kind(part.get('text'))}, not a string"
    return None


def check_parts(parts: list[Any], index: int, role: Any, tool_calls: Any) -> Iterator[Problem]:
    """The first malformed part of ``messages[index].content`` (one finding per message), or a message
    with no text part: an error on an answer (nothing to train on), a warning elsewhere."""
    where = f"messages[{index}].content"
    for j, part in enumerate(parts):
        problem = _part_problem(part)
        if problem:
            more = sum(_part_problem(p) is not None for p in parts[j + 1:])
            yield Problem("bad-content-part", f"{where}[{j}] {problem}" + (f" (and {more} more)" if more else ""))
            return
    if any(p["type"] == "text" for p in parts):
        return
    types = ", ".join(sorted({p["type"] for p in parts}))
    what = f"has no text part, only {types}" if parts else "is an empty list"
    if role == "assistant" and not tool_calls:
        yield Problem("no-text-content", f"{where} {what}: the answer has no text to train on")
    elif role != "assistant":
        yield Problem("no-text-content", f"{where} {what}: text backends drop other parts, so the message "
                      "trains as empty", "warning")


def _call_problem(call: Any) -> str | None:
    """What is wrong with one ``tool_calls`` entry, or None."""
    if not isinstance(call, dict):
        return f"is a JSON {kind(call)}, not an object"
    function = call.get("function")
    if not isinstance(function, dict):
        return "has no 'function' object" if function is None else f"has a 'function' that is a JSON {kind(function)}"
    if not isinstance(function.get("name"), str):
        return "has no function 'name' string"
    if "arguments" in function and not isinstance(function["arguments"], str):
        return f"has function 'arguments' that are a JSON {kind(function['arguments'])}, not a JSON-encoded string"
    return None


def check_tool_calls(calls: Any, index: int, role: Any) -> Iterator[Problem]:
    """``messages[index].tool_calls``: a list of call objects, on an assistant message."""
    where = f"messages[{index}].tool_calls"
    if calls is None:
        return
    if not isinstance(calls, list):
        yield Problem("bad-tool-calls", f"{where} is a JSON {kind(calls)}; it must be a list of tool calls")
    elif role != "assistant" and calls:  # an empty list (some exporters write one everywhere) calls nothing
        yield Problem("bad-tool-calls", f"{where} is on a {short(role)} message; only assistant messages call tools")
    else:
        for j, call in enumerate(calls):
            problem = _call_problem(call)
            if problem:
                yield Problem("bad-tool-calls", f"{where}[{j}] {problem}")
                return


# --- messages and examples -------------------------------------------------------------------------


def _check_message(msg: Any, index: int) -> Iterator[Problem]:
    if not isinstance(msg, dict):
        yield Problem("message-not-object", f"messages[{index}] is not an object")
        return
    role = msg.get("role")
    if not isinstance(role, str) or role not in ROLES:  # a list or object role is unhashable: no set lookup
        yield Problem("bad-role", f"messages[{index}].role is {short(role)}; expected one of "
                      f"{', '.join(sorted(ROLES))}")
    for key in sorted(msg.keys() - MESSAGE_KEYS)[:SHOWN_KEYS]:
        yield Problem("unknown-key", f"messages[{index}] has unknown key {short(key)}")
    content, calls = msg.get("content"), msg.get("tool_calls")
    if content is None and not calls and not msg.get("function_call"):
        yield Problem("missing-content", f"messages[{index}] has no content")
    elif content is not None and not isinstance(content, (str, list)):
        yield Problem("bad-content", f"messages[{index}].content must be a string or a list of parts")
    elif isinstance(content, list):
        yield from check_parts(content, index, role, calls)
    yield from check_tool_calls(calls, index, role)
    if role == "system" and index != 0:
        yield Problem("system-not-first", f"messages[{index}] is a system message; only the first message may be")
    if "weight" in msg and (role != "assistant" or msg["weight"] not in (0, 1)):
        yield Problem("bad-weight", f"messages[{index}].weight must be 0 or 1, and only on assistant messages")


def check_example(obj: Any) -> Iterator[Problem]:
    """Everything wrong with one parsed line."""
    if not isinstance(obj, dict):
        yield Problem("not-object", f"line is a JSON {type(obj).__name__}, not an object with 'messages'")
        return
    if "messages" not in obj:
        if {"input", "preferred_output"} <= obj.keys():
            yield Problem("preference-data", "this is preference (DPO) data, not chat SFT data")
        else:
            keys = ", ".join(short(k, 30, quote=False) for k in sorted(obj)[:SHOWN_KEYS])
            more = f" and {len(obj) - SHOWN_KEYS} more" if len(obj) > SHOWN_KEYS else ""
            yield Problem("no-messages", f"object has no 'messages' list (keys: {keys or 'none'}{more})")
        return
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        yield Problem("no-messages", "'messages' must be a non-empty list")
        return
    for i, msg in enumerate(messages):
        yield from _check_message(msg, i)
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if "assistant" not in roles:
        yield Problem("no-assistant", "no assistant message: nothing to train on")
    elif roles[-1] != "assistant":
        yield Problem("last-not-assistant", f"the last message is from {short(roles[-1])}; it must be the "
                      "assistant's answer")


def plain_roles(obj: Any) -> tuple[str, ...] | None:
    """The roles of an example that ``check_example`` would find nothing wrong with, judged fast: every
    message ``{"role": ..., "content": "<text>"}`` with a known role, a system message only first, the
    assistant last; None for anything else (which then gets the full check)."""
    messages = obj.get("messages") if type(obj) is dict else None
    if type(messages) is not list or not messages:
        return None
    roles = []
    for m in messages:
        if type(m) is not dict or len(m) != 2 or type(m.get("content")) is not str:
            return None
        role = m.get("role")
        if type(role) is not str or role not in ROLES:
            return None
        roles.append(role)
    out = tuple(roles)
    if out[-1] != "assistant" or "system" in out[1:]:
        return None
    return out


MAX_SEQUENCES = 4096  # distinct role sequences counted before they are folded into the role counts


class ChatFormatCheck(DataCheck):
    """Every parsed line against the chat schema; lines that did not parse are the hygiene check's."""

    name = "format"

    @classmethod
    def build(cls, context: CheckContext) -> "ChatFormatCheck":
        return cls()

    def __init__(self) -> None:
        super().__init__()
        self.roles: Counter[str] = Counter()
        self.turns: Counter[int] = Counter()
        self.sequences: Counter[tuple[str, ...]] = Counter()  # valid examples by role sequence, folded later
        self.valid = 0

    def observe(self, record: Record) -> list[Finding] | None:
        example = record.example
        if example is None:
            return None
        roles = plain_roles(example)
        if roles is not None:
            self.valid += 1
            self._count(roles)
            return None
        problems = list(check_example(example))
        if not any(p.severity == "error" for p in problems):
            self.valid += 1
            self._count(tuple(m.get("role") for m in example["messages"]))
        return [f for p in problems
                for f in self.finding(p.severity, p.code, p.message, record, hint=HINTS.get(p.code))] or None

    def _count(self, roles: tuple[str, ...]) -> None:
        self.sequences[roles] += 1
        if len(self.sequences) > MAX_SEQUENCES:
            self._fold()

    def _fold(self) -> None:
        """Role and turn counts from the sequences, in the order they were first seen (the report's order)."""
        for roles, n in self.sequences.items():
            for role in roles:
                self.roles[role] += n
            self.turns[roles.count("assistant")] += n
        self.sequences = Counter()

    def part(self) -> "ChatFormatCheck":
        part = self.part_copy()
        part.roles, part.turns, part.sequences, part.valid = Counter(), Counter(), Counter(), 0
        return part

    def merge(self, part: DataCheck) -> None:
        assert isinstance(part, ChatFormatCheck)
        self._fold()
        part._fold()
        self.roles.update(part.roles)
        self.turns.update(part.turns)
        self.valid += part.valid

    def summary(self) -> dict[str, Any]:
        self._fold()
        return {"valid_examples": self.valid, "roles": dict(self.roles),
                "assistant_turns": {str(k): v for k, v in sorted(self.turns.items())}}


HINTS = {
    "preference-data": "use it for DPO (preference) fine-tuning, not this SFT pipeline",
    "last-not-assistant": "end each conversation with the answer the model should learn",
    "no-messages": 'each line must be {"messages": [{"role": ..., "content": ...}, ...]}',
    "bad-content-part": 'a part is {"type": "text", "text": "..."} (or an image_url part); or make content a string',
    "no-text-content": "give the message its text as a {\"type\": \"text\"} part, or a string content",
    "bad-tool-calls": 'tool_calls is a list of {"id": ..., "type": "function", "function": {"name": ..., '
                      '"arguments": "<JSON string>"}}',
}


ftp_config_sections, ftp_data_checks = check_hooks(ChatFormatCheck)
