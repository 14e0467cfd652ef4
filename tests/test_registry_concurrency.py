"""The SQLite registry under real concurrency: 8 processes (not threads: each has its own connection
and SQLite locks, as separate ``ftp run``s do) start at the same instant on a registry file that does
not exist yet, register versions of one name, then race alias moves. Nothing may be lost or doubled and
no process may fail with "database is locked"."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ftp.plugins.registry_sqlite import SqliteRegistry

PROCESSES = 8
WORKER = '''
import json, sys, time
from pathlib import Path
from ftp.plugins.registry_sqlite import SqliteRegistry
from ftp.types import ModelRef, ModelVersion

db, folder, n, mode = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
registry = SqliteRegistry(Path(db))
(folder / f"ready-{n}").touch()
while not (folder / "go").exists():
    time.sleep(0.001)
start = time.perf_counter()
if mode == "register":
    model = ModelRef(kind="adapter", base="b", backend="local", path=Path(f"m{n}"))
    done = [registry.register(ModelVersion(
        name="race", version=0, created_at="t", run_id=f"run-{n}", backend="local", base_model="b", model=model,
        data_sha256={}, hyperparameters={}, metrics={}, pipeline_sha256="p", code_version="c")).version]
else:
    done = []
    for step in range(6):
        target = (n + step) % 8 + 1
        done.append([target, registry.set_alias("race", "champion", target, f"worker {n} step {step}")])
print(json.dumps({"done": done, "seconds": time.perf_counter() - start}))
'''


def race(tmp_path: Path, db: Path, mode: str) -> tuple[list[dict[str, Any]], float]:
    """Start the workers, wait until every one has imported ftp and is waiting, then let them all go;
    returns their outputs and the wall time from the go signal until the last one finished."""
    folder = tmp_path / mode
    folder.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    procs = [subprocess.Popen([sys.executable, str(script), str(db), str(folder), str(n), mode],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(PROCESSES)]
    deadline = time.monotonic() + 120
    while len(list(folder.glob("ready-*"))) < PROCESSES:
        assert time.monotonic() < deadline, "workers did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
        time.sleep(0.01)
    start = time.perf_counter()
    (folder / "go").touch()
    results = [p.communicate(timeout=120) for p in procs]
    elapsed = time.perf_counter() - start
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0 and "locked" not in err, err
    return [json.loads(out) for out, _ in results], elapsed


def test_eight_processes_register_the_same_name_at_once(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    outputs, elapsed = race(tmp_path, db, "register")
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    numbers = sorted(n for o in outputs for n in o["done"])
    assert numbers == list(range(1, PROCESSES + 1))  # distinct, consecutive, none lost
    registry = SqliteRegistry(db)
    assert sorted(v.run_id for v in registry.list("race")) == sorted(f"run-{n}" for n in range(PROCESSES))
    assert {v.run_id: v.version for v in registry.list("race")} == {
        f"run-{n}": o["done"][0] for n, o in enumerate(outputs)}
    entries = registry.history("race")
    assert [(e.action, e.version) for e in entries] == [("register", n) for n in range(1, PROCESSES + 1)]
    slowest = max(o["seconds"] for o in outputs)
    print(f"\n{PROCESSES} processes registering 'race' at once: {elapsed:.3f} s wall from the go signal to the "
          f"last exit, slowest register() {slowest:.3f} s; registry: versions 1-{PROCESSES}, "
          f"{len(entries)} audit entries")

    outputs, elapsed = race(tmp_path, db, "alias")
    moves = [(target, previous) for o in outputs for target, previous in o["done"]]
    logged = [e for e in registry.history("race") if e.action == "alias"]
    assert len(logged) == sum(target != previous for target, previous in moves)  # a no-op move logs nothing
    assert logged[0].previous is None
    assert all(later.previous == earlier.version for earlier, later in zip(logged, logged[1:]))  # one chain, no gaps
    pairs = sorted(((e.version, e.previous or 0) for e in logged))
    assert pairs == sorted((target, previous or 0) for target, previous in moves if target != previous)
    assert registry.alias("race", "champion") == logged[-1].version
    assert len({e.reason for e in logged}) == len(logged)  # each move is its own entry
    print(f"{PROCESSES} processes x 6 moves of race@champion at once: {elapsed:.3f} s; {len(logged)} moves logged "
          f"as one chain, champion ends at v{logged[-1].version}")
