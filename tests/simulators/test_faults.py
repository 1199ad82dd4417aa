"""Fault plans: the CLI spec parser and the deterministic injector."""

from __future__ import annotations

import pytest

from drivers.wire.framing import ChecksumError, FrameError
from drivers.wire.tem4 import DataFrame, encode_data, encode_reply, parse_line
from simulators.faults import ErrorReplyFault, FaultInjector, FaultPlan, ScheduledFault


def test_parse_the_documented_example() -> None:
    plan = FaultPlan.parse(
        "drop=0.01,corrupt=0.005,stall@30s=2,disconnect@120s,error:CH2:START=5,overtemp@600s"
    )
    assert plan == FaultPlan(
        drop=0.01,
        corrupt=0.005,
        garbage=0.0,
        scheduled=(
            ScheduledFault("stall", at_ms=30_000, stall_s=2.0),
            ScheduledFault("disconnect", at_ms=120_000),
        ),
        error_replies=(ErrorReplyFault("CH2:START", 5, None),),
        over_temperature_at_ms=600_000,
    )


def test_parse_units_seq_triggers_counts_and_blanks() -> None:
    plan = FaultPlan.parse(
        " garbage=0.5 , stall@1500ms=0.25, disconnect@seq1234,stall@2min=1, error:temp 50=2x1,"
    )
    assert plan.garbage == 0.5
    assert plan.scheduled == (
        ScheduledFault("stall", at_ms=1500, stall_s=0.25),
        ScheduledFault("disconnect", at_seq=1234),
        ScheduledFault("stall", at_ms=120_000, stall_s=1.0),
    )
    assert plan.error_replies == (ErrorReplyFault("TEMP 50", 2, 1),)
    assert FaultPlan.parse("") == FaultPlan() == FaultPlan.parse(" none ")
    assert FaultPlan().is_empty and not plan.is_empty


@pytest.mark.parametrize(
    ("spec", "bad_part"),
    [
        ("drop=2", "drop=2"),
        ("drop=lots", "drop=lots"),
        ("drop", "drop"),
        ("stall@30s", "stall@30s"),
        ("stall@30s=-1", "stall@30s=-1"),
        ("stall@soon=2", "stall@soon=2"),
        ("disconnect@30h", "disconnect@30h"),
        ("overtemp@seq5", "overtemp@seq5"),
        ("error:CH1:START", "error:CH1:START"),
        ("error:CH1:START=abc", "error:CH1:START=abc"),
        ("error:CH1:START=5x0", "error:CH1:START=5x0"),
        ("drop=0.1,explode@3s", "explode@3s"),
    ],
)
def test_a_bad_spec_names_the_part_and_the_syntax(spec: str, bad_part: str) -> None:
    with pytest.raises(ValueError) as info:
        FaultPlan.parse(spec)
    message = str(info.value)
    assert f"bad fault spec part {bad_part!r}" in message
    assert "accepted parts: drop=P" in message and "seq1234" in message


def test_plate_reader_switches_and_the_kinds_of_a_plan() -> None:
    plan = FaultPlan.parse("short_plate, lamp_failure,stall@seq9=1,error:INIT=5")
    assert plan.short_plate and plan.lamp_failure
    assert plan.kinds() == {"short_plate", "lamp_failure", "stall", "seq", "error"}
    assert FaultPlan.parse("drop=0.1,overtemp@1s").kinds() == {"drop", "overtemp"}
    for bad in ("short_plate=1", "lamp_failure@3s"):
        with pytest.raises(ValueError, match="bad fault spec part"):
            FaultPlan.parse(bad)


def test_require_only_names_what_an_instrument_cannot_do() -> None:
    plan = FaultPlan.parse("drop=0.1,disconnect@seq3,short_plate")
    plan.require_only("X", frozenset({"drop", "disconnect", "seq", "short_plate"}), "")
    with pytest.raises(ValueError) as info:
        plan.require_only("TEM-4", frozenset({"drop", "disconnect"}), "see the docs")
    assert str(info.value) == (
        "the TEM-4 simulator cannot inject a seq<N> trigger, short_plate: see the docs"
    )


