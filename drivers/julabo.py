"""JULABO circulator (water bath) driver over the vendor's RS232 command set.

See docs/protocols/julabo.md. The driver receives a line transport (a serial port, a
simulator's pty or ``socket://`` URL, or a scripted test transport) and works with a real
bath: 4800 baud 7E1 with RTS/CTS by default (:meth:`JulaboBath.serial_settings`).

Timing rules the bath imposes, enforced here:

* after an OUT command (which gets no reply) the bath needs ``out_spacing_s`` (250 ms) before
  the next command; the driver waits the remainder with the injectable ``clock``/``sleep``;
* the first query after the port opens may go unanswered while the bath's interface wakes
  up; the driver repeats it ``wake_retries`` times (once by default) and logs that it did.
  If the first command would be an OUT command, which has no reply to show it was lost, a
  VERSION query wakes the bath first.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TypedDict

from drivers.transport import LineTransport
from drivers.wire import julabo as wire
from drivers.wire.julabo import StatusReply

__all__ = [
    "BathAlarm",
    "BathError",
    "BathStatus",
    "BathTimeout",
    "JulaboBath",
    "JulaboSerialSettings",
]

#: A parsed STATUS reply: ``code``, the bath's ``text``, ``alarm`` (any negative code) and a
#: readable ``message`` (the raw reply for codes not in the table).
BathStatus = StatusReply


class JulaboSerialSettings(TypedDict):
    """Keyword arguments for :class:`drivers.transport.SerialTransport` matching the bath."""

    baudrate: int
    bytesize: int
    parity: str
    stopbits: int
    rtscts: bool
    write_terminator: bytes


class BathError(Exception):
    """The bath answered something the driver cannot use, or refused a command."""

    def __init__(
        self, message: str, *, port: str, command: str | None = None, reply: str | None = None
    ) -> None:
        super().__init__(message)
        self.port = port
        self.command = command
        self.reply = reply


class BathTimeout(BathError):  # noqa: N818 (name used across the project)
    """The bath did not answer a query within the reply timeout."""


class BathAlarm(BathError):  # noqa: N818 (name used across the project)
    """The bath reports an alarm, warning or command error in its STATUS reply."""

    def __init__(self, message: str, *, port: str, status: BathStatus) -> None:
        super().__init__(message, port=port, command=wire.STATUS, reply=_status_line(status))
        self.status = status


def _status_line(status: BathStatus) -> str:
    """The STATUS reply as the bath sent it (codes are zero-padded to two digits)."""
    return wire.format_status(status.code, status.text).strip()


class JulaboBath:
    """A JULABO circulator: temperature, setpoint, start/stop and status over RS232.

    ``setpoint_range`` is the range this application allows (hemocompatibility assays need
    4–45 °C); setpoints outside it are refused before anything is sent, never clipped.
    """

    def __init__(
        self,
        transport: LineTransport,
        *,
        name: str = "bath",
        reply_timeout: float = 1.0,
        out_spacing_s: float = wire.OUT_SPACING_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        setpoint_range: tuple[float, float] = (4.0, 45.0),
        wake_retries: int = 1,
    ) -> None:
        low, high = setpoint_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(
                f"{name}: setpoint_range must be two finite numbers, low < high; "
                f"got {setpoint_range!r}"
            )
        if reply_timeout <= 0:
            raise ValueError(f"{name}: reply_timeout must be > 0 s, got {reply_timeout!r}")
        if out_spacing_s < 0:
            raise ValueError(f"{name}: out_spacing_s must be ≥ 0 s, got {out_spacing_s!r}")
        if wake_retries < 0:
            raise ValueError(f"{name}: wake_retries must be ≥ 0, got {wake_retries!r}")
        self.name = name
        self.reply_timeout = reply_timeout
        self.out_spacing_s = out_spacing_s
        self.setpoint_range = (float(low), float(high))
        self.wake_retries = wake_retries
        self._transport = transport
        self._log = logging.getLogger(f"hemocompat.drivers.julabo.{name}")
        self._clock = clock
        self._sleep = sleep
        self._last_out_at: float | None = None
        self._answered_once = False

    # -- settings --------------------------------------------------------------------------

    @staticmethod
    def serial_settings() -> JulaboSerialSettings:
        """The bath's factory line settings: 4800 baud, 7 data bits, even parity, 1 stop bit,
        RTS/CTS handshake, commands terminated by CR. Pass them to ``SerialTransport``."""
        return JulaboSerialSettings(
            baudrate=wire.BAUDRATE,
            bytesize=wire.BYTESIZE,
            parity=wire.PARITY,
            stopbits=wire.STOPBITS,
            rtscts=wire.RTSCTS,
            write_terminator=wire.COMMAND_TERMINATOR,
        )

    @property
    def port(self) -> str:
        """The port or URL the bath is connected to, as shown in error messages."""
        return self._transport.resource

    # -- commands --------------------------------------------------------------------------

    def identify(self) -> str:
        """The bath's model and firmware, e.g. ``JULABO CORIO CD-200F VERSION 1.0``."""
        reply = self._query(wire.VERSION)
        if not reply.strip() or wire.looks_like_status(reply):
            raise self._reply_error(wire.VERSION, reply, "the model and firmware version")
        return reply.strip()

    def status(self) -> BathStatus:
        """The bath's state or its current alarm/error (STATUS)."""
        reply = self._query(wire.STATUS)
        try:
            return wire.parse_status(reply)
        except wire.ReplyFormatError as exc:
            raise self._bad_reply(wire.STATUS, reply, exc.expected) from None

    def check_alarm(self) -> BathStatus:
        """Query STATUS; raise :class:`BathAlarm` with the readable message on a negative code."""
        status = self.status()
        if status.alarm:
            raise BathAlarm(
                f"{self.name} on {self.port} reports {_status_line(status)!r}: {status.message}",
                port=self.port,
                status=status,
            )
        return status

    def temperature(self) -> float:
        """The bath temperature in °C (IN_PV_00)."""
        return self._query_float(wire.IN_PV_00, "the bath temperature")

    def setpoint(self) -> float:
        """The working temperature setpoint in °C (IN_SP_00)."""
        return self._query_float(wire.IN_SP_00, "the setpoint")

    def set_setpoint(self, celsius: float) -> None:
        """Set the working temperature (``OUT_SP_00 37.00``); refused outside ``setpoint_range``.

        The bath does not answer OUT commands: a refusal (not in remote mode, value outside the
        bath's own limits) shows in :meth:`status` / :meth:`check_alarm`.
        """
        low, high = self.setpoint_range
        value = float(celsius)
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(
                f"{self.name}: setpoint {celsius!r} °C is outside the allowed range "
                f"{low:g}–{high:g} °C; nothing was sent to {self.port}. Choose a setpoint "
                f"within the range."
            )
        self._send(wire.format_setpoint(value))

    def start(self) -> None:
        """Start the circulator (``OUT_MODE_05 1``); the bath must be in remote mode."""
        self._send(wire.format_mode(True))

    def stop(self) -> None:
        """Stop the circulator (``OUT_MODE_05 0``)."""
        self._send(wire.format_mode(False))

    def running(self) -> bool:
        """True if the circulator is started (IN_MODE_05)."""
        reply = self._query(wire.IN_MODE_05)
        try:
            return wire.parse_mode(reply)
        except wire.ReplyFormatError as exc:
            raise self._reply_error(wire.IN_MODE_05, reply, exc.expected) from None

    def close(self) -> None:
        """Close the transport."""
        self._transport.close()

    def __enter__(self) -> JulaboBath:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JulaboBath({self.port!r}, name={self.name!r})"

    # -- exchanges -------------------------------------------------------------------------

    def _query_float(self, command: str, what: str) -> float:
        reply = self._query(command)
        try:
            return wire.parse_temperature(reply)
        except wire.ReplyFormatError as exc:
            raise self._reply_error(command, reply, f"{what} ({exc.expected})") from None

    def _wait_out_spacing(self) -> None:
        """Wait until ``out_spacing_s`` has passed since the last OUT command."""
        if self._last_out_at is None:
            return
        remaining = self._last_out_at + self.out_spacing_s - self._clock()
        if remaining > 0:
            self._sleep(remaining)

    def _send(self, command: str) -> None:
        """Send an OUT command (no reply), respecting the spacing the bath needs.

        A bath may swallow the first command after the port opens, and an OUT command has no
        reply to show it was lost; so until the bath has answered once, a VERSION query
        (repeated like any first query) wakes it up first. ``wake_retries=0`` skips this.
        """
        with self._transport.lock:
            self._discard_stale()
            if not self._answered_once and self.wake_retries > 0:
                self._log.info(
                    "%s on %s: querying VERSION to wake the bath before the first OUT command",
                    self.name,
                    self.port,
                )
                self._exchange(wire.VERSION)
            self._wait_out_spacing()
            self._transport.write(command.encode("ascii"))
            self._last_out_at = self._clock()

    def _query(self, command: str) -> str:
        """Send an IN command or query and return its one-line reply (terminator removed)."""
        with self._transport.lock:
            self._discard_stale()
            return self._exchange(command)

    def _exchange(self, command: str) -> str:
        """Write a query and read its reply; the caller holds the transport lock."""
        self._wait_out_spacing()
        attempts = 1 if self._answered_once else 1 + self.wake_retries
        for attempt in range(1, attempts + 1):
            self._transport.write(command.encode("ascii"))
            line = self._read_reply()
            if line is not None:
                self._answered_once = True
                return line.decode("ascii", "backslashreplace")
            if attempt < attempts:
                self._log.info(
                    "%s on %s: no reply to the first query %r (the bath's interface wakes "
                    "up on the first command after the port opens); sending it again",
                    self.name,
                    self.port,
                    command,
                )
        raise BathTimeout(
            f"{self.name} on {self.port} did not answer {command!r} within "
            f"{self.reply_timeout:g} s. Check the RS232 cable (a null-modem cable on most "
            f"baths), the line settings (4800 baud 7E1 unless changed at the bath), the "
            f"RTS/CTS handshake setting, and that the bath is switched on and in remote mode.",
            port=self.port,
            command=command,
        )

    def _read_reply(self) -> bytes | None:
        deadline = time.monotonic() + self.reply_timeout
        while True:
            remaining = deadline - time.monotonic()
            lines = self._transport.read_lines(max(remaining, 0.0))
            if lines:
                if len(lines) > 1:
                    self._log.warning(
                        "%s on %s: %d lines for one query, using the last: %r",
                        self.name,
                        self.port,
                        len(lines),
                        lines,
                    )
                return lines[-1]
            if remaining <= 0:
                return None

    def _discard_stale(self) -> None:
        """Drop replies that arrived after an earlier query had already timed out."""
        stale = self._transport.read_lines(0.0)
        if stale:
            self._log.warning(
                "%s on %s: discarding %d late or unexpected line(s): %r",
                self.name,
                self.port,
                len(stale),
                stale,
            )

    def _reply_error(self, command: str, reply: str, expected: str) -> BathError:
        if wire.looks_like_status(reply):
            status = wire.parse_status(reply)
            return BathError(
                f"{self.name} on {self.port} answered {command!r} with the error "
                f"{reply.strip()!r}: {status.message}",
                port=self.port,
                command=command,
                reply=reply,
            )
        return self._bad_reply(command, reply, expected)

    def _bad_reply(self, command: str, reply: str, expected: str) -> BathError:
        return BathError(
            f"{self.name} on {self.port}: unexpected reply {reply!r} to {command!r} "
            f"(expected {expected}). Check the line settings (4800 baud 7E1 unless changed at "
            f"the bath) and that the device on this port is a JULABO bath.",
            port=self.port,
            command=command,
            reply=reply,
        )
