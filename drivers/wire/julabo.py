"""JULABO circulator serial command set (see docs/protocols/julabo.md).

Pure functions and value types: command formatting, reply parsing and the table of status
and alarm codes. The driver and the simulator both use them; nothing here does I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BAUDRATE",
    "BYTESIZE",
    "COMMAND_TERMINATOR",
    "IN_MODE_05",
    "IN_PV_00",
    "IN_SP_00",
    "OUT_MODE_05",
    "OUT_SPACING_S",
    "OUT_SP_00",
    "PARITY",
    "REPLY_TERMINATOR",
    "RTSCTS",
    "STATUS",
    "STATUS_CODES",
    "STOPBITS",
    "VERSION",
    "Command",
    "ReplyFormatError",
    "StatusCode",
    "StatusKind",
    "StatusReply",
    "encode_reply",
    "format_mode",
    "format_setpoint",
    "format_status",
    "is_out_command",
    "looks_like_status",
    "parse_command",
    "parse_mode",
    "parse_status",
    "parse_temperature",
    "split_commands",
]

# Line settings the baths ship with (all configurable at the bath and in the driver).
BAUDRATE = 4800
BYTESIZE = 7
PARITY = "E"
STOPBITS = 1
RTSCTS = True
#: Host commands end with CR; the bath answers IN commands with the value and CR LF.
COMMAND_TERMINATOR = b"\r"
REPLY_TERMINATOR = b"\r\n"
#: Minimum gap after an OUT command before the bath accepts the next command.
OUT_SPACING_S = 0.25

VERSION = "VERSION"
STATUS = "STATUS"
IN_PV_00 = "IN_PV_00"  # bath (internal sensor) temperature
IN_SP_00 = "IN_SP_00"  # working temperature setpoint
IN_MODE_05 = "IN_MODE_05"  # circulator stopped (0) / started (1)
OUT_SP_00 = "OUT_SP_00"  # set the working temperature setpoint
OUT_MODE_05 = "OUT_MODE_05"  # stop (0) / start (1) the circulator

StatusKind = Literal["state", "alarm", "warning", "command error"]


@dataclass(frozen=True, slots=True)
class StatusCode:
    """One entry of the status table: the bath's own text and a readable explanation."""

    device_text: str
    message: str
    kind: StatusKind


#: STATUS replies. ``device_text`` is the text printed in JULABO operating manuals (it varies
#: slightly between models, so replies are matched by code); ``message`` is this project's
#: explanation with what to do. Codes missing here are reported with the bath's raw text.
STATUS_CODES: dict[int, StatusCode] = {
    0: StatusCode("MANUAL STOP", "stopped, keypad (manual) control", "state"),
    1: StatusCode("MANUAL START", "running, keypad (manual) control", "state"),
    2: StatusCode("REMOTE STOP", "stopped, remote control", "state"),
    3: StatusCode("REMOTE START", "running, remote control", "state"),
    -1: StatusCode(
        "LOW LEVEL ALARM",
        "low liquid level: top up the bath fluid, then clear the alarm at the bath",
        "alarm",
    ),
    -2: StatusCode(
        "COOLING UNIT ALARM",
        "cooling unit alarm: a temperature sensor of the cooling unit failed; call service",
        "alarm",
    ),
    -3: StatusCode(
        "EXCESS TEMPERATURE WARNING",
        "bath above its high-temperature warning limit: check the setpoint and the limit",
        "warning",
    ),
    -4: StatusCode(
        "LOW TEMPERATURE WARNING",
        "bath below its low-temperature warning limit: check the setpoint and the limit",
        "warning",
    ),
    -5: StatusCode(
        "WORKING SENSOR ALARM",
        "working temperature sensor short-circuited or open: call service",
        "alarm",
    ),
    -6: StatusCode(
        "SENSOR DIFFERENCE ALARM",
        "working and safety sensors disagree: check both sensors; call service if it persists",
        "alarm",
    ),
    -7: StatusCode(
        "I2C-BUS ERROR",
        "internal bus error while reading or writing settings: switch the bath off and on",
        "alarm",
    ),
    -8: StatusCode(
        "INVALID COMMAND",
        "the bath did not recognise the last command: check the line settings (7E1)",
        "command error",
    ),
    -9: StatusCode(
        "COMMAND NOT ALLOWED IN CURRENT OPERATING MODE",
        "the last command is not allowed in the current mode: put the bath in remote mode",
        "command error",
    ),
    -10: StatusCode(
        "VALUE TOO SMALL",
        "the last value sent is below what the bath accepts",
        "command error",
    ),
    -11: StatusCode(
        "VALUE TOO LARGE",
        "the last value sent is above what the bath accepts",
        "command error",
    ),
    -12: StatusCode(
        "TEMPERATURE MEASUREMENT ALARM",
        "temperature measurement failed (A/D converter error): call service",
        "alarm",
    ),
    -13: StatusCode(
        "WARNING : VALUE EXCEEDS TEMPERATURE LIMITS",
        "the value sent is outside the bath's warning limits (it was stored anyway)",
        "warning",
    ),
    -14: StatusCode(
        "TEMPERATURE/LEVEL ALARM",
        "safety temperature/level alarm: the excess-temperature protector tripped; let the "
        "bath cool, check the fluid level and the protector setting, then reset at the bath",
        "alarm",
    ),
}


