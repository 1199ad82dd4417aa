"""Small core pieces: bounded live buffers, the scaled clock, station files."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from instrument.cli import cli
from instrument.clock import Clock
from instrument.errors import StationError
from instrument.live import LiveTrace
from instrument.station import load_station, simulated_station
from protocols import bundled_protocols


def test_live_trace_stays_bounded_and_ordered() -> None:
    trace = LiveTrace(max_points=1000)
    for i in range(100_000):
        trace.append(i * 0.01, float(i))
    t, v = trace.snapshot()
    assert len(t) <= 1000
    assert trace.total_points == 100_000
    assert t[0] == 0.0 and t[-1] > 990.0
    assert (t[1:] > t[:-1]).all()
    assert v == pytest.approx(t * 100)


def test_clock_scales_sleep() -> None:
    clock = Clock(speed=100.0)
    start = time.monotonic()
    clock.sleep(5.0)
    assert 0.04 <= time.monotonic() - start < 1.0
    assert Clock(math.inf).wall_seconds(3600) == 0.0
    cancel = threading.Event()
    cancel.set()
    assert clock.sleep(100.0, cancel) is False
    with pytest.raises(ValueError, match="speed"):
        Clock(0)


def test_station_file(tmp_path: Path) -> None:
    path = tmp_path / "station.yaml"
    path.write_text(
        "station: bench-1\ninstruments:\n  tem:\n    driver: tem4\n    resource: /dev/ttyUSB0\n"
    )
    station = load_station(path)
    assert station.name == "bench-1"
    spec = station.spec("tem")
    assert (spec.driver, spec.resource, spec.simulated) == ("tem4", "/dev/ttyUSB0", False)
    with pytest.raises(StationError, match="no instrument for role 'loop'"):
        station.spec("loop")
    assert simulated_station().spec("tem").simulated


def test_station_file_errors_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "station.yaml"
    path.write_text("instruments:\n  tem:\n    driver: tem9\n  loop: 5\n")
    with pytest.raises(StationError) as info:
        load_station(path)
    text = str(info.value)
    assert "instruments.tem.driver: 'tem9' is not a driver" in text
    assert "instruments.loop" in text
    with pytest.raises(StationError, match="cannot read station file"):
        load_station(tmp_path / "missing.yaml")


def test_station_names_its_database_and_the_run_uses_it(tmp_path: Path) -> None:
    db = tmp_path / "bench.db"
    path = tmp_path / "station.yaml"
    path.write_text(f"station: bench-2\ndatabase: {db}\ninstruments:\n  tem: simulate\n")
    assert load_station(path).database == str(db)
    protocol = next(p for p in bundled_protocols() if p.name == "natem-msc-dose-series.yaml")
    args = ["run", str(protocol), "--station", str(path), "--speed", "max", "--auto-ack"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(cli, ["runs", "list", "--db", str(db)]).output
    assert db.exists() and "completed" in listed


def test_station_file_rejects_unknown_top_level_keys(tmp_path: Path) -> None:
    path = tmp_path / "station.yaml"
    path.write_text("station: b\ndatabse: x.db\ndatabase: ''\ninstruments:\n  tem: simulate\n")
    with pytest.raises(StationError) as info:
        load_station(path)
    assert "unknown keys ['databse']" in str(info.value)
    assert "database: '' is not a file path or database URL" in str(info.value)
