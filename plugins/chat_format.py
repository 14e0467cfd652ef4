"""The chat JSONL format that OpenAI and Azure fine-tuning accept, checked line by line.

One JSON object per line with a ``messages`` list; roles system/user/assistant/tool; a system
message only first; the conversation ends with the assistant's answer, which is what is trained.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from ftp import hookimpl
from ftp.checks import DataCheck, Record
from ftp.types import CheckContext, ConfigSection, Finding

ROLES = {"system", "user", "assistant", "tool", "function"}
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}


def _check_message(msg: Any, index: int) -> Iterator[tuple[str, str]]:
    if not isinstance(msg, dict):
        yield "message-not-object", f"messages[{index}] is not an object"
        return
    role = msg.get("role")
    if role not in ROLES:
        yield "bad-role", f"messages[{index}].role is {role!r}; expected one of {', '.join(sorted(ROLES))}"
    for key in msg.keys() - MESSAGE_KEYS:
        yield "unknown-key", f"messages[{index}] has unknown key {key!r}"
    content = msg.get("content")
    if content is None and not msg.get("tool_calls") and not msg.get("function_call"):
        yield "missing-content", f"messages[{index}] has no content"
    elif content is not None and not isinstance(content, (str, list)):
        yield "bad-content", f"messages[{index}].content must be a string or a list of parts"
    if role == "system" and index != 0:
        yield "system-not-first", f"messages[{index}] is a system message; only the first message may be"
    if "weight" in msg and (role != "assistant" or msg["weight"] not in (0, 1)):
        yield "bad-weight", f"messages[{index}].weight must be 0 or 1, and only on assistant messages"


def check_example(obj: Any) -> Iterator[tuple[str, str]]:
    """(code, message) for everything wrong with one parsed line."""
    if not isinstance(obj, dict):
        yield "not-object", f"line is a JSON {type(obj).__name__}, not an object with 'messages'"
        return
    if "messages" not in obj:
        if {"input", "preferred_output"} <= obj.keys():
            yield "preference-data", "this is preference (DPO) data, not chat SFT data"
        else:
            yield "no-messages", f"object has no 'messages' list (keys: {', '.join(sorted(obj)) or 'none'})"
        return
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        yield "no-messages", "'messages' must be a non-empty list"
        return
    for i, msg in enumerate(messages):
        yield from _check_message(msg, i)
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if "assistant" not in roles:
        yield "no-assistant", "no assistant message: nothing to train on"
    elif roles[-1] != "assistant":
        yield "last-not-assistant", f"the last message is from {roles[-1]!r}; it must be the assistant's answer"


class ChatFormatCheck(DataCheck):
    """Every parsed line against the chat schema; lines that did not parse are the hygiene check's."""

    name = "format"

    def __init__(self) -> None:
        super().__init__()
        self.roles: Counter[str] = Counter()
        self.turns: Counter[int] = Counter()
        self.valid = 0

    def observe(self, record: Record) -> list[Finding] | None:
        if record.example is None:
            return None
        problems = list(check_example(record.example))
        if not problems:
            self.valid += 1
            messages = record.example["messages"]
            self.roles.update(m.get("role") for m in messages)
            self.turns[sum(m.get("role") == "assistant" for m in messages)] += 1
            return None
        return [f for code, message in problems
                for f in self.finding("error", code, message, record, hint=HINTS.get(code))]

    def summary(self) -> dict[str, Any]:
        return {"valid_examples": self.valid, "roles": dict(self.roles),
                "assistant_turns": {str(k): v for k, v in sorted(self.turns.items())}}


HINTS = {
    "preference-data": "use it for DPO (preference) fine-tuning, not this SFT pipeline",
    "last-not-assistant": "end each conversation with the answer the model should learn",
    "no-messages": 'each line must be {"messages": [{"role": ..., "content": ...}, ...]}',
}


@hookimpl
def ftp_config_sections() -> list[ConfigSection]:
    return [ChatFormatCheck.config_section()]


@hookimpl
def ftp_data_checks(context: CheckContext) -> list[DataCheck]:
    return [ChatFormatCheck()]
