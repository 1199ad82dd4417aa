"""An instrument found still running for a program that died is never left running unattended:
at connect the run stops it, logs a ``safe_state`` event and discards its old frames.

(The TEM-4 case, with the program killed for real, is in test_crash.py.)
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from drivers.loop8 import Loop8Driver
from drivers.transport import SerialTransport
from instrument.loop_engine import LoopRunEngine
from instrument.runbase import RunOptions
from instrument.simulation import loop_samples
from instrument.station import InstrumentSpec, Station
from instrument.storage import Store
from protocols import LoopProtocol, load_protocol
from simulators.loop8 import Loop8Simulator
from tests.robustness.protocols import write_loop

SPEED = 20.0


def test_a_loop8_left_rotating_is_stopped_before_the_run(tmp_path: Path) -> None:
    protocol = load_protocol(write_loop(tmp_path, duration_min=10, rate_hz=10))
    assert isinstance(protocol, LoopProtocol)
    samples = loop_samples(protocol, protocol.resolved_channels())
    with Loop8Simulator(samples, seed=2, speed=SPEED, pty=False, tcp=True) as sim:
        # A program starts the rotor and dies without stopping it (the port just closes).
        with Loop8Driver(SerialTransport(sim.url), name="dead") as dead:
            dead.start()
        time.sleep(0.5)  # it keeps rotating and measuring: 10 s of device time
        assert sim.model.any_running
        old_frames = sim.frames_emitted
        assert old_frames > 8

        station = Station(
            "left-running",
            {
                "bath": InstrumentSpec("bath", "julabo"),
                "loop": InstrumentSpec("loop", "loop8", sim.url),
            },
            "test",
        )
        store = Store(tmp_path / "runs.db")
        try:
            engine = LoopRunEngine(
                protocol,
                station,
                store,
                RunOptions(operator="ci", speed=SPEED, auto_ack=True, reconnect_limit_s=1),
            )
            engine.start()
            deadline = time.monotonic() + 20
            while engine.samples_stored < 200 and time.monotonic() < deadline:
                time.sleep(0.01)
            engine.abort("test: enough")
            outcome = engine.wait(30)
            assert outcome is not None and outcome.status == "aborted", outcome
            events = store.events(outcome.run_id)
            safe = [e for e in events if e["kind"] == "safe_state"]
            assert len(safe) == 1
            assert safe[0]["source"] == "loop" and safe[0]["data"]["rpm"] == 30
            assert "left running by a program that stopped" in safe[0]["message"]
            # logged before this run started its own rotation
            kinds = [e["kind"] for e in events]
            first_start = next(
                i for i, e in enumerate(events) if e["kind"] == "device" and "START" in e["message"]
            )
            assert kinds.index("safe_state") < first_start
            # none of the earlier session's frames were taken into this run: every loop's
            # data starts at t = 0 of this run's START and runs forward without repeats
            rows = sorted(store.iter_samples(outcome.run_id), key=lambda r: r[1])
            assert len(rows) >= 200
            by_loop: dict[int, list[int]] = {}
            for _source, _seq, loop, t_ms, _value in rows:
                by_loop.setdefault(loop, []).append(t_ms)
            assert set(by_loop) == set(range(1, 9))
            for times in by_loop.values():
                assert times[0] == 0
                assert all(b > a for a, b in itertools.pairwise(times))
        finally:
            store.close()
        assert not sim.model.any_running  # the aborted run left the rotor stopped too
