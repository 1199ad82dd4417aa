"""The TEM-4 simulator end to end over a real pty / TCP socket with a plain pyserial client."""

from __future__ import annotations

import math
import sys
import threading
import time

import pytest
import serial

from drivers.wire.tem4 import (
    DataFrame,
    ErrorReplyFrame,
    EventFrame,
    HeartbeatFrame,
    Message,
    ReplyFrame,
    parse_line,
)
from simulators.faults import FaultPlan
from simulators.physiology import VirtualLab
from simulators.tem4 import Tem4Simulator, default_samples, run_standalone

needs_pty = pytest.mark.skipif(sys.platform == "win32", reason="no pseudo-terminals on Windows")


class LineReader:
    """Reads a pyserial port in bulk and splits lines (readline() reads byte by byte).

    Open the port with a short timeout: each read collects what arrives within it.
    """

    def __init__(self, port: serial.SerialBase) -> None:
        self.port = port
        self.buffer = bytearray()

    def lines(self) -> list[bytes]:
        self.buffer += self.port.read(65536)
        *complete, rest = self.buffer.split(b"\n")
        self.buffer = bytearray(rest)
        return [bytes(line) + b"\n" for line in complete]


def _read_messages(port: serial.SerialBase, seconds: float) -> list[Message]:
    reader = LineReader(port)
    lines: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lines += reader.lines()
    return [parse_line(line) for line in lines]


def _read_until_seq(port: serial.SerialBase, seq: int, timeout: float = 10.0) -> list[Message]:
    reader = LineReader(port)
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in reader.lines():
            msg = parse_line(line)
            out.append(msg)
            if isinstance(msg, DataFrame | EventFrame) and msg.seq >= seq:
                return out
    raise AssertionError(f"seq {seq} not received within {timeout} s")


def _seqs(messages: list[Message]) -> list[int]:
    return [m.seq for m in messages if isinstance(m, DataFrame | EventFrame)]


@needs_pty
def test_speed_1000_over_the_pty_streams_parseable_contiguous_frames(lab: VirtualLab) -> None:
    with (
        Tem4Simulator(default_samples(lab), seed=1, speed=1000, lab=lab, tcp=False) as sim,
        serial.Serial(sim.url, baudrate=115200, timeout=0.02) as port,
    ):
        assert sim.url == sim.pty_path and sim.tcp_port is None
        port.write(b"*IDN?\r\nCH1:START NATEM\r\nCH2:START NATEM\n")
        messages = _read_messages(port, 0.5)
        replies = [m for m in messages if isinstance(m, ReplyFrame)]
        assert replies[0] == ReplyFrame("*IDN?", ("HEMOTEC", "TEM-4", "T4-SIM-0001", "1.4.2-sim"))
        assert [r.command for r in replies[1:]] == ["CH1:START NATEM", "CH2:START NATEM"]
        seqs = _seqs(messages)
        assert seqs == list(range(1, len(seqs) + 1))
        data = [m for m in messages if isinstance(m, DataFrame)]
        # 0.5 s wall at 1000x is ~500 s of device time: two channels at 10 Hz, roughly
        assert 3000 < len(data) < 20_000
        beats = [m for m in messages if isinstance(m, HeartbeatFrame)]
        assert len(beats) > 100
        assert all(b.device_ms % 1000 == 0 for b in beats)
        assert sim.frames_emitted >= seqs[-1]
    assert sim.error is None


def test_free_running_over_tcp_is_paced_by_the_reader_and_loses_nothing(
    lab: VirtualLab,
) -> None:
    with Tem4Simulator(
        default_samples(lab), seed=2, speed=math.inf, lab=lab, pty=False, rate_hz=100
    ) as sim:
        assert sim.url == f"socket://127.0.0.1:{sim.tcp_port}"
        with serial.serial_for_url(sim.url, timeout=0.02) as port:
            port.write(b"CH1:START EXTEM\r\nCH4:START NATEM\r\n")
            t0 = time.monotonic()
            messages = _read_until_seq(port, 20_000)
            elapsed = time.monotonic() - t0
            time.sleep(0.2)
            generated = sim.frames_emitted
        seqs = _seqs(messages)
        assert seqs == list(range(1, len(seqs) + 1))
        # backpressure: the device got at most a few socket buffers ahead of the reader
        assert generated - seqs[-1] < 200_000
        ch4 = [m for m in messages if isinstance(m, DataFrame) and m.channel == 4]
        assert ch4[-1].t_ms > 90_000  # ~100 s of device time within a few seconds of wall time
        assert elapsed < 8.0
        truth = sim.ground_truth(1)
        extem = [m for m in messages if isinstance(m, DataFrame) and m.channel == 1]
        ct_trace = next(m.t_ms for m in extem if m.amp_mm >= 2.0) / 1000
        assert ct_trace == pytest.approx(truth.ct_s, abs=1.0)


