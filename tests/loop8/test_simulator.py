"""Loop8Driver against the LOOP-8 simulator over a real pseudo-terminal and TCP socket."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable

import pytest
import serial

from drivers.loop8 import InstrumentError, Loop8Driver, Loop8Status, StreamItem
from drivers.sequenced import Identity, LinkNotice
from drivers.transport import SerialTransport
from drivers.wire.loop8 import EventFrame, HeartbeatFrame, LoopFrame, ReplyFrame, parse_line
from simulators.loop8 import Loop8Simulator, default_samples, run_standalone
from simulators.physiology import CLOT_MOTION_PERMILLE, VirtualLab

needs_pty = pytest.mark.skipif(sys.platform == "win32", reason="no pseudo-terminals on Windows")


class Collector:
    """A thread-safe sink that lets a test wait for a condition on what arrived."""

    def __init__(self) -> None:
        self.items: list[StreamItem] = []
        self._cond = threading.Condition()

    def __call__(self, item: StreamItem) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[StreamItem]], bool], timeout: float) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.items), timeout), (
                f"timed out after {len(self.items)} items"
            )

    def snapshot(self) -> list[StreamItem]:
        with self._cond:
            return list(self.items)


def _sequenced(items: list[StreamItem]) -> list[LoopFrame | EventFrame]:
    return [i for i in items if isinstance(i, LoopFrame | EventFrame)]


def _stop_events(items: list[StreamItem]) -> int:
    return sum(isinstance(i, EventFrame) and i.code == "STOP" for i in items)


@needs_pty
def test_driver_streams_from_the_simulator_over_a_pty_at_speed_600(lab: VirtualLab) -> None:
    sink = Collector()
    with (
        Loop8Simulator(default_samples(lab), seed=1, speed=600, lab=lab, tcp=False) as sim,
        Loop8Driver(SerialTransport(sim.url, baudrate=57600), name="sim") as loop,
    ):
        assert sim.url == sim.pty_path and sim.tcp_port is None
        assert loop.identify() == Identity("HEMOTEC", "LOOP-8", "L8-SIM-0001", "1.0.3-sim")
        loop.set_rpm(30)
        assert loop.rpm() == 30
        assert loop.status() == Loop8Status("IDLE", 30, ("IDLE",) * 8)
        loop.start_streaming(sink)
        loop.start()
        time.sleep(0.5)
        assert loop.status() == Loop8Status("RUN", 30, ("RUN",) * 8)
        with pytest.raises(InstrumentError, match="error 3 \\(busy\\)"):
            loop.set_rpm(20)
        loop.stop()
        sink.wait_for(lambda items: _stop_events(items) == 8, timeout=5.0)
        loop.stop_streaming()
        stats = loop.stats
    assert sim.error is None

    items = sink.snapshot()
    frames = _sequenced(items)
    assert [f.seq for f in frames] == list(range(1, len(frames) + 1))
    starts = [f for f in frames if isinstance(f, EventFrame) and f.code == "START"]
    assert [(e.channel, e.text) for e in starts] == [(n, "30 rpm") for n in range(1, 9)]
    data = [f for f in frames if isinstance(f, LoopFrame)]
    for n in range(1, 9):
        t_ms = [f.t_ms for f in data if f.loop == n]
        assert t_ms == list(range(0, len(t_ms) * 1000, 1000))
        # 0.5 s of wall time at 600x is about 300 s of device time
        assert 200_000 <= t_ms[-1] <= 600_000
    assert all(960 <= f.motion_permille <= 1000 for f in data if f.loop == 1)  # vehicle
    beats = [i for i in items if isinstance(i, HeartbeatFrame)]
    assert len(beats) > 150 and {b.temp_c for b in beats} == {37.0}
    assert {i.kind for i in items if isinstance(i, LinkNotice)} <= {"corrupt_frame"}
    assert (stats.gaps, stats.data_lost, stats.duplicates) == (0, 0, 0)


def test_free_running_over_tcp_with_line_faults_heals_and_shows_the_clot(lab: VirtualLab) -> None:
    faults = "drop=0.02,corrupt=0.01,garbage=0.005,error:START=5x1"
    samples = default_samples(lab)
    sink = Collector()
    with (
        Loop8Simulator(samples, seed=4, speed=math.inf, lab=lab, pty=False, faults=faults) as sim,
        Loop8Driver(SerialTransport(sim.url), name="tcp", replay_retry_s=0.05) as loop,
    ):
        loop.start_streaming(sink)
        with pytest.raises(InstrumentError, match="error 5 \\(hardware fault\\)"):
            loop.start()  # injected once
        loop.start()
        truth = sim.ground_truth(7)  # VL-AT-01 at 1e5 cells/mL, 1 IU/mL heparin
        assert truth.clot_time_s is not None
        end_ms = (truth.clot_time_s + 300) * 1000

        def past_the_clot(items: list[StreamItem]) -> bool:
            return any(isinstance(i, LoopFrame) and i.loop == 7 and i.t_ms > end_ms for i in items)

        sink.wait_for(past_the_clot, timeout=20.0)
        loop.stop_streaming()
        stats = loop.stats
    assert sim.error is None

    frames = _sequenced(sink.snapshot())
    assert [f.seq for f in frames] == list(range(1, len(frames) + 1))
    assert stats.gaps > 0 and stats.replays_requested > 0 and stats.corrupt > 0
    assert stats.data_lost == 0
    loop7 = [f for f in frames if isinstance(f, LoopFrame) and f.loop == 7]
    assert [f.t_ms for f in loop7] == list(range(0, len(loop7) * 1000, 1000))
    occluded = next(f.t_ms / 1000 for f in loop7 if f.motion_permille < CLOT_MOTION_PERMILLE)
    assert occluded == pytest.approx(truth.clot_time_s, abs=5.0)
    assert loop7[-1].motion_permille < 60


def test_stop_is_idempotent_and_settings_are_checked(lab: VirtualLab) -> None:
    sim = Loop8Simulator(default_samples(lab), lab=lab, speed=10.0, pty=False)
    with pytest.raises(RuntimeError, match="not started"):
        _ = sim.url
    sim.start()
    with pytest.raises(RuntimeError, match="already started"):
        sim.start()
    sim.stop()
    sim.stop()
    assert sim.error is None
    with pytest.raises(ValueError, match="speed must be > 0"):
        Loop8Simulator({}, lab=lab, speed=0)
    with pytest.raises(ValueError, match="at least one endpoint"):
        Loop8Simulator({}, lab=lab, pty=False, tcp=False)
    with pytest.raises(ValueError, match="bad fault spec part 'drop=9'"):
        Loop8Simulator({}, lab=lab, faults="drop=9")
    with pytest.raises(ValueError, match="rate_hz must be 1-10"):
        Loop8Simulator({}, lab=lab, rate_hz=50)


def test_run_standalone_prints_where_to_connect_and_that_data_is_simulated(
    lab: VirtualLab,
) -> None:
    lines: list[str] = []
    until = threading.Event()
    runner = threading.Thread(
        target=run_standalone,
        kwargs={"seed": 4, "speed": 5.0, "out": lines.append, "lab": lab, "until": until},
    )
    runner.start()
    try:
        deadline = time.monotonic() + 5
        while not any("Ctrl+C" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.01)
        text = "\n".join(lines)
        assert "LOOP-8 simulator running" in text and "SIMULATED" in text
        assert "L7: donor VD-HEALTHY-01, VL-AT-01 at 100000 cells/mL, heparin 1 IU/mL" in text
        assert "L8: donor VD-HEALTHY-01, vehicle, heparin 0 IU/mL, 5 mL" in text
        if sys.platform != "win32":
            assert "serial port (pty): /dev/" in text
        port = int(text.split("socket://127.0.0.1:")[1].split()[0])
        with serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=1.0) as client:
            client.write(b"*IDN?\r\n")
            reply = next(
                m
                for m in (parse_line(client.readline()) for _ in range(50))
                if isinstance(m, ReplyFrame)
            )
            assert reply.values[:3] == ("HEMOTEC", "LOOP-8", "L8-SIM-0001")
    finally:
        until.set()
        runner.join(5)
    assert not runner.is_alive()
