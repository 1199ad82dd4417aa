"""The hematology analyzer simulator's pure parts: messages, fault specs, result files."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import pytest

from drivers.wire import astm as wire
from simulators.hematology import (
    AstmFaultPlan,
    CbcResult,
    HematologySimulator,
    cbc_message,
    default_results,
    load_results_csv,
    run_standalone,
)


def test_cbc_message_flags_values_outside_the_reference_range() -> None:
    texts = cbc_message(
        CbcResult("S-000003", {"PLT": 48, "WBC": 12.5, "HGB": 130}), "M7", datetime(2024, 1, 2)
    )
    records = wire.decode_message(texts)
    flags = {r.code: r.flags for r in records if isinstance(r, wire.ResultRecord)}
    assert flags == {"PLT": "L", "WBC": "H", "HGB": "N"}
    header = records[0]
    assert isinstance(header, wire.HeaderRecord) and header.processing_id == "D"
    assert [m.complete for m in wire.group_messages(records)] == [True]


def test_results_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown analyte"):
        CbcResult("S-1", {"XYZ": 1.0})
    with pytest.raises(ValueError, match="delimiter"):
        CbcResult("S|1", {"PLT": 1.0})
    with pytest.raises(ValueError, match="not finite"):
        CbcResult("S-1", {"PLT": float("nan")})


def test_default_results_show_falling_platelets() -> None:
    results = default_results(5, seed=3)
    assert [r.sample_id for r in results] == [f"S-00000{k}" for k in range(1, 6)]
    plt = [r.values["PLT"] for r in results]
    assert plt[0] > plt[-1] and all(p >= 5 for p in plt)
    assert default_results(5, seed=3) == results


def test_fault_spec() -> None:
    plan = AstmFaultPlan.parse("corrupt@2, corrupt@3,contention@1,busy@2,noack@4,disconnect@9")
    assert plan.corrupt_frames == {2, 3} and plan.contention_enqs == {1}
    assert plan.busy_enqs == {2} and plan.noack_frames == {4} and plan.disconnect_frames == {9}
    assert AstmFaultPlan.parse("corrupt=0.25").corrupt == 0.25
    assert AstmFaultPlan.parse("none").is_empty
    for bad in ("corrupt=2", "corrupt@0", "explode@1", "corrupt=x"):
        with pytest.raises(ValueError, match="bad fault spec part"):
            AstmFaultPlan.parse(bad)


def test_results_csv(tmp_path: Path) -> None:
    path = tmp_path / "cbc.csv"
    path.write_text("sample_id,PLT,wbc\nS-000001,250,6.1\nS-000002,,5\n", encoding="utf-8")
    assert load_results_csv(path) == [
        CbcResult("S-000001", {"PLT": 250.0, "WBC": 6.1}),
        CbcResult("S-000002", {"WBC": 5.0}),
    ]
    path.write_text("tube,PLT\nS-1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="sample_id column"):
        load_results_csv(path)
    path.write_text("sample_id,FOO\nS-1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown analyte columns"):
        load_results_csv(path)


def test_simulator_needs_an_endpoint_and_a_known_sample() -> None:
    with pytest.raises(ValueError, match="at least one endpoint"):
        HematologySimulator(pty=False, tcp=False)
    sim = HematologySimulator(default_results(1))
    with pytest.raises(KeyError, match="no result for sample"):
        sim.transmit(["S-999999"])
    with pytest.raises(RuntimeError, match="not started"):
        _ = sim.url


def test_run_standalone_prints_where_to_connect() -> None:
    lines: list[str] = []
    stop = threading.Event()

    def out(text: str) -> None:
        lines.append(text)
        if text.startswith("Press Ctrl+C"):
            stop.set()

    run_standalone(default_results(2), faults="corrupt@1", out=out, until=stop)
    text = "\n".join(lines)
    assert "SIMULATED" in text and "socket://127.0.0.1:" in text and "S-000002: WBC" in text
    assert "fault injection" in text
