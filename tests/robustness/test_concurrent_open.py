"""Several processes opening one new SQLite database at once (three benches started together,
a run and the app) create its schema once, one after the other, and all of them can use it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from instrument import migrations
from instrument.storage import Store

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
ROUNDS = 2
OPEN = """
import sys
from instrument.storage import Store
store = Store(sys.argv[1])
store.list_runs()
store.close()
print("ok")
"""


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        db = str(tmp_path / f"new-{round_}.db")
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN, db],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        outputs = [proc.communicate(timeout=60)[0] for proc in procs]
        assert [proc.returncode for proc in procs] == [0] * PROCESSES, outputs
        store = Store(db)
        try:
            with store.engine.connect() as conn:
                assert migrations.current(conn) == migrations.head()
        finally:
            store.close()
