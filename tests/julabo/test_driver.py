"""JulaboBath against scripted transports: exact bytes, timing rules, errors (no I/O)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from drivers.julabo import BathAlarm, BathError, BathTimeout, JulaboBath
from drivers.testing import Pair, ScriptedTransport, expected_protocol

CR = b"\r"
VERSION_REPLY = b"JULABO CORIO CD-200F VERSION 1.0\r\n"
#: Before its first OUT command the driver wakes the bath with a query (see _send).
WAKE: Pair = (b"VERSION\r", VERSION_REPLY)


class FakeClock:
    """A monotonic clock that only moves when the driver sleeps or the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _bath(pairs: list[Pair], **kwargs: Any) -> Any:
    kwargs.setdefault("reply_timeout", 0.02)
    return expected_protocol(JulaboBath, pairs, write_terminator=CR, **kwargs)


# -- every command, byte for byte ------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "pairs", "result"),
    [
        (
            JulaboBath.identify,
            [(b"VERSION\r", b"JULABO CORIO CD-200F VERSION 1.0\r\n")],
            "JULABO CORIO CD-200F VERSION 1.0",
        ),
        (JulaboBath.temperature, [(b"IN_PV_00\r", b"37.02\r\n")], 37.02),
        (JulaboBath.setpoint, [(b"IN_SP_00\r", b"37.00\r\n")], 37.0),
        (JulaboBath.running, [(b"IN_MODE_05\r", b"1\r\n")], True),
        (JulaboBath.running, [(b"IN_MODE_05\r", b"0\r\n")], False),
        (lambda b: b.set_setpoint(37.0), [WAKE, (b"OUT_SP_00 37.00\r", None)], None),
        (lambda b: b.set_setpoint(4), [WAKE, (b"OUT_SP_00 4.00\r", None)], None),
        (lambda b: b.set_setpoint(45.0), [WAKE, (b"OUT_SP_00 45.00\r", None)], None),
        (JulaboBath.start, [WAKE, (b"OUT_MODE_05 1\r", None)], None),
        (JulaboBath.stop, [WAKE, (b"OUT_MODE_05 0\r", None)], None),
    ],
)
def test_command_bytes(
    call: Callable[[JulaboBath], object], pairs: list[Pair], result: object
) -> None:
    with _bath(pairs) as bath:
        assert call(bath) == result


def test_status_is_parsed() -> None:
    with _bath([(b"STATUS\r", b"03 REMOTE START\r\n")]) as bath:
        status = bath.status()
    assert (status.code, status.text, status.alarm) == (3, "REMOTE START", False)
    assert status.message == "running, remote control"


def test_serial_settings_are_the_baths_factory_settings() -> None:
    assert JulaboBath.serial_settings() == {
        "baudrate": 4800,
        "bytesize": 7,
        "parity": "E",
        "stopbits": 1,
        "rtscts": True,
        "write_terminator": b"\r",
    }


# -- timing rules ----------------------------------------------------------------------------


def test_out_commands_are_spaced_by_250_ms() -> None:
    clock = FakeClock()
    pairs: list[Pair] = [
        (b"OUT_SP_00 37.00\r", None),
        (b"OUT_MODE_05 1\r", None),
        (b"OUT_MODE_05 0\r", None),
    ]
    with _bath(pairs, clock=clock, sleep=clock.sleep, wake_retries=0) as bath:
        bath.set_setpoint(37.0)
        assert clock.sleeps == []  # nothing to wait for before the first command
        clock.now += 0.1
        bath.start()
        assert clock.sleeps == [pytest.approx(0.15)]
        clock.now += 0.3
        bath.stop()  # 300 ms later: no wait
        assert clock.sleeps == [pytest.approx(0.15)]


def test_a_query_right_after_an_out_command_also_waits() -> None:
    clock = FakeClock()
    pairs: list[Pair] = [WAKE, (b"OUT_SP_00 30.00\r", None), (b"IN_SP_00\r", b"30.00\r\n")]
    with _bath(pairs, clock=clock, sleep=clock.sleep) as bath:
        bath.set_setpoint(30.0)
        assert bath.setpoint() == 30.0
    assert clock.sleeps == [pytest.approx(0.25)]


def test_queries_alone_are_not_delayed() -> None:
    clock = FakeClock()
    pairs: list[Pair] = [(b"IN_PV_00\r", b"36.90\r\n"), (b"IN_PV_00\r", b"36.91\r\n")]
    with _bath(pairs, clock=clock, sleep=clock.sleep) as bath:
        assert [bath.temperature(), bath.temperature()] == [36.9, 36.91]
    assert clock.sleeps == []


