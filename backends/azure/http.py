"""One way to talk HTTP to Azure: retries for transient failures, one-line errors, no secrets.

Transient means the request can simply be sent again: 429 (throttled), 500/502/503/504, and a
connection that failed or was reset. Waits grow exponentially with jitter, ``Retry-After`` wins when
the service sends it, and a request gives up after ``retry.attempts`` tries or ``retry.max_total``
seconds of waiting. Any other 4xx fails at once with the service's own code and message: retrying a
bad payload only burns time. Time goes through a ``Clock`` so tests run without sleeping.

A request that creates something (a job) is not blindly repeated after a 5xx or a reset: the service
may have acted on it. Such callers pass ``retry_ambiguous=False`` and look before sending again.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ftp.errors import FtpError

from .settings import RetrySettings

log = logging.getLogger("ftp.azure")
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


# Replaced by tests with a clock that records waits instead of sleeping.
CLOCK: Clock = SystemClock()


class AzureError(FtpError):
    """An Azure request failed; the message is one line a user can read, with no secret in it."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 transient: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.transient = status, code, transient


def error_fields(body: Any) -> tuple[str | None, str | None]:
    """(code, message) from Azure's ``{"error": {"code", "message", ...}}`` or OpenAI's ``{"error": {"message", "type", "code"}}``."""
    if not isinstance(body, Mapping):
        return None, None
    err = body.get("error", body)
    if not isinstance(err, Mapping):
        return None, str(err) if err else None
    code = err.get("code") or err.get("type")
    inner = err.get("innererror")
    if not code and isinstance(inner, Mapping):
        code = inner.get("code")
    message = err.get("message")
    return (str(code) if code else None), (" ".join(str(message).split()) if message else None)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After`` (seconds or an HTTP date), or None."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


@dataclass
class Backoff:
    """The waits of one request: exponential with full jitter, bounded per wait and in total."""

    policy: RetrySettings
    clock: Clock
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0
    waited: float = 0.0

    def next_wait(self, hinted: float | None) -> float | None:
        """The wait before the next try, or None when the budget (tries or time) is spent."""
        self.attempt += 1
        if self.attempt >= self.policy.attempts:
            return None
        if hinted is not None:
            wait = min(hinted, self.policy.max_delay)
        else:
            ceiling = min(self.policy.max_delay, self.policy.base_delay * 2 ** (self.attempt - 1))
            wait = ceiling * (0.5 + 0.5 * self.rng.random())
        if self.waited + wait > self.policy.max_total:
            return None
        self.waited += wait
        return wait


def create_once(send: Callable[[], dict[str, Any]], find: Callable[[], dict[str, Any] | None],
                policy: RetrySettings, clock: Clock) -> dict[str, Any]:
    """Send a request that creates something (a file, a job) so that it exists once.

    After an ambiguous failure (a reset, a 5xx) the service may have acted all the same, so ``find``
    looks for what the request would have made before it is sent again. Non-transient failures, and
    transient ones past the retry budget, are raised as they came."""
    backoff = Backoff(policy, clock)
    while True:
        try:
            return send()
        except AzureError as exc:
            if not exc.transient:
                raise
            found = find()
            if found is not None:
                log.warning("%s, but it had been created: %s", exc, found.get("id"))
                return found
            wait = backoff.next_wait(None)
            if wait is None:
                raise
            clock.sleep(wait)


def describe(method: str, url: str) -> str:
    """``GET /openai/fine_tuning/jobs/ftjob-1``: the path only (the host is in the settings, the query says nothing)."""
    path = url.split("://", 1)[-1]
    path = "/" + path.split("/", 1)[1] if "/" in path else "/"
    return f"{method} {path.split('?', 1)[0]}"


class Http:
    """A ``requests`` session with Azure's retry rules; ``headers`` supplies auth on every try (tokens expire)."""

    def __init__(self, headers: Callable[[], dict[str, str]], policy: RetrySettings, clock: Clock | None = None,
                 timeout: float = 60.0) -> None:
        import requests

        self.session = requests.Session()
        self.headers = headers
        self.policy = policy
        self.clock = clock or CLOCK
        self.timeout = timeout

    def request(self, method: str, url: str, *, retry_ambiguous: bool = True, **kwargs: Any) -> Any:
        """The response of the first try that is not transient; raise ``AzureError`` otherwise."""
        import requests

        backoff = Backoff(self.policy, self.clock)
        what = describe(method, url)
        while True:
            try:
                response = self.session.request(method, url, headers=self.headers(), timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                failure = AzureError(f"{what}: connection failed ({type(exc).__name__})", transient=True)
                hinted = None
                ambiguous = True
            else:
                if response.status_code < 400:
                    return response
                failure = self._failure(what, response)
                if not failure.transient:
                    raise failure
                hinted = retry_after(response.headers)
                ambiguous = response.status_code != 429
            if ambiguous and not retry_ambiguous:
                raise failure
            wait = backoff.next_wait(hinted)
            if wait is None:
                raise AzureError(f"{failure} (gave up after {backoff.attempt} tries and {backoff.waited:.0f}s of "
                                 "waiting; Azure may be overloaded, try again later or raise backends.azure.retry)",
                                 status=failure.status, code=failure.code, transient=True)
            log.warning("%s; retrying in %.1fs (try %d of %d)", failure, wait, backoff.attempt + 1, self.policy.attempts)
            self.clock.sleep(wait)

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self.request(method, url, **kwargs)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise AzureError(f"{describe(method, url)}: the answer is not JSON "
                             f"(HTTP {response.status_code}, {len(response.content)} bytes)") from None

    @staticmethod
    def _failure(what: str, response: Any) -> AzureError:
        try:
            body = response.json()
        except ValueError:
            body = None
        code, message = error_fields(body)
        status = response.status_code
        text = f"{what}: HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        if status in (401, 403):
            text += (" (check the API key variable or the identity's role on the resource: "
                     "see docs/backends/azure.md)")
        return AzureError(text, status=status, code=code, transient=status in TRANSIENT_STATUS)
