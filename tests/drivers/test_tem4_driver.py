"""Tem4Driver commands: exact bytes for every command, validation, errors and timeouts."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import pytest

from drivers.tem4 import (
    Identity,
    InstrumentError,
    InstrumentTimeout,
    Tem4Driver,
    Tem4Error,
    Tem4Status,
    UnexpectedReplyError,
    line_capacity_hz,
)
from drivers.testing import ScriptedTransport, expected_protocol
from drivers.transport import LinkLostError, TransportError
from drivers.wire.tem4 import (
    ASSAYS,
    DataFrame,
    HeartbeatFrame,
    encode_data,
    encode_error_reply,
    encode_heartbeat,
    encode_reply,
)

FAST = {"reply_timeout": 0.1}


def test_identify() -> None:
    pairs = [(b"*IDN?\r\n", b"$R,*IDN?,HEMOTEC,TEM-4,T4-000123,2.1.0*4E\r\n")]
    with expected_protocol(Tem4Driver, pairs) as tem:
        assert tem.identify() == Identity("HEMOTEC", "TEM-4", "T4-000123", "2.1.0")


def test_identify_other_model_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    pairs = [(b"*IDN?\r\n", encode_reply("*IDN?", "ACME", "TEM-9", "1", "0.1"))]
    with caplog.at_level(logging.WARNING), expected_protocol(Tem4Driver, pairs) as tem:
        assert tem.identify().model == "TEM-9"
    assert "TEM-9" in caplog.text


def test_status() -> None:
    pairs = [(b"STATUS?\r\n", encode_reply("STATUS?", "RUN", "RUN", "IDLE", "IDLE", "FAULT"))]
    with expected_protocol(Tem4Driver, pairs) as tem:
        assert tem.status() == Tem4Status("RUN", ("RUN", "IDLE", "IDLE", "FAULT"))


def test_temperature() -> None:
    with expected_protocol(Tem4Driver, [(b"TEMP?\r\n", b"$R,TEMP?,36.98*4B")]) as tem:
        assert tem.temperature() == pytest.approx(36.98)


@pytest.mark.parametrize(
    ("celsius", "wire"),
    [
        (37, b"TEMP 37.00\r\n"),
        (20.0, b"TEMP 20.00\r\n"),
        (45.0, b"TEMP 45.00\r\n"),
        (36.996, b"TEMP 37.00\r\n"),
        (38.25, b"TEMP 38.25\r\n"),
    ],
)
def test_set_temperature(celsius: float, wire: bytes) -> None:
    command = wire.decode().strip()
    with expected_protocol(Tem4Driver, [(wire, encode_reply(command, "OK"))]) as tem:
        tem.set_temperature(celsius)


@pytest.mark.parametrize("celsius", [19.99, 45.01, -1, 100, math.nan, math.inf, True, "37"])
def test_set_temperature_rejects_without_sending(celsius: object) -> None:
    with expected_protocol(Tem4Driver, []) as tem:
        with pytest.raises(ValueError, match=r"20\.0–45\.0 °C") as info:
            tem.set_temperature(celsius)  # type: ignore[arg-type]
        assert "Nothing was sent" in str(info.value)


@pytest.mark.parametrize("hz", [1, 10, 96, 100])
def test_set_rate(hz: int) -> None:
    pairs = [(f"RATE {hz}\r\n".encode(), encode_reply(f"RATE {hz}", "OK"))]
    with expected_protocol(Tem4Driver, pairs) as tem:
        assert tem.set_rate(hz) is None  # a scripted or socket link has no baud-rate limit


def test_set_rate_within_line_capacity() -> None:
    pairs = [(b"RATE 96\r\n", encode_reply("RATE 96", "OK"))]
    with expected_protocol(Tem4Driver, pairs, transport_baudrate=115200) as tem:
        assert tem.set_rate(96) is None


def test_set_rate_beyond_line_capacity_warns(caplog: pytest.LogCaptureFixture) -> None:
    pairs = [(b"RATE 100\r\n", encode_reply("RATE 100", "OK"))]
    with (
        caplog.at_level(logging.WARNING),
        expected_protocol(Tem4Driver, pairs, transport_baudrate=115200) as tem,
    ):
        warning = tem.set_rate(100)
    assert warning is not None
    assert "cannot fit the line" in warning
    assert "120000 bit/s" in warning and "115200 baud" in warning and "96 Hz" in warning
    assert warning in caplog.text
    assert line_capacity_hz(115200) == 96
    assert line_capacity_hz(57600) == 48


@pytest.mark.parametrize("hz", [0, 101, -5, 10.0, True, "10"])
def test_set_rate_rejects_without_sending(hz: object) -> None:
    with expected_protocol(Tem4Driver, []) as tem, pytest.raises(ValueError, match="1–100 Hz"):
        tem.set_rate(hz)  # type: ignore[arg-type]


@pytest.mark.parametrize("channel", [1, 2, 3, 4])
@pytest.mark.parametrize("assay", ASSAYS)
def test_start_channel(channel: int, assay: str) -> None:
    command = f"CH{channel}:START {assay}"
    pairs = [(command.encode() + b"\r\n", encode_reply(command, "OK"))]
    with expected_protocol(Tem4Driver, pairs) as tem:
        tem.start_channel(channel, assay)


@pytest.mark.parametrize(
    ("channel", "assay"),
    [(0, "NATEM"), (5, "NATEM"), (1.0, "NATEM"), (1, "natem"), (1, "ROTEM"), (1, "")],
)
def test_start_channel_rejects_without_sending(channel: object, assay: str) -> None:
    with expected_protocol(Tem4Driver, []) as tem, pytest.raises(ValueError, match="Nothing was"):
        tem.start_channel(channel, assay)  # type: ignore[arg-type]


@pytest.mark.parametrize("channel", [1, 2, 3, 4])
def test_stop_channel(channel: int) -> None:
    command = f"CH{channel}:STOP"
    pairs = [(command.encode() + b"\r\n", encode_reply(command, "OK"))]
    with expected_protocol(Tem4Driver, pairs) as tem:
        tem.stop_channel(channel)


def test_stop_channel_rejects_without_sending() -> None:
    with expected_protocol(Tem4Driver, []) as tem, pytest.raises(ValueError, match="1 to 4"):
        tem.stop_channel(5)


def test_error_reply_raises_instrument_error() -> None:
    pairs = [(b"RATE 20\r\n", b"$R,RATE 20,ERR,3,channel 1 is measuring*11\r\n")]
    with (
        expected_protocol(Tem4Driver, pairs, name="tem-a") as tem,
        pytest.raises(InstrumentError) as info,
    ):
        tem.set_rate(20)
    err = info.value
    assert (err.command, err.code, err.text, err.meaning) == (
        "RATE 20",
        3,
        "channel 1 is measuring",
        "busy",
    )
    message = str(err)
    assert "TEM-4 'tem-a' on scripted://scripted refused 'RATE 20'" in message
    assert "error 3 (busy)" in message and "stop the channel" in message


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (1, "unknown command"),
        (2, "invalid argument"),
        (5, "hardware fault"),
        (6, "over-temperature"),
        (42, "unknown error code"),
    ],
)
def test_error_codes_are_explained(code: int, meaning: str) -> None:
    pairs = [(b"CH2:START EXTEM\r\n", encode_error_reply("CH2:START EXTEM", code, "x"))]
    with expected_protocol(Tem4Driver, pairs) as tem, pytest.raises(InstrumentError) as info:
        tem.start_channel(2, "EXTEM")
    assert f"error {code} ({meaning})" in str(info.value)


def test_timeout_names_command_and_resource() -> None:
    with expected_protocol(Tem4Driver, [(b"STATUS?\r\n", None)], **FAST) as tem:
        started = time.monotonic()
        with pytest.raises(InstrumentTimeout) as info:
            tem.status()
        elapsed = time.monotonic() - started
    assert 0.09 <= elapsed < 1.0
    message = str(info.value)
    assert "'STATUS?'" in message and "scripted://scripted" in message and "0.1 s" in message
    assert "cable" in message and "115200" in message
    assert isinstance(info.value, TransportError)


@pytest.mark.parametrize(
    ("call", "command", "reply"),
    [
        (lambda t: t.identify(), "*IDN?", ("HEMOTEC", "TEM-4")),
        (lambda t: t.status(), "STATUS?", ("IDLE", "IDLE")),
        (lambda t: t.temperature(), "TEMP?", ("warm",)),
        (lambda t: t.temperature(), "TEMP?", ()),
        (lambda t: t.stop_channel(1), "CH1:STOP", ("DONE",)),
    ],
)
def test_unexpected_reply_shape(
    call: Callable[[Tem4Driver], object], command: str, reply: tuple[str, ...]
) -> None:
    pairs = [(command.encode() + b"\r\n", encode_reply(command, *reply))]
    with expected_protocol(Tem4Driver, pairs) as tem, pytest.raises(UnexpectedReplyError) as info:
        call(tem)
    assert f"'{command}'" in str(info.value) and "TEM-4" in str(info.value)


def test_late_reply_to_another_command_is_skipped() -> None:
    pairs = [
        (None, encode_reply("STATUS?", "IDLE", "IDLE", "IDLE", "IDLE", "IDLE")),
        (b"TEMP?\r\n", encode_reply("TEMP?", "37.00")),
    ]
    with expected_protocol(Tem4Driver, pairs) as tem:
        tem.poll()  # the stale reply is read here and parked
        assert tem.temperature() == 37.0


def test_frames_read_while_waiting_are_kept_for_poll() -> None:
    pairs = [
        (None, [encode_data(1, 1, 0, 0), encode_heartbeat(1, 5000, 3700, "RUN")]),
        (b"TEMP?\r\n", [encode_data(2, 1, 100, 3), encode_reply("TEMP?", "37.00")]),
    ]
    with expected_protocol(Tem4Driver, pairs) as tem:
        assert tem.temperature() == 37.0
        assert tem.poll() == [
            DataFrame(1, 1, 0, 0),
            HeartbeatFrame(1, 5000, 3700, "RUN"),
            DataFrame(2, 1, 100, 3),
        ]
        assert tem.poll() == []


def test_stop_all_carries_on_past_errors() -> None:
    pairs = [
        (b"CH1:STOP\r\n", encode_reply("CH1:STOP", "OK")),
        (b"CH2:STOP\r\n", encode_error_reply("CH2:STOP", 5, "motor stalled")),
        (b"CH3:STOP\r\n", None),
        (b"CH4:STOP\r\n", encode_reply("CH4:STOP", "OK")),
    ]
    with expected_protocol(Tem4Driver, pairs, **FAST) as tem:
        failures = tem.stop_all()
    assert [type(f) for f in failures] == [InstrumentError, InstrumentTimeout]
    assert "motor stalled" in str(failures[0]) and "CH3:STOP" in str(failures[1])


def test_stop_all_all_ok() -> None:
    pairs = [(f"CH{n}:STOP\r\n".encode(), encode_reply(f"CH{n}:STOP", "OK")) for n in range(1, 5)]
    with expected_protocol(Tem4Driver, pairs) as tem:
        assert tem.stop_all() == []


def test_stop_all_gives_up_when_the_link_is_lost() -> None:
    transport = ScriptedTransport([])
    transport.close()
    failures = Tem4Driver(transport).stop_all()
    assert len(failures) == 1 and isinstance(failures[0], LinkLostError)


def test_all_tem4_errors_share_a_base() -> None:
    pairs = [
        (b"STATUS?\r\n", encode_error_reply("STATUS?", 5, "x")),
        (b"TEMP?\r\n", encode_reply("TEMP?", "hot")),
        (b"TEMP?\r\n", None),
    ]
    with expected_protocol(Tem4Driver, pairs, **FAST) as tem:
        for call in (tem.status, tem.temperature, tem.temperature):
            with pytest.raises(Tem4Error):
                call()
