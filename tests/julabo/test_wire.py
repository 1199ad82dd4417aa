"""JULABO command formatting, reply parsing and the status table (pure, no I/O)."""

from __future__ import annotations

import pytest

from drivers.wire import julabo as wire


@pytest.mark.parametrize(
    ("celsius", "text"),
    [(37.0, "OUT_SP_00 37.00"), (4, "OUT_SP_00 4.00"), (36.456, "OUT_SP_00 36.46")],
)
def test_setpoint_is_formatted_with_two_decimals(celsius: float, text: str) -> None:
    assert wire.format_setpoint(celsius) == text


def test_non_finite_setpoint_cannot_be_formatted() -> None:
    with pytest.raises(ValueError, match="finite"):
        wire.format_setpoint(float("nan"))


def test_mode_commands() -> None:
    assert wire.format_mode(True) == "OUT_MODE_05 1"
    assert wire.format_mode(False) == "OUT_MODE_05 0"
    assert wire.is_out_command("OUT_MODE_05 1")
    assert wire.is_out_command("out_sp_00 37.00")
    assert not wire.is_out_command("IN_MODE_05")


@pytest.mark.parametrize(("reply", "value"), [("37.02", 37.02), (" -5.50 ", -5.5), ("+4", 4.0)])
def test_temperature_replies(reply: str, value: float) -> None:
    assert wire.parse_temperature(reply) == value


@pytest.mark.parametrize("reply", ["", "nan", "inf", "37.0x", "1_000", "37,02", "-08 INVALID"])
def test_malformed_temperature_replies_are_rejected(reply: str) -> None:
    with pytest.raises(wire.ReplyFormatError) as info:
        wire.parse_temperature(reply)
    assert info.value.reply == reply


def test_mode_replies() -> None:
    assert wire.parse_mode("1") is True
    assert wire.parse_mode("0 ") is False
    with pytest.raises(wire.ReplyFormatError, match=r"'1' \(running\) or '0'"):
        wire.parse_mode("2")


def test_known_status_is_parsed_with_readable_message() -> None:
    status = wire.parse_status("03 REMOTE START")
    assert (status.code, status.text, status.alarm) == (3, "REMOTE START", False)
    assert status.running and status.remote and status.known and status.kind == "state"
    alarm = wire.parse_status("-01 LOW LEVEL ALARM")
    assert (alarm.code, alarm.alarm, alarm.kind) == (-1, True, "alarm")
    assert "top up the bath fluid" in alarm.message
    assert not alarm.running


def test_status_is_matched_by_code_whatever_the_model_prints() -> None:
    status = wire.parse_status("-01 LOW LIQUID LEVEL ALARM")
    assert status.text == "LOW LIQUID LEVEL ALARM"
    assert status.message == wire.STATUS_CODES[-1].message


def test_unknown_status_code_is_shown_raw() -> None:
    status = wire.parse_status("-33 SAFETY SENSOR ALARM")
    assert status.code == -33 and status.alarm and not status.known and status.kind is None
    assert "'-33 SAFETY SENSOR ALARM'" in status.message


@pytest.mark.parametrize("reply", ["", "REMOTE START", "3.5 REMOTE", "--1 X"])
def test_malformed_status_is_rejected(reply: str) -> None:
    with pytest.raises(wire.ReplyFormatError):
        wire.parse_status(reply)


@pytest.mark.parametrize("code", sorted(wire.STATUS_CODES))
def test_every_status_code_round_trips(code: int) -> None:
    line = wire.format_status(code)
    assert line.split(" ", 1)[0] == (f"{code:03d}" if code < 0 else f"{code:02d}")
    status = wire.parse_status(line)
    assert status.code == code and status.text == wire.STATUS_CODES[code].device_text
    assert status.alarm == (code < 0) == (wire.STATUS_CODES[code].kind != "state")


def test_status_formatting() -> None:
    assert wire.format_status(-8) == "-08 INVALID COMMAND"
    assert wire.format_status(2) == "02 REMOTE STOP"
    assert wire.format_status(-33, "SAFETY SENSOR ALARM") == "-33 SAFETY SENSOR ALARM"
    with pytest.raises(KeyError):
        wire.format_status(-33)


def test_error_status_is_told_apart_from_values() -> None:
    assert wire.looks_like_status("-08 INVALID COMMAND")
    assert not wire.looks_like_status("-8.50")
    assert not wire.looks_like_status("37.02")


def test_commands_are_split_on_cr_and_partial_lines_kept() -> None:
    commands, rest = wire.split_commands(b"IN_PV_00\rout_sp_00 37.00\r\nSTAT")
    assert commands == ["IN_PV_00", "out_sp_00 37.00"]
    assert rest == b"STAT"
    more, rest = wire.split_commands(rest + b"US\r")
    assert (more, rest) == (["STATUS"], b"")


def test_command_parsing() -> None:
    assert wire.parse_command("out_sp_00  37.00 ") == wire.Command("OUT_SP_00", "37.00")
    assert wire.parse_command("VERSION") == wire.Command("VERSION")
    assert wire.parse_command("OUT_MODE_05 1").is_out
    assert wire.encode_reply("37.02") == b"37.02\r\n"
