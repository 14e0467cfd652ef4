"""The LLM judge's transport: one verdict per call to an OpenAI-compatible (or Azure OpenAI) endpoint,
with lenient JSON parsing, retries, and a SQLite cache of verdicts.

Why each piece exists (docs/evaluation.md, mlops-anchors 1.4):

- a judge that answers in prose, in a code fence or cut off by ``max_tokens`` must not score an
  answer 0: such a verdict is retried, then counted as ``judge_error`` and left out of the mean;
- a network failure is a judge error too, never a crash; an endpoint that refuses every connection
  stops being called after a few verdicts (each call would fail the same way) and says so once;
- verdicts are cached by (base_url, model, template hash, input hash), so re-running an evaluation
  (a second candidate, a resumed run) costs no calls and gives the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ftp.config.settings import JudgeSettings
from ftp.errors import FtpError, UserError
from ftp.sqlite_store import connect

Parser = Callable[[dict[str, Any]], "dict[str, Any] | None"]

UNREACHABLE_AFTER = 3  # verdicts that failed only on connections, with no call ever answered, before giving up
FIX_PROMPT = "That reply was not the JSON object asked for. Reply with only the JSON object, nothing else."

CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS judge_verdicts (
    base_url TEXT NOT NULL,
    model TEXT NOT NULL,
    template_sha256 TEXT NOT NULL,
    input_sha256 TEXT NOT NULL,
    raw TEXT NOT NULL,
    verdict TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (base_url, model, template_sha256, input_sha256)
);
"""