def test_spacing_is_configurable() -> None:
    clock = FakeClock()
    pairs: list[Pair] = [(b"OUT_MODE_05 1\r", None), (b"OUT_MODE_05 0\r", None)]
    with _bath(pairs, clock=clock, sleep=clock.sleep, out_spacing_s=0.5, wake_retries=0) as bath:
        bath.start()
        bath.stop()
    assert clock.sleeps == [pytest.approx(0.5)]


def test_first_query_is_retried_once_when_the_bath_wakes_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pairs: list[Pair] = [
        (b"VERSION\r", None),
        (b"VERSION\r", b"JULABO CORIO CD-200F VERSION 1.0\r\n"),
    ]
    with (
        caplog.at_level(logging.INFO, logger="hemocompat.drivers.julabo.bath"),
        _bath(pairs) as bath,
    ):
        assert bath.identify() == "JULABO CORIO CD-200F VERSION 1.0"
    assert "no reply to the first query 'VERSION'" in caplog.text
    assert "scripted://scripted" in caplog.text


def test_first_out_command_is_preceded_by_a_wake_up_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pairs: list[Pair] = [
        (b"VERSION\r", None),  # swallowed by the waking bath: an OUT command would be lost
        (b"VERSION\r", VERSION_REPLY),
        (b"OUT_SP_00 37.00\r", None),
        (b"OUT_MODE_05 1\r", None),  # the bath has answered: no more wake-up queries
    ]
    clock = FakeClock()
    with caplog.at_level(logging.INFO), _bath(pairs, clock=clock, sleep=clock.sleep) as bath:
        bath.set_setpoint(37.0)
        bath.start()
    assert "to wake the bath before the first OUT command" in caplog.text
    assert clock.sleeps == [pytest.approx(0.25)]


def test_bath_that_never_wakes_fails_before_the_out_command_is_sent() -> None:
    pairs: list[Pair] = [(b"VERSION\r", None), (b"VERSION\r", None)]
    with _bath(pairs) as bath, pytest.raises(BathTimeout, match="'VERSION'"):
        bath.start()


def test_first_query_unanswered_twice_is_a_timeout_naming_the_port() -> None:
    pairs: list[Pair] = [(b"IN_PV_00\r", None), (b"IN_PV_00\r", None)]
    with _bath(pairs) as bath, pytest.raises(BathTimeout) as info:
        bath.temperature()
    text = str(info.value)
    assert info.value.port == "scripted://scripted" and "scripted://scripted" in text
    for hint in ("'IN_PV_00'", "cable", "7E1", "RTS/CTS", "remote mode"):
        assert hint in text
    assert info.value.command == "IN_PV_00"


def test_only_the_first_query_is_retried() -> None:
    pairs: list[Pair] = [(b"IN_PV_00\r", b"37.00\r\n"), (b"IN_SP_00\r", None)]
    with _bath(pairs) as bath:
        assert bath.temperature() == 37.0
        with pytest.raises(BathTimeout):
            bath.setpoint()


@pytest.mark.parametrize("retries", [0, 2])
def test_wake_retries_are_configurable(retries: int) -> None:
    pairs: list[Pair] = [(b"STATUS\r", None)] * (retries + 1)
    with _bath(pairs, wake_retries=retries) as bath, pytest.raises(BathTimeout):
        bath.status()


# -- refusing setpoints ----------------------------------------------------------------------


@pytest.mark.parametrize("celsius", [3.9, 45.1, -37.0, float("nan"), float("inf")])
def test_setpoint_outside_the_range_is_refused_before_anything_is_sent(celsius: float) -> None:
    with _bath([]) as bath, pytest.raises(ValueError, match="4–45 °C") as info:
        bath.set_setpoint(celsius)
    assert "nothing was sent to scripted://scripted" in str(info.value)


def test_setpoint_range_is_configurable_and_checked() -> None:
    pairs: list[Pair] = [WAKE, (b"OUT_SP_00 20.00\r", None)]
    with _bath(pairs, setpoint_range=(10.0, 20.0)) as bath:
        bath.set_setpoint(20.0)
        with pytest.raises(ValueError, match="10–20 °C"):
            bath.set_setpoint(20.01)
    transport = ScriptedTransport([], write_terminator=CR)
    with pytest.raises(ValueError, match="low < high"):
        JulaboBath(transport, setpoint_range=(45.0, 4.0))