class ReplyFormatError(ValueError):
    """A bath reply that does not have the shape its command promises."""

    def __init__(self, reply: str, expected: str) -> None:
        self.reply = reply
        self.expected = expected
        super().__init__(f"expected {expected}, got {reply!r}")


@dataclass(frozen=True, slots=True)
class StatusReply:
    """A parsed STATUS reply.

    ``alarm`` is true for every negative code (alarms, warnings and command errors);
    ``message`` is the readable explanation, or the raw reply for codes not in the table.
    """

    code: int
    text: str
    alarm: bool
    message: str

    @property
    def kind(self) -> StatusKind | None:
        """What the code means (state, alarm, warning, command error); None if unknown."""
        entry = STATUS_CODES.get(self.code)
        return entry.kind if entry else None

    @property
    def known(self) -> bool:
        return self.code in STATUS_CODES

    @property
    def running(self) -> bool:
        """True for the two "START" states (01, 03)."""
        return self.code in (1, 3)

    @property
    def remote(self) -> bool:
        """True for the two remote-control states (02, 03)."""
        return self.code in (2, 3)


@dataclass(frozen=True, slots=True)
class Command:
    """A host command as the bath reads it: upper-case name and optional argument."""

    name: str
    argument: str | None = None

    @property
    def is_out(self) -> bool:
        return self.name.startswith("OUT_")


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_STATUS = re.compile(r"(-?\d{1,3})(?:\s+(.*))?")
_STATUS_LIKE = re.compile(r"-\d{1,3}\s+[A-Z]")


def format_setpoint(celsius: float) -> str:
    """``OUT_SP_00 37.00``: the setpoint with two decimals, as the bath expects."""
    if not math.isfinite(celsius):
        raise ValueError(f"setpoint must be a finite number of °C, got {celsius!r}")
    text = f"{celsius:.2f}"
    if text == "-0.00":
        text = "0.00"
    return f"{OUT_SP_00} {text}"


def format_mode(running: bool) -> str:
    """``OUT_MODE_05 1`` starts the circulator, ``OUT_MODE_05 0`` stops it."""
    return f"{OUT_MODE_05} {1 if running else 0}"


def is_out_command(command: str) -> bool:
    """OUT commands set something and get no reply; IN commands and queries get one."""
    return command.lstrip().upper().startswith("OUT_")


def parse_temperature(reply: str) -> float:
    """A temperature reply such as ``37.02`` (leading spaces or a sign allowed)."""
    text = reply.strip()
    if not _NUMBER.fullmatch(text):
        raise ReplyFormatError(reply, "a temperature such as '37.02'")
    return float(text)


def parse_mode(reply: str) -> bool:
    """The ``IN_MODE_05`` reply: ``1`` running, ``0`` stopped."""
    text = reply.strip()
    if text == "1":
        return True
    if text == "0":
        return False
    raise ReplyFormatError(reply, "'1' (running) or '0' (stopped)")


def parse_status(reply: str) -> StatusReply:
    """A STATUS reply ``<code> <text>``, e.g. ``03 REMOTE START`` or ``-01 LOW LEVEL ALARM``."""
    match = _STATUS.fullmatch(reply.strip())
    if match is None:
        raise ReplyFormatError(reply, "a status such as '03 REMOTE START'")
    code = int(match.group(1))
    text = (match.group(2) or "").strip()
    entry = STATUS_CODES.get(code)
    if entry is not None:
        message = entry.message
    else:
        raw = reply.strip()
        message = f"status code {code} is not in the table; the bath says {raw!r}"
    return StatusReply(code=code, text=text, alarm=code < 0, message=message)


def looks_like_status(reply: str) -> bool:
    """True if a reply is an error status (``-08 INVALID COMMAND``) rather than a value."""
    return _STATUS_LIKE.match(reply.strip()) is not None


def format_status(code: int, text: str | None = None) -> str:
    """The STATUS reply for a code, e.g. ``03 REMOTE START`` or ``-08 INVALID COMMAND``."""
    if text is None:
        entry = STATUS_CODES.get(code)
        if entry is None:
            raise KeyError(f"no device text for status code {code}; pass one")
        text = entry.device_text
    number = f"{code:03d}" if code < 0 else f"{code:02d}"
    return f"{number} {text}"


def parse_command(line: str) -> Command:
    """A host command line (terminator removed): name upper-cased, argument kept as text."""
    parts = line.strip().split(None, 1)
    if not parts:
        return Command("")
    name = parts[0].upper()
    argument = parts[1].strip() if len(parts) > 1 else None
    return Command(name, argument)


def encode_reply(text: str) -> bytes:
    """A bath reply on the wire: ASCII text followed by CR LF."""
    return text.encode("ascii") + REPLY_TERMINATOR


def split_commands(buffer: bytes) -> tuple[list[str], bytes]:
    """Split received bytes into complete commands (CR-terminated; LF tolerated) and the rest.

    Empty lines (such as the LF of a CR LF pair) are dropped; bytes after the last
    terminator are returned to be completed by the next read.
    """
    normalised = buffer.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    *complete, rest = normalised.split(b"\r")
    commands = [c.decode("ascii", "replace").strip() for c in complete]
    return [c for c in commands if c], rest
