"""The chat JSONL format that OpenAI and Azure fine-tuning accept, checked line by line.

One JSON object per line with a ``messages`` list; roles system/user/assistant/tool; a system
message only first; the conversation ends with the assistant's answer, which is what is trained.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftp import hookimpl
from ftp.types import DataBundle, Finding

ROLES = {"system", "user", "assistant", "tool", "function"}
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}
MAX_PER_CODE = 50


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


def check_file(path: Path) -> Iterator[Finding]:
    counts: Counter[str] = Counter()
    try:
        fh = path.open("r", encoding="utf-8-sig")
    except OSError as exc:
        yield Finding(severity="error", code="unreadable", message=str(exc), file=str(path))
        return
    with fh:
        number = 0
        try:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    problems = list(check_example(json.loads(line)))
                except json.JSONDecodeError as exc:
                    problems = [("invalid-json", f"not valid JSON: {exc.msg} at column {exc.colno}")]
                for code, message in problems:
                    counts[code] += 1
                    if counts[code] <= MAX_PER_CODE:
                        yield Finding(severity="error", code=code, message=message, file=str(path), line=number)
        except UnicodeDecodeError:
            yield Finding(severity="error", code="not-utf8", message="file is not valid UTF-8", file=str(path),
                          line=number + 1, hint="re-encode the file as UTF-8")
    for code, n in counts.items():
        if n > MAX_PER_CODE:
            yield Finding(severity="error", code=code, file=str(path),
                          message=f"{n - MAX_PER_CODE} more lines with the same problem")


@hookimpl
def ftp_validate_data(data: DataBundle, settings: dict[str, Any]) -> list[Finding]:
    return [f for ref in data.files() for f in check_file(ref.path)]
