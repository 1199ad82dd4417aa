"""The same storage code on a real PostgreSQL server: concurrent benches, the panel, errors."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from instrument import migrations
from instrument.cli import main
from instrument.engine import RunEngine
from instrument.panel import run_panel
from instrument.runbase import RunOptions
from instrument.station import simulated_station
from instrument.storage import Store
from protocols import bundled_protocols, load_protocol

pytestmark = pytest.mark.slow

NATEM = next(p for p in bundled_protocols() if p.name == "natem-msc-dose-series.yaml")


@pytest.fixture
def pg_url(postgres_server_url: str) -> str:
    from tests.pg import fresh_database

    return fresh_database(postgres_server_url, f"bench_{uuid.uuid4().hex[:8]}")


def test_two_benches_write_to_one_database_at_once(pg_url: str) -> None:
    protocol = load_protocol(NATEM)
    outcomes = {}

    def bench(seed: int) -> None:
        store = Store(pg_url)
        options = RunOptions(operator=f"bench-{seed}", seed=seed, speed=math.inf)
        outcomes[seed] = RunEngine(protocol, simulated_station(), store, options).run()
        store.close()

    threads = [threading.Thread(target=bench, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert {o.status for o in outcomes.values()} == {"completed"}
    store = Store(pg_url)
    assert store.engine.dialect.name == "postgresql"
    for outcome in outcomes.values():
        for ch in (1, 2, 3, 4):
            _seq, t_ms, _v = store.channel_samples(outcome.run_id, "tem", ch)
            assert t_ms == list(range(0, 100 * len(t_ms), 100)) and len(t_ms) >= 36000
        assert len(store.latest_results(outcome.run_id)) == 4
    store.close()


def test_panel_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    store = Store(pg_url)
    outcome = run_panel(
        "VL-BM-01", store, simulate=True, speed=math.inf, out_dir=None, say=lambda _t: None
    )
    assert outcome.assessment["decision"]["class_id"] == "iv-acceptable"
    assert len(outcome.runs["elisa"]) >= 1
    store.close()


def test_a_server_that_is_down_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:9/hemocompat"
    code = main(["run", str(NATEM), "--simulate", "--db", url])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "cannot open the results database" in err and "127.0.0.1:9" in err


def test_benches_opening_a_new_database_at_once_migrate_it_once(pg_url: str) -> None:
    code = "import sys; from instrument.cli import main; sys.exit(main(sys.argv[1:]))"
    benches = [
        subprocess.Popen(
            [sys.executable, "-c", code, "db", "upgrade", "--db", pg_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in benches]
    assert [p.returncode for p in benches] == [0, 0, 0], outputs
    assert sum(f"none → {migrations.head()}" in out for out in outputs) >= 1
    store = Store(pg_url)
    with store.engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
    store.close()