# -- status and alarms -----------------------------------------------------------------------


def test_check_alarm_passes_a_normal_status() -> None:
    with _bath([(b"STATUS\r", b"02 REMOTE STOP\r\n")]) as bath:
        status = bath.check_alarm()
    assert status.code == 2 and not status.running and status.remote


def test_check_alarm_raises_with_the_readable_message() -> None:
    pairs: list[Pair] = [(b"STATUS\r", b"-01 LOW LEVEL ALARM\r\n")]
    with _bath(pairs) as bath, pytest.raises(BathAlarm) as info:
        bath.check_alarm()
    alarm = info.value
    assert alarm.status.code == -1 and alarm.port == "scripted://scripted"
    assert "'-01 LOW LEVEL ALARM'" in str(alarm) and "top up the bath fluid" in str(alarm)


def test_status_alone_reports_an_alarm_without_raising() -> None:
    with _bath([(b"STATUS\r", b"-14 TEMPERATURE/LEVEL ALARM\r\n")]) as bath:
        status = bath.status()
    assert status.alarm and "excess-temperature protector" in status.message


def test_unknown_alarm_code_is_raised_with_the_raw_text() -> None:
    pairs: list[Pair] = [(b"STATUS\r", b"-33 SAFETY SENSOR ALARM\r\n")]
    with _bath(pairs) as bath, pytest.raises(BathAlarm, match="'-33 SAFETY SENSOR ALARM'"):
        bath.check_alarm()


# -- replies the driver cannot use ------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "pairs", "raw"),
    [
        (JulaboBath.temperature, [(b"IN_PV_00\r", b"37.0x\r\n")], "37.0x"),
        (JulaboBath.setpoint, [(b"IN_SP_00\r", b"SP=37\r\n")], "SP=37"),
        (JulaboBath.running, [(b"IN_MODE_05\r", b"2\r\n")], "2"),
        (JulaboBath.status, [(b"STATUS\r", b"REMOTE START\r\n")], "REMOTE START"),
        (JulaboBath.identify, [(b"VERSION\r", b"-08 INVALID COMMAND\r\n")], "-08 INVALID COMMAND"),
    ],
)
def test_unparseable_reply_is_a_bath_error_with_raw_reply_and_port(
    call: Callable[[JulaboBath], object], pairs: list[Pair], raw: str
) -> None:
    with _bath(pairs) as bath, pytest.raises(BathError) as info:
        call(bath)
    assert info.value.reply == raw and info.value.port == "scripted://scripted"
    assert repr(raw) in str(info.value) and "scripted://scripted" in str(info.value)
    assert not isinstance(info.value, BathTimeout | BathAlarm)


def test_error_status_instead_of_a_value_is_explained() -> None:
    pairs: list[Pair] = [(b"IN_PV_00\r", b"-08 INVALID COMMAND\r\n")]
    with _bath(pairs) as bath, pytest.raises(BathError, match="did not recognise the last"):
        bath.temperature()


def test_late_replies_are_discarded_before_the_next_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pairs: list[Pair] = [(None, b"36.50\r\n"), (b"IN_SP_00\r", b"37.00\r\n")]
    with _bath(pairs) as bath:
        assert bath.setpoint() == 37.0
    assert "discarding 1 late or unexpected line" in caplog.text


def test_each_exchange_holds_the_transport_lock() -> None:
    transport = ScriptedTransport(
        [WAKE, (b"OUT_MODE_05 1\r", None), (b"IN_MODE_05\r", b"1\r\n")], write_terminator=CR
    )
    original_write = transport.write
    held: list[bool] = []

    def write(data: bytes) -> None:
        held.append(transport.lock.locked())
        original_write(data)

    transport.write = write  # type: ignore[method-assign]
    with JulaboBath(transport, out_spacing_s=0.0) as bath:
        bath.start()
        assert bath.running()
    assert held == [True, True, True] and transport.closed
    transport.assert_done()


def test_a_query_waits_for_another_thread_holding_the_lock() -> None:
    transport = ScriptedTransport([(b"IN_PV_00\r", b"37.00\r\n")], write_terminator=CR)
    bath = JulaboBath(transport)
    result: list[float] = []
    with transport.lock:
        worker = threading.Thread(target=lambda: result.append(bath.temperature()))
        worker.start()
        worker.join(0.1)
        assert worker.is_alive() and transport.written == []
    worker.join(2.0)
    assert result == [37.0]
    bath.close()