def test_disconnect_fault_then_reconnect_and_replay_fills_the_gap(lab: VirtualLab) -> None:
    plan = FaultPlan.parse("disconnect@seq300")
    with Tem4Simulator(
        default_samples(lab), seed=3, speed=math.inf, lab=lab, pty=False, faults=plan
    ) as sim:
        url = sim.url
        before: list[Message] = []
        with serial.serial_for_url(url, timeout=0.02) as first:
            first.write(b"CH2:START NATEM\r\n")
            reader = LineReader(first)
            deadline = time.monotonic() + 10
            with pytest.raises(serial.SerialException, match="disconnected"):
                while time.monotonic() < deadline:
                    before += [parse_line(line) for line in reader.lines()]
        # pyserial discards a read that ends in the disconnect, so part of it may be lost
        seqs = _seqs(before)
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) <= 300
        last = len(seqs)
        with serial.serial_for_url(url, timeout=0.02) as second:
            second.write(b"REPLAY %d\r\n" % (last + 1))
            after = _read_until_seq(second, 600)
        reply_at = next(i for i, m in enumerate(after) if isinstance(m, ReplyFrame))
        assert after[reply_at] == ReplyFrame(f"REPLAY {last + 1}", ("OK",))
        replayed = _seqs(after[reply_at + 1 :])
        assert replayed[: 600 - last] == list(range(last + 1, 601))


def test_stall_fault_silences_the_device_for_the_planned_wall_time(lab: VirtualLab) -> None:
    plan = FaultPlan.parse("stall@seq100=0.4")
    with (
        Tem4Simulator(default_samples(lab), speed=math.inf, lab=lab, pty=False, faults=plan) as sim,
        serial.serial_for_url(sim.url, timeout=0.02) as port,
    ):
        port.write(b"CH1:START NATEM\r\n")
        reader = LineReader(port)
        arrival: dict[int, float] = {}
        deadline = time.monotonic() + 10
        while 101 not in arrival and time.monotonic() < deadline:
            for line in reader.lines():
                msg = parse_line(line)
                if isinstance(msg, DataFrame | EventFrame):
                    arrival[msg.seq] = time.monotonic()
        assert set(range(1, 102)) <= set(arrival)
        assert arrival[101] - arrival[100] >= 0.35
        assert arrival[100] - arrival[1] < 0.35


def test_injected_error_reply_and_random_faults_reach_the_client(lab: VirtualLab) -> None:
    plan = "error:CH2:START=5x1,corrupt=0.05"
    with (
        Tem4Simulator(default_samples(lab), speed=math.inf, lab=lab, pty=False, faults=plan) as sim,
        serial.serial_for_url(sim.url, timeout=0.02) as port,
    ):
        port.write(b"CH2:START NATEM\r\nCH2:START NATEM\r\n")
        bad = good = 0
        replies: list[Message] = []
        reader = LineReader(port)
        deadline = time.monotonic() + 10
        while good < 2000 and time.monotonic() < deadline:
            for line in reader.lines():
                try:
                    msg = parse_line(line)
                except ValueError:
                    bad += 1
                    continue
                good += 1
                if isinstance(msg, ReplyFrame | ErrorReplyFrame):
                    replies.append(msg)
        assert replies == [
            ErrorReplyFrame("CH2:START NATEM", 5, "hardware fault"),
            ReplyFrame("CH2:START NATEM", ("OK",)),
        ]
        assert 30 < bad < 250


def test_stop_is_idempotent_and_leaves_nothing_running(lab: VirtualLab) -> None:
    sim = Tem4Simulator(default_samples(lab), lab=lab, speed=10.0)
    with pytest.raises(RuntimeError, match="not started"):
        _ = sim.url
    sim.start()
    with pytest.raises(RuntimeError, match="already started"):
        sim.start()
    sim.stop()
    sim.stop()
    assert sim.error is None


def test_constructor_rejects_bad_settings(lab: VirtualLab) -> None:
    with pytest.raises(ValueError, match="speed must be > 0"):
        Tem4Simulator({}, lab=lab, speed=0)
    with pytest.raises(ValueError, match="at least one endpoint"):
        Tem4Simulator({}, lab=lab, pty=False, tcp=False)
    with pytest.raises(ValueError, match="bad fault spec part 'drop=9'"):
        Tem4Simulator({}, lab=lab, faults="drop=9")


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
        assert "SIMULATED" in text
        assert "TCP: socket://127.0.0.1:" in text
        assert "CH3: donor VD-HEALTHY-01, VL-UC-01 at 100000 cells/mL" in text
        if sys.platform != "win32":
            assert "serial port (pty): /dev/" in text
        port = int(text.split("socket://127.0.0.1:")[1].split()[0])
        with serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=1.0) as client:
            client.write(b"*IDN?\r\n")
            reply = next(
                m
                for m in (parse_line(client.readline()) for _ in range(20))
                if isinstance(m, ReplyFrame)
            )
            assert reply.values[2] == "T4-SIM-0001"
    finally:
        until.set()
        runner.join(5)
    assert not runner.is_alive()
