"""Gap-free acquisition across lost links: reconnection, replay and exact accounting.

Under corrupted frames, two dropped connections (the simulator hangs up, and its pty comes
back on a new path) and a stall, every data frame the simulated instrument generated is
stored exactly once. A link that does not come back fails the run with a clear message and
everything received kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.wire import loop8 as loop_wire
from drivers.wire import tem4 as tem_wire
from instrument import simulation
from instrument.engine import RunEngine
from instrument.loop_engine import LoopRunEngine
from instrument.runbase import RunOptions
from instrument.station import simulated_station
from instrument.storage import Store
from protocols import load_protocol
from tests.robustness.protocols import write_loop, write_tem

#: < 1 % corrupted frames, two disconnects and one stall (triggered by data sequence numbers).
FAULTS = "corrupt=0.005,disconnect@seq15000,stall@seq30000=1,disconnect@seq45000"


def _recording(monkeypatch: pytest.MonkeyPatch, starter: str) -> list[Any]:
    """Make the run's built-in simulators keep every frame they generate."""
    started: list[Any] = []
    original = getattr(simulation, starter)

    def start(*args: Any, **kwargs: Any) -> Any:
        sim = original(*args, **kwargs)
        sim.record_frames()  # before the run starts a channel: nothing generated yet
        started.append(sim)
        return sim

    monkeypatch.setattr(simulation, starter, start)
    return started


def tem_emitted(sim: Any) -> list[tuple[int, int, int, float]]:
    """(seq, channel, t_ms, amplitude mm) of every D frame the simulator generated."""
    frames = (tem_wire.parse_line(f) for f in sim.emitted_frames())
    return sorted(
        (m.seq, m.channel, m.t_ms, m.amp_mm) for m in frames if isinstance(m, tem_wire.DataFrame)
    )


def loop_emitted(sim: Any) -> list[tuple[int, int, int, float]]:
    """(seq, loop, t_ms, motion ‰) of every L frame the simulator generated."""
    frames = (loop_wire.parse_line(f) for f in sim.emitted_frames())
    return sorted(
        (m.seq, m.loop, m.t_ms, float(m.motion_permille))
        for m in frames
        if isinstance(m, loop_wire.LoopFrame)
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "runs.db")
    yield opened
    opened.close()


def _stored(store: Store, run_id: int) -> list[tuple[int, int, int, float]]:
    return sorted(
        (seq, ch, t_ms, value) for _src, seq, ch, t_ms, value in store.iter_samples(run_id)
    )


def _frames_received(stats: dict[str, int], role: str) -> int:
    """Every line received: new, replayed again, corrupt, heartbeats."""
    return sum(stats[f"{role}.{k}"] for k in ("frames_ok", "duplicates", "corrupt", "heartbeats"))


def _check_outages(store: Store, run_id: int, outcome: Any, role: str) -> None:
    outages = outcome.extra["link_outages"]
    assert len(outages) == 2
    for outage in outages:
        assert outage["role"] == role and 0 < outage["outage_s"] < 10
    restored = [
        e
        for e in store.events(run_id)
        if e["kind"] == "link" and e["data"].get("state") == "restored"
    ]
    assert [e["data"]["outage_s"] for e in restored] == [o["outage_s"] for o in outages]
    # the simulator's pty came back on a new path, which the reconnection asked it for
    lost = [
        e for e in store.events(run_id) if e["kind"] == "link" and e["data"].get("state") == "lost"
    ]
    assert len(lost) == 2


def test_every_tem_frame_is_stored_exactly_once(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sims = _recording(monkeypatch, "start_tem4_simulator")
    protocol = load_protocol(write_tem(tmp_path, duration_min=2, rate_hz=100))
    engine = RunEngine(
        protocol,
        simulated_station(),
        store,
        RunOptions(operator="ci", seed=5, speed=60, faults=FAULTS),
    )
    outcome = engine.run()
    assert outcome.status == "completed", outcome.detail
    emitted = tem_emitted(sims[0])
    assert len(emitted) > 45_000
    assert _stored(store, outcome.run_id) == emitted
    stats = outcome.link_stats
    assert 0 < stats["tem.corrupt"] < 0.01 * _frames_received(stats, "tem")
    assert stats["tem.data_lost"] == 0
    _check_outages(store, outcome.run_id, outcome, "tem")
    assert len(store.latest_results(outcome.run_id)) == 4


def test_every_loop_frame_is_stored_exactly_once(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sims = _recording(monkeypatch, "start_loop8_simulator")
    protocol = load_protocol(write_loop(tmp_path, duration_min=10, rate_hz=10))
    engine = LoopRunEngine(
        protocol,
        simulated_station(("bath", "loop")),
        store,
        RunOptions(operator="ci", seed=3, speed=300, faults=FAULTS, auto_ack=True),
    )
    outcome = engine.run()
    assert outcome.status == "completed", outcome.detail
    emitted = loop_emitted(sims[0])
    assert len(emitted) > 45_000
    assert _stored(store, outcome.run_id) == emitted
    stats = outcome.link_stats
    assert 0 < stats["loop.corrupt"] < 0.01 * _frames_received(stats, "loop")
    assert stats["loop.data_lost"] == 0
    _check_outages(store, outcome.run_id, outcome, "loop")


def test_a_link_that_stays_down_fails_the_run_and_keeps_the_data(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sims = _recording(monkeypatch, "start_tem4_simulator")
    protocol = load_protocol(write_tem(tmp_path, duration_min=2, rate_hz=10))
    engine = RunEngine(
        protocol,
        simulated_station(),
        store,
        RunOptions(operator="ci", speed=20, reconnect_limit_s=1.0),
    )
    engine.start()
    deadline = time.monotonic() + 20
    while engine.samples_stored < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    sims[0].stop()  # the instrument is switched off mid-run
    outcome = engine.wait(30)
    assert outcome is not None
    assert outcome.status == "failed"
    assert "could not reconnect within 1 s" in outcome.detail
    assert "data received up to" in outcome.detail
    stored = _stored(store, outcome.run_id)
    emitted = tem_emitted(sims[0])
    assert len(stored) >= 200
    # everything stored is what the instrument sent, with no gap before the link went down
    assert stored == emitted[: len(stored)]
    assert store.get_run(outcome.run_id)["status"] == "failed"
    failed = [e for e in store.events(outcome.run_id) if e["data"].get("state") == "failed"]
    assert len(failed) == 1 and failed[0]["data"]["attempts"] >= 2


def test_reconnection_backoff_is_bounded() -> None:
    from instrument.runbase import RECONNECT_BACKOFF_S, RECONNECT_LIMIT_S

    assert list(RECONNECT_BACKOFF_S) == sorted(RECONNECT_BACKOFF_S)
    assert RECONNECT_BACKOFF_S[0] <= 0.2 and RECONNECT_BACKOFF_S[-1] <= 5.0
    assert math.isfinite(RECONNECT_LIMIT_S) and RECONNECT_LIMIT_S >= 30