def test_streaming_simulators_refuse_plate_reader_faults() -> None:
    from simulators.loop8 import Loop8Simulator
    from simulators.tem4 import Tem4Simulator

    for sim_type in (Tem4Simulator, Loop8Simulator):
        with pytest.raises(ValueError, match="cannot inject short_plate"):
            sim_type({}, faults="short_plate", pty=False)


def test_probabilities_are_checked_when_built_directly() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultPlan(corrupt=1.5)
    with pytest.raises(ValueError, match="exactly one of"):
        ScheduledFault("stall", at_ms=1, at_seq=2)


def _frames(n: int) -> list[bytes]:
    return [encode_data(seq, 1, seq * 100, seq % 700) for seq in range(1, n + 1)]


def test_injector_is_deterministic_for_a_seed_and_rates_are_as_planned() -> None:
    plan = FaultPlan(drop=0.1, corrupt=0.05, garbage=0.05)
    frames = _frames(4000)
    a = [FaultInjector(plan, seed=3).outgoing(f) for f in frames[:1]]
    first = FaultInjector(plan, seed=3)
    second = FaultInjector(plan, seed=3)
    out1 = [first.outgoing(f) for f in frames]
    out2 = [second.outgoing(f) for f in frames]
    assert out1 == out2 and a == out1[:1]
    assert out1 != [FaultInjector(plan, seed=4).outgoing(f) for f in frames]

    dropped = sum(1 for o in out1 if o == b"")
    corrupt = garbage = 0
    for o in out1:
        lines = o.split(b"\r\n")[:-1]
        if len(lines) == 2:
            garbage += 1
            with pytest.raises(FrameError):
                parse_line(lines[0] + b"\r\n")
        if lines:
            try:
                parse_line(lines[-1] + b"\r\n")
            except ChecksumError:
                corrupt += 1
    assert 300 < dropped < 500
    assert 120 < corrupt < 260
    assert 120 < garbage < 260


def test_replies_are_never_damaged_and_no_plan_means_no_change() -> None:
    reply = encode_reply("*IDN?", "HEMOTEC", "TEM-4", "T4-SIM-0001", "1.4.2-sim")
    always = FaultInjector(FaultPlan(drop=1.0, corrupt=1.0, garbage=1.0))
    assert always.outgoing(reply) == reply
    assert always.outgoing(_frames(1)[0]) == b""
    calm = FaultInjector(FaultPlan())
    frames = _frames(50)
    assert [calm.outgoing(f) for f in frames] == frames
    assert parse_line(frames[0]) == DataFrame(1, 1, 100, 1)


def test_error_replies_match_prefixes_and_honour_counts() -> None:
    plan = FaultPlan.parse("error:CH2:START=5x2,error:TEMP=6")
    injector = FaultInjector(plan)
    assert injector.error_reply_code("ch2:start NATEM") == 5
    assert injector.error_reply_code("CH1:START NATEM") is None
    assert injector.error_reply_code("CH2:START EXTEM") == 5
    assert injector.error_reply_code("CH2:START EXTEM") is None
    assert [injector.error_reply_code("TEMP?") for _ in range(3)] == [6, 6, 6]


def test_scheduled_faults_fire_once_when_due() -> None:
    injector = FaultInjector(FaultPlan.parse("stall@2s=1,disconnect@seq10,disconnect@5s"))
    assert injector.next_time_ms() == 2000 and injector.has_seq_triggers
    assert injector.due(1999, 9) == []
    assert [f.describe() for f in injector.due(2000, 9)] == ["stall for 1 s at 2000 ms"]
    assert injector.due(2500, 9) == []
    assert [f.kind for f in injector.due(2500, 12)] == ["disconnect"]
    assert not injector.has_seq_triggers and injector.next_time_ms() == 5000
    assert [f.describe() for f in injector.due(9000, 0)] == ["disconnect at 5000 ms"]
    assert injector.next_time_ms() is None
