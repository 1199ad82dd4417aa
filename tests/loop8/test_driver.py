"""Loop8Driver commands: exact bytes for every command, validation, errors and timeouts."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import pytest

import drivers.sequenced as sequenced
from drivers.loop8 import (
    InstrumentError,
    InstrumentTimeout,
    Loop8Driver,
    Loop8Error,
    Loop8Status,
    UnexpectedReplyError,
)
from drivers.sequenced import Identity
from drivers.tem4 import Tem4Error
from drivers.testing import ScriptedTransport, expected_protocol
from drivers.transport import LinkLostError, TransportError
from drivers.wire.loop8 import (
    HeartbeatFrame,
    LoopFrame,
    encode_error_reply,
    encode_heartbeat,
    encode_loop,
    encode_reply,
)

FAST = {"reply_timeout": 0.1}


def test_identify() -> None:
    pairs = [(b"*IDN?\r\n", b"$R,*IDN?,HEMOTEC,LOOP-8,L8-000042,1.0.3*11\r\n")]
    with expected_protocol(Loop8Driver, pairs) as loop:
        assert loop.identify() == Identity("HEMOTEC", "LOOP-8", "L8-000042", "1.0.3")


def test_identify_other_model_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    pairs = [(b"*IDN?\r\n", encode_reply("*IDN?", "HEMOTEC", "TEM-4", "T4-1", "2.1.0"))]
    with caplog.at_level(logging.WARNING), expected_protocol(Loop8Driver, pairs) as loop:
        assert loop.identify().model == "TEM-4"
    assert "LOOP-8 'loop'" in caplog.text and "TEM-4" in caplog.text


def test_status() -> None:
    states = ["RUN", "RUN", "EMPTY", "IDLE", "RUN", "RUN", "RUN", "FAULT"]
    pairs = [(b"STATUS?\r\n", encode_reply("STATUS?", "RUN", 30, *states))]
    with expected_protocol(Loop8Driver, pairs) as loop:
        assert loop.status() == Loop8Status("RUN", 30, tuple(states))


@pytest.mark.parametrize("rpm", [1, 30, 60])
def test_set_rpm(rpm: int) -> None:
    pairs = [(f"ROT {rpm}\r\n".encode(), encode_reply(f"ROT {rpm}", "OK"))]
    with expected_protocol(Loop8Driver, pairs) as loop:
        loop.set_rpm(rpm)


@pytest.mark.parametrize("rpm", [0, 61, -1, 30.0, 29.5, True, "30", math.nan, None])
def test_set_rpm_rejects_without_sending(rpm: object) -> None:
    with expected_protocol(Loop8Driver, []) as loop, pytest.raises(ValueError) as info:
        loop.set_rpm(rpm)  # type: ignore[arg-type]
    message = str(info.value)
    assert "1–60 rpm" in message and "LOOP-8" in message and "Nothing was sent" in message


def test_rpm() -> None:
    with expected_protocol(Loop8Driver, [(b"ROT?\r\n", b"$R,ROT?,30*27\r\n")]) as loop:
        assert loop.rpm() == 30


@pytest.mark.parametrize("hz", [1, 5, 10])
def test_set_rate(hz: int) -> None:
    pairs = [(f"RATE {hz}\r\n".encode(), encode_reply(f"RATE {hz}", "OK"))]
    with expected_protocol(Loop8Driver, pairs, transport_baudrate=57600) as loop:
        loop.set_rate(hz)


@pytest.mark.parametrize("hz", [0, 11, 100, 1.0, True, "1"])
def test_set_rate_rejects_without_sending(hz: object) -> None:
    with expected_protocol(Loop8Driver, []) as loop, pytest.raises(ValueError, match="1–10 Hz"):
        loop.set_rate(hz)  # type: ignore[arg-type]


def test_start_and_stop() -> None:
    pairs = [
        (b"START\r\n", encode_reply("START", "OK")),
        (b"STOP\r\n", encode_reply("STOP", "OK")),
    ]
    with expected_protocol(Loop8Driver, pairs) as loop:
        loop.start()
        loop.stop()


def test_error_reply_raises_a_loop8_instrument_error() -> None:
    text = "cannot change the speed while the rotor turns"
    pairs = [(b"ROT 20\r\n", encode_error_reply("ROT 20", 3, text))]
    with (
        expected_protocol(Loop8Driver, pairs, name="bench-2") as loop,
        pytest.raises(InstrumentError) as info,
    ):
        loop.set_rpm(20)
    err = info.value
    assert (err.command, err.code, err.text, err.meaning) == ("ROT 20", 3, text, "busy")
    message = str(err)
    assert "LOOP-8 'bench-2' on scripted://scripted refused 'ROT 20'" in message
    assert "error 3 (busy)" in message and "Stop the rotor first" in message


@pytest.mark.parametrize(
    ("code", "meaning", "advice"),
    [
        (5, "hardware fault", "drum turns freely"),
        (6, "over-temperature", "housing"),
        (42, "unknown error code", "instrument manual"),
    ],
)
def test_error_codes_are_explained(code: int, meaning: str, advice: str) -> None:
    pairs = [(b"START\r\n", encode_error_reply("START", code, "x"))]
    with expected_protocol(Loop8Driver, pairs) as loop, pytest.raises(InstrumentError) as info:
        loop.start()
    assert f"error {code} ({meaning})" in str(info.value) and advice in str(info.value)


def test_timeout_names_command_resource_and_line_settings() -> None:
    with expected_protocol(Loop8Driver, [(b"ROT?\r\n", None)], **FAST) as loop:
        started = time.monotonic()
        with pytest.raises(InstrumentTimeout) as info:
            loop.rpm()
        elapsed = time.monotonic() - started
    assert 0.09 <= elapsed < 1.0
    message = str(info.value)
    assert "No reply from LOOP-8 'loop' on scripted://scripted to 'ROT?'" in message
    assert "0.1 s" in message and "57600 baud 8N1" in message
    assert isinstance(info.value, TransportError)


@pytest.mark.parametrize(
    ("call", "command", "reply"),
    [
        (lambda d: d.identify(), "*IDN?", ("HEMOTEC", "LOOP-8")),
        (lambda d: d.status(), "STATUS?", ("IDLE", "30", "IDLE")),
        (lambda d: d.status(), "STATUS?", ("IDLE", "fast", *["IDLE"] * 8)),
        (lambda d: d.rpm(), "ROT?", ("30.5",)),
        (lambda d: d.rpm(), "ROT?", ()),
        (lambda d: d.start(), "START", ("RUNNING",)),
    ],
)
def test_unexpected_reply_shape(
    call: Callable[[Loop8Driver], object], command: str, reply: tuple[str, ...]
) -> None:
    pairs = [(command.encode() + b"\r\n", encode_reply(command, *reply))]
    with expected_protocol(Loop8Driver, pairs) as loop, pytest.raises(UnexpectedReplyError) as info:
        call(loop)
    assert f"'{command}'" in str(info.value) and "Check that a LOOP-8 is connected" in str(
        info.value
    )


def test_errors_share_the_base_classes_but_not_the_tem4_family() -> None:
    pairs = [
        (b"STATUS?\r\n", encode_error_reply("STATUS?", 5, "x")),
        (b"ROT?\r\n", encode_reply("ROT?", "fast")),
        (b"ROT?\r\n", None),
    ]
    raised: list[Exception] = []
    with expected_protocol(Loop8Driver, pairs, **FAST) as loop:
        for call in (loop.status, loop.rpm, loop.rpm):
            with pytest.raises(Loop8Error) as info:
                call()
            raised.append(info.value)
    bases = (sequenced.InstrumentError, sequenced.UnexpectedReplyError, sequenced.InstrumentTimeout)
    for error, base in zip(raised, bases, strict=True):
        assert isinstance(error, base) and isinstance(error, sequenced.DeviceError)
        assert not isinstance(error, Tem4Error)


def test_frames_read_while_waiting_are_kept_for_poll() -> None:
    pairs = [
        (None, [encode_loop(1, 1, 0, 1000), encode_heartbeat(1, 5000, 3700, "RUN")]),
        (b"ROT?\r\n", [encode_loop(2, 2, 0, 999), encode_reply("ROT?", "30")]),
    ]
    with expected_protocol(Loop8Driver, pairs) as loop:
        assert loop.rpm() == 30
        assert loop.poll() == [
            LoopFrame(1, 1, 0, 1000),
            HeartbeatFrame(1, 5000, 3700, "RUN"),
            LoopFrame(2, 2, 0, 999),
        ]


def test_stop_all_returns_the_error_instead_of_raising() -> None:
    pairs = [(b"STOP\r\n", encode_error_reply("STOP", 5, "drum blocked"))]
    with expected_protocol(Loop8Driver, pairs) as loop:
        (failure,) = loop.stop_all()
    assert isinstance(failure, InstrumentError) and "drum blocked" in str(failure)
    with expected_protocol(Loop8Driver, [(b"STOP\r\n", encode_reply("STOP", "OK"))]) as loop:
        assert loop.stop_all() == []
    transport = ScriptedTransport([])
    transport.close()
    failures = Loop8Driver(transport).stop_all()
    assert len(failures) == 1 and isinstance(failures[0], LinkLostError)


def test_repr_names_the_driver() -> None:
    with expected_protocol(Loop8Driver, [], name="rotor") as loop:
        assert repr(loop).startswith("Loop8Driver(") and "rotor" in repr(loop)
