"""The TEM-4 model: byte-exact replies, state machine, timing and determinism (no I/O)."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.wire.tem4 import (
    DataFrame,
    ErrorReplyFrame,
    EventFrame,
    HeartbeatFrame,
    ReplyFrame,
    parse_line,
)
from simulators.physiology import TemSample, UnknownVirtualSample, VirtualLab
from simulators.tem4 import Tem4Model, default_samples


@pytest.fixture
def model(lab: VirtualLab) -> Tem4Model:
    return Tem4Model(lab, default_samples(lab), seed=0)


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("*IDN?", b"$R,*IDN?,HEMOTEC,TEM-4,T4-SIM-0001,1.4.2-sim*6B\r\n"),
        ("STATUS?", b"$R,STATUS?,IDLE,IDLE,IDLE,IDLE,IDLE*7D\r\n"),
        ("TEMP?", b"$R,TEMP?,37.02*49\r\n"),
        ("TEMP 30", b"$R,TEMP 30,OK*79\r\n"),
        ("TEMP 50", b"$R,TEMP 50,ERR,2,setpoint must be a number from 20 to 45 C*15\r\n"),
        ("RATE 25", b"$R,RATE 25,OK*73\r\n"),
        ("RATE 0", b"$R,RATE 0,ERR,2,rate must be a whole number from 1 to 100 Hz*09\r\n"),
        ("CH5:START NATEM", b"$R,CH5:START NATEM,ERR,2,channel must be 1 to 4*57\r\n"),
        ("CH2:STOP", b"$R,CH2:STOP,OK*4D\r\n"),
        ("REPLAY 1", b"$R,REPLAY 1,OK*54\r\n"),
        ("REPLAY 2", b"$R,REPLAY 2,ERR,2,sequence number 2 not sent yet (last is 0)*3A\r\n"),
        ("BOGUS", b"$R,BOGUS,ERR,1,unknown command*45\r\n"),
        ("TEMP 37,5", b"$R,TEMP 37;5,ERR,2,setpoint must be a number from 20 to 45 C*1A\r\n"),
    ],
)
def test_replies_are_byte_exact(model: Tem4Model, command: str, reply: bytes) -> None:
    assert model.handle_command(command + "\r\n", 0) == [reply]


def test_start_replies_then_reports_the_event_and_the_first_sample(model: Tem4Model) -> None:
    assert model.handle_command("CH1:START NATEM", 0) == [
        b"$R,CH1:START NATEM,OK*65\r\n",
        b"$E,1,1,START,NATEM*56\r\n",
        b"$D,2,1,0,0*47\r\n",
    ]
    assert model.handle_command("CH1:START EXTEM", 0) == [
        b"$R,CH1:START EXTEM,ERR,3,channel 1 is already running*4C\r\n"
    ]
    bad = model.handle_command("CH2:START ROTEM", 0)
    assert parse_line(bad[0]) == ErrorReplyFrame(
        "CH2:START ROTEM", 2, "assay must be one of NATEM EXTEM INTEM FIBTEM HEPTEM TEGN TEGK"
    )
    assert model.handle_command("STATUS?", 0) == [b"$R,STATUS?,RUN,RUN,IDLE,IDLE,IDLE*7D\r\n"]
    rate = parse_line(model.handle_command("RATE 20", 0)[0])
    assert isinstance(rate, ErrorReplyFrame) and rate.code == 3


def _parse(frames: list[bytes]) -> list[object]:
    return [parse_line(f) for f in frames]


def test_samples_heartbeats_and_stop_follow_device_time(model: Tem4Model) -> None:
    model.handle_command("RATE 4", 0)
    model.handle_command("CH3:START EXTEM", 300)
    frames = _parse(model.advance_to(2300))
    data = [m for m in frames if isinstance(m, DataFrame)]
    beats = [m for m in frames if isinstance(m, HeartbeatFrame)]
    assert [d.t_ms for d in data] == [250, 500, 750, 1000, 1250, 1500, 1750, 2000]
    assert {d.channel for d in data} == {3}
    assert [(b.device_ms, b.state) for b in beats] == [(1000, "RUN"), (2000, "RUN")]
    # a heartbeat carries the seq of the last D/E frame sent before it
    first_beat = frames.index(beats[0])
    last_seq = max(m.seq for m in frames[:first_beat] if isinstance(m, DataFrame))
    assert beats[0].seq == last_seq
    stop = _parse(model.handle_command("CH3:STOP", 2400))
    assert stop[-2:] == [ReplyFrame("CH3:STOP", ("OK",)), EventFrame(11, 3, "STOP", "host")]
    after = _parse(model.advance_to(5000))
    assert all(isinstance(m, HeartbeatFrame) and m.state == "IDLE" for m in after)
    assert model.advance_to(4000) == []


def test_seq_is_one_counter_for_all_data_and_events(model: Tem4Model) -> None:
    frames = model.handle_command("CH1:START NATEM", 0)
    frames += model.handle_command("CH2:START INTEM", 150)
    frames += model.advance_to(60_000)
    frames += model.handle_command("CH1:STOP", 60_050)
    seqs = [m.seq for m in _parse(frames) if isinstance(m, DataFrame | EventFrame)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert model.last_seq == seqs[-1]


def test_replay_resends_buffered_frames_in_order(model: Tem4Model) -> None:
    live = model.handle_command("CH4:START TEGK", 0) + model.advance_to(3000)
    data_and_events = [f for f in live if f.startswith((b"$D", b"$E"))]
    replay = model.handle_command("REPLAY 5", 3000)
    assert replay[0] == b"$R,REPLAY 5,OK*50\r\n"
    assert replay[1:] == data_and_events[4:]


def test_replay_refuses_what_is_no_longer_buffered(lab: VirtualLab) -> None:
    model = Tem4Model(lab, {}, seed=0, rate_hz=100)
    for ch in (1, 2, 3, 4):
        model.handle_command(f"CH{ch}:START EXTEM", 0)
    model.advance_to(170_000)  # 4 x 100 Hz x 170 s > 65 536 frames
    oldest = model.oldest_buffered_seq
    assert oldest > 1 and model.last_seq - oldest + 1 == 65_536
    reply = parse_line(model.handle_command("REPLAY 1", 170_000)[0])
    assert reply == ErrorReplyFrame(
        "REPLAY 1", 4, f"sequence number 1 no longer buffered (oldest is {oldest})"
    )
    assert len(model.handle_command(f"REPLAY {oldest}", 170_000)) == 65_537


@pytest.mark.parametrize(
    "steps",
    [
        [600_000],
        [*range(1, 600_001, 997), 600_000],
        [1, 2, 3, 5_000, 5_001, 333_333, 599_999, 600_000],
    ],
)
def test_stream_is_identical_whatever_the_step_pattern(lab: VirtualLab, steps: list[int]) -> None:
    def run(pattern: list[int]) -> list[bytes]:
        m = Tem4Model(lab, default_samples(lab), seed=9)
        out = m.handle_command("CH1:START NATEM", 0) + m.handle_command("CH3:START NATEM", 0)
        for t in pattern:
            out += m.advance_to(t)
        return out

    assert run(steps) == run([600_000])


def test_different_seeds_give_different_noise(lab: VirtualLab) -> None:
    def run(seed: int) -> list[bytes]:
        m = Tem4Model(lab, default_samples(lab), seed=seed)
        return m.handle_command("CH1:START NATEM", 0) + m.advance_to(20_000)

    assert run(1) != run(2)


def _trace(model: Tem4Model, channel: int, until_ms: int) -> tuple[np.ndarray, np.ndarray]:
    frames = _parse(model.advance_to(until_ms))
    data = [m for m in frames if isinstance(m, DataFrame) and m.channel == channel]
    t = np.array([d.t_ms for d in data]) / 1000.0
    return t, np.array([d.amp_mm for d in data])


@pytest.mark.parametrize(("channel", "assay"), [(1, "NATEM"), (3, "NATEM"), (4, "EXTEM")])
def test_ct_in_the_trace_is_where_the_truth_says(
    model: Tem4Model, channel: int, assay: str
) -> None:
    model.handle_command(f"CH{channel}:START {assay}", 0)
    t, amp = _trace(model, channel, 1_800_000)
    truth = model.ground_truth(channel)
    assert truth.assay == assay
    ct_trace = t[np.argmax(amp >= 2.0)]
    assert ct_trace == pytest.approx(truth.ct_s, abs=2.0)
    assert amp.max() == pytest.approx(truth.mcf_mm, abs=1.0)
    residual = amp - truth.amplitude_mm(t)
    assert abs(residual[amp > 1].std() - 0.05) < 0.01


def test_dose_shortens_the_measured_ct(model: Tem4Model) -> None:
    for ch in (1, 2, 3, 4):
        model.handle_command(f"CH{ch}:START NATEM", 0)
    frames = _parse(model.advance_to(900_000))
    cts = []
    for ch in (1, 2, 3, 4):
        data = [m for m in frames if isinstance(m, DataFrame) and m.channel == ch]
        cts.append(next(d.t_ms for d in data if d.amp_mm >= 2.0))
    assert cts == sorted(cts, reverse=True) and len(set(cts)) == 4


def test_a_channel_without_a_sample_measures_an_empty_cup(lab: VirtualLab) -> None:
    model = Tem4Model(lab, {1: TemSample("VD-HEALTHY-01")}, seed=0)
    model.handle_command("CH2:START NATEM", 0)
    _, amp = _trace(model, 2, 600_000)
    assert amp.min() >= 0.0 and amp.max() < 0.3
    with pytest.raises(LookupError, match="channel 2 has no virtual sample"):
        model.ground_truth(2)
    with pytest.raises(LookupError, match="channel 1 was never started"):
        model.ground_truth(1)


def test_a_repeat_start_is_a_new_replicate(model: Tem4Model) -> None:
    model.handle_command("CH1:START NATEM", 0)
    first = model.ground_truth(1)
    model.handle_command("CH1:STOP", 1000)
    model.handle_command("CH1:START NATEM", 2000)
    second = model.ground_truth(1)
    assert second.ct_s != first.ct_s
    assert second.ct_s == pytest.approx(first.ct_s, rel=0.2)


def test_cup_temperature_approaches_a_new_setpoint_first_order(
    model: Tem4Model, lab: VirtualLab
) -> None:
    tau_ms = lab.tem4.cup_time_constant_s * 1000
    model.handle_command("TEMP 30", 0)
    frames = _parse(model.advance_to(int(3 * tau_ms)))
    temps = [m.temp_c for m in frames if isinstance(m, HeartbeatFrame)]
    assert temps == sorted(temps, reverse=True)
    at_tau = model.cup_temperature_c(int(tau_ms))
    assert at_tau == pytest.approx(30.0 + 7.0 * np.exp(-1.0) + 0.02, abs=1e-9)
    assert temps[-1] == pytest.approx(30.0 + 7.0 * np.exp(-3.0) + 0.02, abs=0.006)


def test_over_temperature_aborts_runs_and_refuses_starts(lab: VirtualLab) -> None:
    model = Tem4Model(lab, default_samples(lab), over_temperature_at_ms=2500)
    model.handle_command("CH2:START NATEM", 0)
    frames = _parse(model.advance_to(4000))
    events = [m for m in frames if isinstance(m, EventFrame)]
    assert [(e.channel, e.code) for e in events] == [(0, "OVERTEMP"), (2, "ABORT")]
    data = [m for m in frames if isinstance(m, DataFrame)]
    assert max(d.t_ms for d in data) == 2500
    beats = [m for m in frames if isinstance(m, HeartbeatFrame)]
    assert [(b.state, b.temp_c) for b in beats] == [
        ("RUN", 37.02),
        ("RUN", 37.02),
        ("OVERTEMP", 45.5),
        ("OVERTEMP", 45.5),
    ]
    assert model.handle_command("CH1:START EXTEM", 4000) == [
        b"$R,CH1:START EXTEM,ERR,6,over-temperature; measurements disabled*7D\r\n"
    ]
    assert model.handle_command("STATUS?", 4000)[0].startswith(b"$R,STATUS?,OVERTEMP,IDLE")


def test_construction_checks_serial_channels_and_samples(lab: VirtualLab) -> None:
    with pytest.raises(ValueError, match="must contain 'SIM'"):
        Tem4Model(lab, {}, serial="T4-000123")
    with pytest.raises(ValueError, match="channels 1-4"):
        Tem4Model(lab, {5: TemSample("VD-HEALTHY-01")})
    with pytest.raises(UnknownVirtualSample, match="VL-BM-01"):
        Tem4Model(lab, {1: TemSample("VD-HEALTHY-01", "VL-XX", 1e4)})
