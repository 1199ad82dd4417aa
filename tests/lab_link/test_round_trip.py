"""The host link and the registry against the simulated hematology analyzer over a real pty
and over TCP, with the analyzer's faults: corrupted checksums (NAK, retransmission),
contention, a dropped connection and a host whose frames go unanswered. No result may be
lost or stored twice."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from drivers.astm import AstmLink, AstmTimeoutError, AstmTimings, RawSerialTransport
from drivers.wire import astm as wire
from instrument.lab_link import receive_results
from simulators.hematology import CbcResult, HematologySimulator, InstrumentTimings
from tests.lab_link.conftest import LoopRegistry

#: Waits that only end a transfer when something is wrong stay long (a loaded machine must not
#: trip them); the waits the protocol always sits out (backoff, busy, resend) are short.
HOST = AstmTimings(
    establish_s=3.0, ack_s=3.0, frame_s=5.0, contention_backoff_s=0.4, busy_retry_s=0.2
)
ANALYZER = InstrumentTimings(
    establish_s=3.0,
    ack_s=3.0,
    frame_s=5.0,
    contention_wait_s=0.05,
    busy_retry_s=0.2,
    retry_after_abort_s=0.2,
)

needs_pty = pytest.mark.skipif(sys.platform == "win32", reason="no pseudo-terminals on Windows")
ENDPOINTS = [pytest.param("pty", marks=needs_pty), "tcp"]


def _results(tubes: tuple[str, ...]) -> list[CbcResult]:
    plt = (262.0, 231.0, 255.0, 48.0)
    out = [
        CbcResult(t, {"PLT": p, "WBC": 6.2 + k / 10, "RBC": 4.6, "HGB": 138.0})
        for k, (t, p) in enumerate(zip(tubes, plt, strict=True))
    ]
    return [*out, CbcResult("S-999999", {"PLT": 199.0})]


@contextmanager
def _analyzer(
    endpoint: str, results: list[CbcResult], **kwargs: Any
) -> Iterator[HematologySimulator]:
    with HematologySimulator(
        results, pty=endpoint == "pty", tcp=endpoint == "tcp", timings=ANALYZER, **kwargs
    ) as sim:
        yield sim
        assert sim.error is None


def _connect(sim: HematologySimulator) -> AstmLink:
    return AstmLink(RawSerialTransport(sim.url), timings=HOST)


def _plt_by_tube(registry: LoopRegistry) -> dict[str, list[float]]:
    with registry.store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT tube_id, value FROM sample_values WHERE analyte = 'PLT' ORDER BY id"
        ).all()
    out: dict[str, list[float]] = {}
    for tube, value in rows:
        out.setdefault(tube, []).append(value)
    return out


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_results_survive_naks_and_a_contention_without_loss_or_duplicates(
    endpoint: str, registry: LoopRegistry
) -> None:
    tubes = registry.tubes
    with _analyzer(
        endpoint,
        _results(tubes),
        autosend=False,
        faults="corrupt@2,corrupt@5,corrupt@6,contention@1",
    ) as sim:
        sim.transmit(tubes[:2], delay_s=30.0)  # measured, to be sent later
        with _connect(sim) as link:
            query = wire.encode_message(
                [
                    wire.HeaderRecord(sender=("hemocompat",)),
                    wire.QueryRecord(1, (tubes[2], tubes[3], "S-999999")),
                    wire.TerminatorRecord(),
                ]
            )
            link.send(query)  # contention: the analyzer sends a pending result first
            assert link.stats.contentions == 1
            report = receive_results(
                link, registry.store, until={*tubes[:1], *tubes[2:], "S-999999"}, timeout_s=10
            )
            sim.transmit([tubes[0]])  # the analyzer sends a result again
            again = receive_results(link, registry.store, until="eot", timeout_s=10)
            assert link.stats.naks_sent == 3
        assert sim.protocol_errors == []
        assert sim.stats.corrupted_frames == 3 and sim.stats.retransmissions == 3
        assert sim.received[0] == query
    assert report.unknown_samples == ["S-999999"]
    assert report.incomplete_messages == 0 and report.problems == []
    assert {v.sample_id for v in report.stored} == {tubes[0], tubes[2], tubes[3]}
    assert len(report.stored) == 12  # 3 tubes × PLT, WBC, RBC, HGB
    assert len(again.stored) == 0 and len(again.duplicates) == 4
    assert _plt_by_tube(registry) == {tubes[0]: [262.0], tubes[2]: [255.0], tubes[3]: [48.0]}
    hgb = registry.store.sample_values(registry.run_id, "HGB")
    assert {(v["tube_id"], v["value"], v["unit"]) for v in hgb} == {
        (t, 138.0, "g/L") for t in (tubes[0], tubes[2], tubes[3])
    }
    wbc = {v["tube_id"]: v for v in registry.store.sample_values(registry.run_id, "WBC")}
    assert wbc[tubes[2]]["value"] == pytest.approx(6.4) and wbc[tubes[2]]["unit"] == "10^9/L"
    assert all(v["simulated"] for v in wbc.values())  # processing ID D: SIMULATED


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_dropped_connection_mid_message_is_resent_and_stored_once(
    endpoint: str, registry: LoopRegistry
) -> None:
    tubes = registry.tubes
    with _analyzer(endpoint, _results(tubes)[:4], faults="disconnect@10") as sim:
        link = _connect(sim)
        try:
            report = receive_results(
                link,
                registry.store,
                until=set(tubes),
                timeout_s=10,
                reconnect=lambda: _connect(sim),
            )
        finally:
            link.close()
        assert sim.stats.disconnects == 1 and sim.stats.transfers_aborted == 1
        assert sim.protocol_errors == []
    assert report.reconnects == 1
    # The cut message arrives in part (or, when a pty discards what was still buffered at the
    # hang-up, not at all); either way the analyzer sends it again whole.
    assert report.incomplete_messages <= 1
    assert _plt_by_tube(registry) == {
        tubes[0]: [262.0],
        tubes[1]: [231.0],
        tubes[2]: [255.0],
        tubes[3]: [48.0],
    }
    assert len(report.stored) == 16 and report.duplicates == []


def test_a_frame_naked_seven_times_aborts_the_transfer_and_the_analyzer_sends_it_later(
    registry: LoopRegistry,
) -> None:
    tubes = registry.tubes
    faults = ",".join(f"corrupt@{n}" for n in range(1, 8))
    with _analyzer("tcp", _results(tubes)[:1], faults=faults) as sim:
        with _connect(sim) as link:
            report = receive_results(link, registry.store, until={tubes[0]}, timeout_s=10)
            assert link.stats.naks_sent == 7
        assert sim.stats.transfers_aborted == 1 and sim.stats.retransmissions == 6
        assert sim.protocol_errors == []
    assert len(report.stored) == 4 and _plt_by_tube(registry) == {tubes[0]: [262.0]}


def test_unanswered_host_frame_times_out_and_a_new_transfer_goes_through() -> None:
    message = ["H|\\^&|||hemocompat", "C|1|L|hello|G", "L|1|N"]
    impatient = AstmTimings(ack_s=1.0, contention_backoff_s=0.4, busy_retry_s=0.2)
    with _analyzer("tcp", [], autosend=False, faults="noack@2") as sim:
        with AstmLink(RawSerialTransport(sim.url), timings=impatient) as link:
            with pytest.raises(AstmTimeoutError, match="did not acknowledge frame 2"):
                link.send(message)
            link.send(message)
        deadline = time.monotonic() + 5.0
        while len(sim.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert sim.received == [message[:1], message]
    assert sim.stats.host_frames_ignored == 1


def test_busy_analyzer_is_asked_again() -> None:
    with _analyzer("tcp", [], autosend=False, faults="busy@1") as sim, _connect(sim) as link:
        link.send(["H|\\^&", "L|1|N"])
        assert link.stats.busy_replies == 1
    assert sim.stats.host_enqs == 2
