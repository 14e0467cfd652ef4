"""Time windows over the request log: the period ``since`` .. ``until`` cut into windows of one size
that end at ``until``, so the latest window is always a whole one ("the last hour")."""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ftp.serve.request_log import iso_utc


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime
    window_s: float

    @classmethod
    def ending(cls, until: datetime, since_s: float, window_s: float) -> "Period":
        window_s = min(window_s, since_s)
        return cls(until - timedelta(seconds=since_s), until, window_s)

    def starts(self) -> list[datetime]:
        """Each window's start, oldest first; the first may be cut short by ``since``."""
        count = math.ceil((self.until - self.since).total_seconds() / self.window_s - 1e-9)
        starts = [self.until - timedelta(seconds=self.window_s * (count - i)) for i in range(count)]
        return [max(s, self.since) for s in starts]

    @functools.cached_property
    def _starts(self) -> list[datetime]:
        return self.starts()

    def labels(self) -> list[str]:
        return [iso_utc(s) for s in self.starts()]

    def index(self, ts: str) -> int | None:
        """The window a log time stamp falls in, or None outside the period."""
        moment = parse(ts)
        if moment < self.since or moment >= self.until:
            return None
        return bisect.bisect_right(self._starts, moment) - 1  # a window holds its start, not its end


def parse(ts: str) -> datetime:
    moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def now() -> datetime:
    return datetime.now(timezone.utc)