# (base_url, model) of endpoints that answered 400 to response_format: not sent again in this process
_NO_RESPONSE_FORMAT: set[tuple[str, str]] = set()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def input_hash(value: Any) -> str:
    """The hash of what the judge is shown (conversation, reference, answers in order), canonically."""
    return sha256(json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")))


# --- parsing ---


def _strip_fence(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else text[3:]
        end = text.rfind("```")
        text = text[:end] if end >= 0 else text
    return text.strip()


def extract_json(text: str | None) -> dict[str, Any] | None:
    """The first JSON object in a reply: the whole reply, inside a code fence, or with prose around it."""
    if not text:
        return None
    candidate = _strip_fence(text)
    try:
        value = json.loads(candidate)
        if isinstance(value, dict):
            return value
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = decoder.raw_decode(text, start)
            if isinstance(value, dict):
                return value
        except ValueError:
            pass
        start = text.find("{", start + 1)
    return None


def parse_score(obj: dict[str, Any]) -> dict[str, Any] | None:
    """A pointwise verdict ``{reason, score 1-5, pass}``; None when the score is missing or off the scale.
    ``pass`` defaults to score >= 3 (the usual threshold of 1-5 judges) when the judge leaves it out."""
    score = obj.get("score")
    if isinstance(score, str):
        try:
            score = float(score.strip())
        except ValueError:
            return None
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 1 <= score <= 5:
        return None
    passed = obj.get("pass")
    if isinstance(passed, str) and passed.strip().lower() in ("true", "false"):
        passed = passed.strip().lower() == "true"
    if not isinstance(passed, bool):
        passed = score >= 3
    return {"reason": str(obj.get("reason", "")), "score": float(score), "pass": passed}


def parse_winner(obj: dict[str, Any]) -> dict[str, Any] | None:
    """A pairwise verdict ``{reason, winner "1"|"2"|"tie"}``; None for anything else."""
    winner = str(obj.get("winner", "")).strip().strip("\"'[]").lower()
    if winner not in ("1", "2", "tie"):
        return None
    return {"reason": str(obj.get("reason", "")), "winner": winner}


# --- cache ---


class VerdictCache:
    """Parsed verdicts and the raw outputs they came from, in one SQLite file (``evaluate.judge.cache``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, key: tuple[str, str, str, str]) -> tuple[str, dict[str, Any]] | None:
        with connect(self.path, CACHE_SCHEMA) as conn:
            row = conn.execute("SELECT raw, verdict FROM judge_verdicts WHERE base_url=? AND model=? AND "
                               "template_sha256=? AND input_sha256=?", key).fetchone()
        return (row["raw"], json.loads(row["verdict"])) if row else None

    def put(self, key: tuple[str, str, str, str], raw: str, verdict: dict[str, Any]) -> None:
        with connect(self.path, CACHE_SCHEMA) as conn:
            conn.execute("INSERT OR REPLACE INTO judge_verdicts VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (*key, raw, json.dumps(verdict, sort_keys=True), time.time()))


# --- calls ---


@dataclass
class Verdict:
    """One judgement: ``parsed`` when the judge gave a usable verdict, else ``error`` says why."""

    parsed: dict[str, Any] | None
    raw: str
    error: str = ""
    cached: bool = False


@dataclass
class CallStats:
    calls: int = 0
    cached: int = 0  # verdicts read from the cache (no call)
    answered: int = 0  # calls that got any HTTP response
    refused_verdicts: int = 0  # verdicts whose every attempt failed to connect
    errors: list[str] = field(default_factory=list)
    cache_warning: str = ""


def api_key(settings: JudgeSettings) -> str:
    """The key from ``api_key_env``; "none" for local servers that need none."""
    if settings.api_key_env is None:
        return "none"
    if settings.api_key_env not in os.environ:
        raise UserError(f"evaluate.judge.api_key_env: the environment variable {settings.api_key_env} is not set; "
                        "export it with the judge's API key, or remove api_key_env for a server that needs none")
    return os.environ[settings.api_key_env] or "none"


def make_client(settings: JudgeSettings) -> Any:
    """``openai.OpenAI`` for any compatible server, ``openai.AzureOpenAI`` when ``api_version`` is set."""
    try:
        import openai
    except ImportError:
        raise UserError("evaluate.judge needs the openai package: pip install 'ftp[eval]'") from None
    key = api_key(settings)
    if settings.api_version:
        return openai.AzureOpenAI(azure_endpoint=settings.base_url, api_version=settings.api_version, api_key=key,
                                  timeout=settings.timeout, max_retries=0)
    return openai.OpenAI(base_url=settings.base_url, api_key=key, timeout=settings.timeout, max_retries=0)


def uses_completion_tokens(settings: JudgeSettings) -> bool:
    """OpenAI and Azure reasoning models refuse ``max_tokens``; every model there takes the newer name."""
    host = (urlparse(settings.base_url).hostname or "").lower()
    return bool(settings.api_version) or host == "api.openai.com" or host.endswith(".openai.azure.com")


class Judge:
    """Asks one judge model for verdicts; counts calls and failures for the report's details."""

    def __init__(self, settings: JudgeSettings, template_sha256: str) -> None:
        self.settings = settings
        self.template_sha256 = template_sha256
        self.client = make_client(settings)
        self.stats = CallStats()
        self.cache = VerdictCache(Path(settings.cache)) if settings.cache is not None else None

    @property
    def unreachable(self) -> bool:
        return self.stats.answered == 0 and self.stats.refused_verdicts >= UNREACHABLE_AFTER

    def warning(self) -> str:
        """One line for details["warning"]: an unreachable endpoint, failed calls, a broken cache."""
        parts = []
        if self.stats.answered == 0 and self.stats.refused_verdicts:
            parts.append(f"could not connect to the judge at {self.settings.base_url} on any call "
                         f"({self.stats.errors[0] if self.stats.errors else 'connection refused'}); "
                         "is the server running? (evaluate.judge.base_url)")
        elif self.stats.errors:
            parts.append(f"{len(self.stats.errors)} judge call(s) failed, first: {self.stats.errors[0]}")
        if self.stats.cache_warning:
            parts.append(self.stats.cache_warning)
        return "; ".join(parts)

    def ask(self, messages: list[dict[str, str]], shown: Any, schema: dict[str, Any], parse: Parser) -> Verdict:
        """A verdict on ``messages`` (``shown`` is what they present, for the cache key): from the cache,
        or from up to 1 + retries calls; truncated or unparseable replies are retried, then an error."""
        key = (self.settings.base_url, self.settings.model, self.template_sha256, input_hash(shown))
        hit = self._cache_get(key)
        if hit is not None:
            self.stats.cached += 1
            return Verdict(parsed=hit[1], raw=hit[0], cached=True)
        if self.unreachable:
            return Verdict(parsed=None, raw="", error="not called: the judge endpoint is unreachable")
        verdict = self._attempts(list(messages), schema, parse)
        if verdict.parsed is not None:
            self._cache_put(key, verdict.raw, verdict.parsed)
        return verdict

    def _attempts(self, messages: list[dict[str, str]], schema: dict[str, Any], parse: Parser) -> Verdict:
        import openai

        raw, error, refused = "", "", 0
        for _ in range(1 + self.settings.retries):
            try:
                raw, finish = self._call(messages, schema)
            except openai.APIConnectionError as exc:  # includes timeouts
                error, refused = f"{type(exc).__name__}: {exc}", refused + 1
                self.stats.errors.append(error)
                continue
            except openai.APIStatusError as exc:
                error = f"HTTP {exc.status_code}: {exc.message}"
                self.stats.errors.append(error)
                if exc.status_code in (400, 401, 403, 404, 422):
                    break  # the same request fails the same way
                continue
            except (openai.OpenAIError, ValueError, AttributeError, IndexError, TypeError) as exc:
                error = f"unusable response: {type(exc).__name__}: {exc}"
                self.stats.errors.append(error)
                continue
            obj = extract_json(raw)
            parsed = parse(obj) if obj is not None else None
            if finish == "length":
                error = "truncated by max_tokens (finish_reason length; raise evaluate.judge.max_tokens)"
            elif parsed is None:
                error = "malformed verdict (no JSON object with the expected keys)"
            else:
                return Verdict(parsed=parsed, raw=raw)
            messages = messages[:2] + [{"role": "assistant", "content": raw}, {"role": "user", "content": FIX_PROMPT}]
        if refused == 1 + self.settings.retries:
            self.stats.refused_verdicts += 1
        return Verdict(parsed=None, raw=raw, error=error)

    def _call(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> tuple[str, str | None]:
        """One request; a 400 to ``response_format`` is retried once without it, and remembered."""
        import openai

        s = self.settings
        kwargs: dict[str, Any] = {"model": s.model, "messages": messages, "temperature": 0}
        kwargs["max_completion_tokens" if uses_completion_tokens(s) else "max_tokens"] = s.max_tokens
        endpoint = (s.base_url, s.model)
        if endpoint not in _NO_RESPONSE_FORMAT:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": schema}
        self.stats.calls += 1
        try:
            response = self.client.chat.completions.create(**kwargs)
        except openai.BadRequestError:
            self.stats.answered += 1
            if "response_format" not in kwargs:
                raise
            kwargs.pop("response_format")
            self.stats.calls += 1
            response = self.client.chat.completions.create(**kwargs)
            _NO_RESPONSE_FORMAT.add(endpoint)  # the server took the request without it
        self.stats.answered += 1
        choice = response.choices[0]
        return choice.message.content or "", choice.finish_reason

    def _cache_get(self, key: tuple[str, str, str, str]) -> tuple[str, dict[str, Any]] | None:
        if self.cache is None:
            return None
        try:
            return self.cache.get(key)
        except (FtpError, sqlite3.Error, ValueError) as exc:
            self._cache_failed(exc)
            return None

    def _cache_put(self, key: tuple[str, str, str, str], raw: str, parsed: dict[str, Any]) -> None:
        if self.cache is None:
            return
        try:
            self.cache.put(key, raw, parsed)
        except (FtpError, sqlite3.Error) as exc:
            self._cache_failed(exc)

    def _cache_failed(self, exc: Exception) -> None:
        """A broken cache file costs calls, not the evaluation: stop using it and say so."""
        self.stats.cache_warning = f"judge cache {self.cache.path if self.cache else ''} not used: {exc}"
        self.cache = None
