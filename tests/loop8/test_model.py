"""The LOOP-8 model: byte-exact replies, state machine, timing, replay and determinism (no I/O)."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.wire.loop8 import (
    ErrorReplyFrame,
    EventFrame,
    HeartbeatFrame,
    LoopFrame,
    ReplyFrame,
    parse_line,
)
from simulators.loop8 import Loop8Model, default_samples
from simulators.physiology import LoopSample, UnknownVirtualSample, VirtualLab


@pytest.fixture
def model(lab: VirtualLab) -> Loop8Model:
    return Loop8Model(lab, default_samples(lab), seed=0)


def _parsed(frames: list[bytes]) -> list[object]:
    return [parse_line(f) for f in frames]


def _loop_frames(frames: list[bytes]) -> list[LoopFrame]:
    return [m for m in _parsed(frames) if isinstance(m, LoopFrame)]


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("*IDN?", b"$R,*IDN?,HEMOTEC,LOOP-8,L8-SIM-0001,1.0.3-sim*36\r\n"),
        ("STATUS?", b"$R,STATUS?,IDLE,30,IDLE,IDLE,IDLE,IDLE,IDLE,IDLE,IDLE,IDLE*52\r\n"),
        ("ROT?", b"$R,ROT?,30*27\r\n"),
        ("ROT 20", b"$R,ROT 20,OK*3D\r\n"),
        ("ROT 0", b"$R,ROT 0,ERR,2,rpm must be a whole number from 1 to 60*0A\r\n"),
        ("ROT 61", b"$R,ROT 61,ERR,2,rpm must be a whole number from 1 to 60*3D\r\n"),
        ("RATE 10", b"$R,RATE 10,OK*75\r\n"),
        ("RATE 11", b"$R,RATE 11,ERR,2,rate must be a whole number from 1 to 10 Hz*09\r\n"),
        ("STOP", b"$R,STOP,OK*4E\r\n"),
        ("REPLAY 1", b"$R,REPLAY 1,OK*54\r\n"),
        ("REPLAY 2", b"$R,REPLAY 2,ERR,2,sequence number 2 not sent yet (last is 0)*3A\r\n"),
        ("CH1:START NATEM", b"$R,CH1:START NATEM,ERR,1,unknown command*3A\r\n"),
        ("ROT 3,0", b"$R,ROT 3;0,ERR,2,rpm must be a whole number from 1 to 60*02\r\n"),
    ],
)
def test_replies_are_byte_exact(model: Loop8Model, command: str, reply: bytes) -> None:
    assert model.handle_command(command + "\r\n", 0) == [reply]


def test_start_reports_every_loop_then_the_first_samples(lab: VirtualLab) -> None:
    samples = {1: LoopSample("VD-HEALTHY-01"), 2: LoopSample("VD-HEALTHY-01", "VL-AT-01", 1e5)}
    model = Loop8Model(lab, samples, seed=0)
    assert model.handle_command("STATUS?", 0) == [
        b"$R,STATUS?,IDLE,30,IDLE,IDLE,EMPTY,EMPTY,EMPTY,EMPTY,EMPTY,EMPTY*52\r\n"
    ]
    out = _parsed(model.handle_command("START", 0))
    assert out[0] == ReplyFrame("START", ("OK",))
    assert out[1:9] == [
        EventFrame(1, 1, "START", "30 rpm"),
        EventFrame(2, 2, "START", "30 rpm"),
        *(EventFrame(n, n, "EMPTY", "no blood detected") for n in range(3, 9)),
    ]
    assert [(m.seq, m.loop, m.t_ms) for m in out[9:]] == [(9, 1, 0), (10, 2, 0)]  # type: ignore[attr-defined]
    assert model.handle_command("STATUS?", 0) == [
        b"$R,STATUS?,RUN,30,RUN,RUN,EMPTY,EMPTY,EMPTY,EMPTY,EMPTY,EMPTY*1F\r\n"
    ]
    assert _parsed(model.handle_command("START", 0)) == [
        ErrorReplyFrame("START", 3, "the rotor is already turning")
    ]
    for command in ("ROT 20", "RATE 2"):
        (reply,) = _parsed(model.handle_command(command, 0))
        assert isinstance(reply, ErrorReplyFrame) and reply.code == 3
    with pytest.raises(LookupError, match="loop 3 has no virtual sample"):
        model.ground_truth(3)
    with pytest.raises(LookupError, match="loops 1-8, not 9"):
        model.ground_truth(9)


def test_samples_come_at_the_rate_with_heartbeats_every_second(model: Loop8Model) -> None:
    model.handle_command("RATE 2", 0)
    start = _parsed(model.handle_command("START", 500))
    out = _parsed(model.advance_to(10_500))
    frames = [m for m in start + out if isinstance(m, LoopFrame)]
    for n in range(1, 9):
        assert [f.t_ms for f in frames if f.loop == n] == list(range(0, 10_001, 500))
    beats = [m for m in out if isinstance(m, HeartbeatFrame)]
    assert [b.device_ms for b in beats] == list(range(1000, 10_001, 1000))
    assert all(b.state == "RUN" and b.temp_centi_c == 3700 for b in beats)
    seqs = [m.seq for m in start + out if isinstance(m, LoopFrame | EventFrame)]
    assert seqs == list(range(1, len(seqs) + 1)) == list(range(1, model.last_seq + 1))
    # a heartbeat carries the seq of the last frame before it, and comes after same-time frames
    for i, msg in enumerate(out):
        if isinstance(msg, HeartbeatFrame):
            before = [m for m in out[:i] if isinstance(m, LoopFrame)]
            assert msg.seq == before[-1].seq and before[-1].t_ms + 500 == msg.device_ms
    assert all(0 <= f.motion_permille <= 1000 for f in frames)


def test_the_stream_does_not_depend_on_how_time_is_stepped(lab: VirtualLab) -> None:
    a, b = Loop8Model(lab, default_samples(lab), 5), Loop8Model(lab, default_samples(lab), 5)
    one = a.handle_command("START", 0) + a.advance_to(300_000)
    many = b.handle_command("START", 0)
    for t in range(7, 300_001, 997):
        many += b.advance_to(t)
    many += b.advance_to(300_000)
    assert one == many


def test_measured_occlusion_matches_ground_truth_and_noise(lab: VirtualLab) -> None:
    model = Loop8Model(lab, default_samples(lab), seed=3)
    frames = _loop_frames(model.handle_command("START", 0) + model.advance_to(3_600_000))
    for n in range(1, 9):
        truth = model.ground_truth(n)
        mine = [f for f in frames if f.loop == n]
        assert len(mine) == 3601
        first_below = next((f.t_ms / 1000 for f in mine if f.motion_permille < 300), None)
        if truth.clot_time_s is None or truth.clot_time_s > 3600:
            assert first_below is None, n
            continue
        assert first_below is not None and abs(first_below - truth.clot_time_s) < 5.0, n
        clotted = np.array(
            [f.motion_permille for f in mine if f.t_ms > truth.clot_time_s * 1e3 + 6e5]
        )
        residual = clotted - truth.floor_permille
        assert abs(float(residual.mean())) < 1.5 and 4.0 < float(residual.std()) < 8.0
    assert {n for n in range(1, 9) if model.ground_truth(n).clot_time_s is not None} >= {7, 8}
    assert model.ground_truth(1).clot_time_s is None  # vehicle at 1 IU/mL


def test_determinism_per_seed(lab: VirtualLab) -> None:
    def run(seed: int) -> list[bytes]:
        model = Loop8Model(lab, default_samples(lab), seed)
        return model.handle_command("START", 0) + model.advance_to(120_000)

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_stop_then_start_again_is_a_new_replicate_from_t_0(model: Loop8Model) -> None:
    model.handle_command("START", 0)
    model.advance_to(5000)
    first = model.ground_truth(4)
    stop = _parsed(model.handle_command("STOP", 5000))
    assert stop[0] == ReplyFrame("STOP", ("OK",))
    assert [(e.channel, e.code) for e in stop[1:]] == [(n, "STOP") for n in range(1, 9)]  # type: ignore[attr-defined]
    assert _loop_frames(model.advance_to(9000)) == []
    assert model.handle_command("STOP", 9000) == [b"$R,STOP,OK*4E\r\n"]
    again = _loop_frames(model.handle_command("START", 9000) + model.advance_to(10_000))
    assert {f.t_ms for f in again} == {0, 1000}
    assert model.ground_truth(4) != first


def test_replay_resends_buffered_frames_and_refuses_lost_ones(lab: VirtualLab) -> None:
    model = Loop8Model(lab, default_samples(lab), rate_hz=10)
    sent = model.handle_command("START", 0) + model.advance_to(1000)
    frames_by_seq = {
        m.seq: f
        for f, m in zip(sent, _parsed(sent), strict=True)
        if isinstance(m, LoopFrame | EventFrame)
    }
    replay = model.handle_command("REPLAY 40", 1000)
    assert replay[0] == b"$R,REPLAY 40,OK*61\r\n"
    assert replay[1:] == [frames_by_seq[s] for s in range(40, model.last_seq + 1)]
    model.advance_to(900_000)  # 8 loops x 10 Hz: far more than 65 536 frames
    assert model.oldest_buffered_seq == model.last_seq - 65_535
    (refused,) = _parsed(model.handle_command("REPLAY 5", 900_000))
    assert isinstance(refused, ErrorReplyFrame) and refused.code == 4
    assert f"(oldest is {model.oldest_buffered_seq})" in refused.text


def test_over_temperature_aborts_the_run_and_refuses_start(lab: VirtualLab) -> None:
    samples = {1: LoopSample("VD-HEALTHY-01"), 5: LoopSample("VD-HEALTHY-02")}
    model = Loop8Model(lab, samples, over_temperature_at_ms=2500)
    model.handle_command("START", 0)
    out = _parsed(model.advance_to(4000))
    events = [m for m in out if isinstance(m, EventFrame)]
    assert [(e.channel, e.code, e.text) for e in events] == [
        (0, "OVERTEMP", "housing 45.50 C above limit"),
        (1, "ABORT", "over-temperature"),
        (5, "ABORT", "over-temperature"),
    ]
    assert max(m.t_ms for m in out if isinstance(m, LoopFrame)) == 2000
    beats = [m for m in out if isinstance(m, HeartbeatFrame)]
    assert (beats[-1].state, beats[-1].temp_centi_c) == ("OVERTEMP", 4550)
    assert model.handle_command("START", 4000) == [
        b"$R,START,ERR,6,over-temperature; rotation disabled*11\r\n"
    ]
    assert model.handle_command("STATUS?", 4000)[0].startswith(b"$R,STATUS?,OVERTEMP,30,IDLE,")


def test_constructor_rejects_bad_settings(lab: VirtualLab) -> None:
    with pytest.raises(ValueError, match="must contain 'SIM'"):
        Loop8Model(lab, {}, serial="L8-000042")
    with pytest.raises(ValueError, match="loops 1-8"):
        Loop8Model(lab, {9: LoopSample("VD-HEALTHY-01")})
    with pytest.raises(UnknownVirtualSample, match="VD-NOBODY"):
        Loop8Model(lab, {1: LoopSample("VD-NOBODY")})
    with pytest.raises(ValueError, match="rate_hz must be 1-10"):
        Loop8Model(lab, {}, rate_hz=20)
    with pytest.raises(ValueError, match="rpm must be 1-60"):
        Loop8Model(lab, {}, rpm=0)
