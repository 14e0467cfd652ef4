"""``ftp serve``'s automatic rollback: a thread that looks at every rollout each ``auto_rollback.every``
and, when the new slot is worse than the old one (``ftp.monitor.rollout``), sets it to 0%. The router
reads the slots on every request, so the next request already goes to the old version."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from ftp.config.monitor_settings import AutoRollbackSettings, seconds

log = logging.getLogger(__name__)


class RollbackWatcher:
    """``flush`` (the request log's, so the latest answers count) is called before each look;
    ``apply_for(name)`` gives the deployer's ``apply_traffic`` for backends that split traffic themselves."""

    def __init__(self, store: Path, log_path: Path, settings: AutoRollbackSettings,
                 flush: Callable[[], None] = lambda: None,
                 apply_for: Callable[[str], Any] = lambda _name: None) -> None:
        self.store, self.log_path, self.settings = Path(store), Path(log_path), settings
        self.flush, self.apply_for = flush, apply_for
        self.rolled_back: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="auto-rollback", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        every = seconds(self.settings.every)
        while not self._stop.wait(every):
            try:
                self.look()
            except Exception as exc:  # noqa: BLE001 (the watcher must outlive a bad look; the server goes on)
                log.warning("auto-rollback: %s: %s", type(exc).__name__, exc)

    def look(self) -> list[str]:
        """Judge each rollout once; the names rolled back."""
        from ftp.deploy.slots import names, state_of
        from ftp.monitor.feedback import labels, read_feedback
        from ftp.monitor.rollout import compare, reasons, roll_back, rollout_of
        from ftp.monitor.windows import now
        from ftp.serve.request_log import iso_utc, read_requests

        self.flush()
        rollouts = {name: state for name in names(self.store) if rollout_of(state := state_of(self.store, name))}
        if not rollouts or not self.log_path.is_file():
            return []
        since = iso_utc(now() - timedelta(seconds=seconds(self.settings.since)))
        rows, feedback = read_requests(self.log_path, since), read_feedback(self.log_path)  # once for every rollout
        done = []
        for name, state in rollouts.items():
            mine = [r for r in rows if r["endpoint"] == name]
            comparison = compare(state, mine, labels(mine, feedback), self.settings)
            why = reasons(comparison)
            if comparison and why and roll_back(self.store, name, comparison, why, self.apply_for(name), self.log_path):
                log.warning("auto-rollback: %s: %s", name, "; ".join(why))
                done.append(name)
        self.rolled_back.extend(done)
        return done
