"""End to end: Chandler-loop protocol → simulated bath + LOOP-8 on ptys → prompts → analysis."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import pytest

from instrument.cli import main
from instrument.loop_engine import BATH_POLL_WALL_S, LoopRunEngine
from instrument.runbase import DRAIN_MARGIN_S, Prompt, RunObserver, RunOptions
from instrument.station import simulated_station
from instrument.storage import Store
from protocols import bundled_protocols, load_protocol

pytestmark = pytest.mark.slow

LOOP = next(p for p in bundled_protocols() if p.name == "chandler-loop-60min.yaml")


def test_cli_loop_run_matches_ground_truth(tmp_path: Path) -> None:
    out, db = tmp_path / "out.json", tmp_path / "loop.db"
    code = main(
        [
            "run",
            str(LOOP),
            "--simulate",
            "--speed",
            "600",
            "--auto-ack",
            "--lot",
            "VL-AT-01",
            "--seed",
            "2",
            "--db",
            str(db),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert data["simulated"] is True and data["status"] == "completed"
    protocol = load_protocol(LOOP)
    by_loop = {c["channel"]: c for c in data["channels"]}
    # vehicle loops do not clot; the high-TF lot at the top dose does
    for loop in (1, 2):
        assert by_loop[loop]["parameters"]["clotted"] is False
    for loop in (7, 8):
        assert by_loop[loop]["parameters"]["clotted"] is True

    from instrument.simulation import loop_samples
    from simulators.loop8 import Loop8Model  # noqa: F401  (the model the simulator used)
    from simulators.physiology import VirtualLab, loop_truth

    lab = VirtualLab.load()
    samples = loop_samples(protocol, protocol.resolved_channels(lot="VL-AT-01"))
    threshold = protocol.clot_detection.threshold_permille
    period = 1.0 / protocol.sample_rate_hz
    for loop, result in by_loop.items():
        truth = loop_truth(lab, samples[loop], 2, loop)
        expected = truth.crossing_time_s(threshold)
        got = result["parameters"]["clot_time_s"]
        if expected is None or expected > protocol.duration_s:
            assert got is None or got > protocol.duration_s - protocol.clot_detection.hold_s
        else:
            assert got is not None, (loop, expected)
            assert abs(got - expected) <= period + protocol.clot_detection.hold_s

    # every sampling time point gave one drawn tube per sampled loop, with a platelet count
    assert len(data["tubes"]) == len(protocol.sampling.times_s) * len(protocol.sampling.loops)
    assert all(t["status"] == "drawn" for t in data["tubes"])
    store = Store(db)
    counts = store.sample_values(data["run_id"], "PLT")
    assert len(counts) == len(data["tubes"]) and all(c["simulated"] for c in counts)
    assert by_loop[8]["parameters"]["PLT_consumption_pct"] > 50
    assert main(["samples", "list", str(data["run_id"]), "--db", str(db)]) == 0
    assert main(["samples", "label", data["tubes"][0]["tube_id"], "--db", str(db)]) == 0


class _Collect(RunObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def event(self, kind: str, message: str, channel: int | None) -> None:
        self.events.append((kind, message))


def test_bath_excursion_suspends_and_resumes_timed_steps(tmp_path: Path) -> None:
    store = Store(tmp_path / "interlock.db")
    protocol = load_protocol(LOOP)
    observer = _Collect()
    engine = LoopRunEngine(
        protocol,
        simulated_station(("bath", "loop")),
        store,
        RunOptions(operator="ci", speed=600, auto_ack=True),
        observer,
        bath_excursion=(900.0, 300.0, 2.0),  # 2 °C too warm for 5 min, 15 min into the run
    )
    outcome = engine.run()
    assert outcome.status == "completed", outcome.detail
    (gap,) = outcome.extra["interruptions"]
    # The bath is read every BATH_POLL_WALL_S of wall time (30 s of protocol time at 600×), so
    # each edge of the 300-s step is seen up to a poll late; a busy machine delays polls more.
    tolerance_s = 5 * BATH_POLL_WALL_S * 600
    assert abs(gap["duration_s"] - 300.0) <= tolerance_s, gap
    interlock = [m for k, m in observer.events if k == "interlock"]
    assert "suspended" in interlock[0] and "resumed" in interlock[1]
    stored = [e for e in store.events(outcome.run_id) if e["kind"] == "interlock"]
    assert [e["data"]["state"] for e in stored] == ["suspended", "resumed"]
    # the schedule waited: the 30-min draw happened ≥ 30 min + the interruption after start
    tubes = [t for t in store.tubes(outcome.run_id) if t["time_point_s"] == 1800.0]
    assert all(t["drawn_t_s"] >= 1800.0 + gap["duration_s"] - 60 for t in tubes)


def test_unanswered_prompt_is_flagged_and_the_run_keeps_measuring(tmp_path: Path) -> None:
    store = Store(tmp_path / "prompts.db")
    protocol = load_protocol(LOOP)

    class _AckOnlyTheFirst(RunObserver):
        def prompt(self, prompt: object) -> None:
            pass

    engine = LoopRunEngine(
        protocol,
        simulated_station(("bath", "loop")),
        store,
        RunOptions(operator="ci", speed=600),
        _AckOnlyTheFirst(),
    )
    engine.start()
    # acknowledge only the loop-filling prompt; leave every sampling prompt open
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not engine.open_prompts():
        time.sleep(0.01)
    (fill,) = engine.open_prompts()
    engine.acknowledge(fill.id)
    outcome = engine.wait(120)
    assert outcome is not None and outcome.status == "completed", outcome and outcome.detail
    assert outcome.extra["prompts_overdue"] > 0
    assert outcome.extra["prompts_never_acknowledged"] == len(outcome.extra["tubes"])
    assert all(t["status"] == "missed" for t in outcome.extra["tubes"])
    assert store.get_run(outcome.run_id)["sample_count"] >= 8 * 3600  # kept measuring


class _SlowTubes(Store):
    """A store that takes its time to mark a tube drawn (a busy disk or server): longer than
    the end of acquisition takes, so a run that did not wait would analyse without it."""

    def mark_tube(self, tube_id: str, status: str, drawn_t_s: float | None = None) -> None:
        time.sleep(DRAIN_MARGIN_S + 1.0)
        super().mark_tube(tube_id, status, drawn_t_s)


class _Answering(RunObserver):
    """Answers every prompt from another thread, as the app's Done button does."""

    def __init__(self) -> None:
        self.engine: LoopRunEngine | None = None
        self.threads: list[threading.Thread] = []

    def prompt(self, prompt: Prompt) -> None:
        engine = self.engine
        assert engine is not None
        thread = threading.Thread(target=engine.acknowledge, args=(prompt.id,), kwargs={"by": "ci"})
        self.threads.append(thread)
        thread.start()


def test_the_run_ends_only_after_the_last_draw_is_stored(tmp_path: Path) -> None:
    store = _SlowTubes(tmp_path / "slow.db")
    observer = _Answering()
    engine = LoopRunEngine(
        load_protocol(LOOP),
        simulated_station(("bath", "loop")),
        store,
        RunOptions(operator="ci", speed=math.inf),
        observer,
    )
    observer.engine = engine
    outcome = engine.run()
    for thread in observer.threads:
        thread.join(10)
    assert outcome.status == "completed", outcome.detail
    tubes = outcome.extra["tubes"]
    assert len(tubes) == 5 * 8 and all(t["status"] == "drawn" for t in tubes)
    # the platelet count of the last draw is in the analysis
    results = {r["channel"]: r["parameters"] for r in store.latest_results(outcome.run_id)}
    assert all("PLT_consumption_pct" in params for params in results.values())
    store.close()


def test_auto_ack_draws_every_tube_on_time_even_at_max_speed(tmp_path: Path) -> None:
    store = Store(tmp_path / "on-time.db")
    engine = LoopRunEngine(
        load_protocol(LOOP),
        simulated_station(("bath", "loop")),
        store,
        RunOptions(operator="ci", speed=math.inf, auto_ack=True),
    )
    outcome = engine.run()
    assert outcome.status == "completed", outcome.detail
    tubes = store.tubes(outcome.run_id)
    assert len(tubes) == 5 * 8
    assert all(t["drawn_t_s"] == t["time_point_s"] for t in tubes), [
        (t["time_point_s"], t["drawn_t_s"]) for t in tubes
    ]
    prompts = [p for p in store.prompts(outcome.run_id) if p["tube_id"] is not None]
    assert all(p["answered_by"] == "auto-ack (simulation)" for p in prompts)
    store.close()
