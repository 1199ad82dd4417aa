"""TEM-4 thromboelastometer driver: its commands, and its data stream delivered in order.

The wire protocol is specified in docs/protocols/tem4.md. Data (``$D``) and event (``$E``)
frames share one sequence counter; the driver delivers them in ``seq`` order, drops
duplicates, and asks the instrument to resend (``REPLAY <seq>``) whatever it missed. That
machinery is shared with the LOOP-8 (:class:`drivers.sequenced.SequencedDriver`); this
module adds the TEM-4 command set.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from drivers import sequenced
from drivers.sequenced import (
    LINK_NOTICE_KINDS,
    DeviceError,
    Identity,
    LinkNotice,
    LinkStats,
    SequencedDriver,
)
from drivers.transport import LineTransport, LinkLostError, TransportError
from drivers.wire.tem4 import (
    ASSAYS,
    CHANNELS,
    MAX_RATE_HZ,
    MIN_RATE_HZ,
    SEQ_BUFFER,
    DataFrame,
    EventFrame,
    HeartbeatFrame,
    parse_line,
)

__all__ = [
    "BITS_PER_BYTE",
    "LINK_NOTICE_KINDS",
    "MAX_TEMP_C",
    "MIN_TEMP_C",
    "NOMINAL_FRAME_BYTES",
    "DataFrame",
    "EventFrame",
    "HeartbeatFrame",
    "Identity",
    "InstrumentError",
    "InstrumentTimeout",
    "LinkNotice",
    "LinkStats",
    "Sink",
    "StreamItem",
    "Tem4Driver",
    "Tem4Error",
    "Tem4Status",
    "UnexpectedReplyError",
    "line_capacity_hz",
]

MIN_TEMP_C = 20.0
MAX_TEMP_C = 45.0
#: Nominal size of one ``$D`` frame on the wire, CR LF included, for the line-capacity check.
NOMINAL_FRAME_BYTES = 30
#: 8N1 framing: start bit, 8 data bits, stop bit.
BITS_PER_BYTE = 10

_PENDING_MAX = SEQ_BUFFER  # stream items kept while nobody streams (see Tem4Driver)

_ADVICE: Mapping[int, str] = MappingProxyType(
    {
        1: "Check the instrument firmware supports this command (identify() shows its version).",
        2: "Check the value against the TEM-4 manual; the driver may be newer than the firmware.",
        3: "Wait for the running measurement to finish, or stop the channel first.",
        4: "The instrument no longer holds those frames; their data is lost.",
        5: "Check the cup and pin are seated; power-cycle the instrument and call service if it "
        "persists.",
        6: "Let the instrument cool down, check the set point and that its vents are free.",
    }
)

StreamItem = DataFrame | EventFrame | HeartbeatFrame | LinkNotice
Sink = Callable[[StreamItem], None]


@dataclass(frozen=True, slots=True)
class Tem4Status:
    """``STATUS?``: the device state and one state per channel (``IDLE``, ``RUN``, ...)."""

    state: str
    channels: tuple[str, ...]


class Tem4Error(DeviceError):
    """A TEM-4 problem the user can act on (refused command, silent or unknown instrument)."""

    MODEL = "TEM-4"
    LINE_SETTINGS = "115200 baud 8N1"
    ADVICE: ClassVar[Mapping[int, str]] = _ADVICE


class InstrumentError(sequenced.InstrumentError, Tem4Error):
    """The TEM-4 refused a command with ``$R,<command>,ERR,<code>,<text>``."""


class InstrumentTimeout(sequenced.InstrumentTimeout, Tem4Error):  # noqa: N818 (contract name)
    """No reply from the TEM-4 to a command within the reply timeout."""


class UnexpectedReplyError(sequenced.UnexpectedReplyError, Tem4Error):
    """A reply that does not have the documented shape (another instrument on the port?)."""


def line_capacity_hz(baudrate: int) -> int:
    """Highest sample rate whose four channels of ``$D`` frames fit a serial line."""
    return baudrate // (CHANNELS * NOMINAL_FRAME_BYTES * BITS_PER_BYTE)


def _check_channel(channel: int) -> int:
    if (
        isinstance(channel, bool)
        or not isinstance(channel, numbers.Integral)
        or not 1 <= channel <= CHANNELS
    ):
        raise ValueError(
            f"Channel {channel!r} does not exist: the TEM-4 has channels 1 to {CHANNELS}. "
            f"Nothing was sent."
        )
    return int(channel)


class Tem4Driver(SequencedDriver[DataFrame]):
    """Commands and the sequenced data stream of one TEM-4 on one transport.

    Without streaming, commands read their replies directly; data frames read meanwhile are
    sequenced and kept (up to 65 536 items, oldest dropped and reported) until :meth:`poll`
    or :meth:`start_streaming` hands them on. While streaming, one reader thread owns the
    transport's input and delivers to the sink; commands keep working from other threads.
    """

    MODEL = "TEM-4"
    SLUG = "tem4"
    _instrument_error = InstrumentError
    _timeout_error = InstrumentTimeout
    _unexpected_reply_error = UnexpectedReplyError

    def __init__(
        self,
        transport: LineTransport,
        *,
        name: str = "tem",
        reply_timeout: float = 2.0,
        replay_retry_s: float = 0.25,
    ) -> None:
        super().__init__(
            transport,
            parse=parse_line,
            data_type=DataFrame,
            name=name,
            reply_timeout=reply_timeout,
            replay_retry_s=replay_retry_s,
            pending_max=_PENDING_MAX,
        )

    def status(self) -> Tem4Status:
        """``STATUS?`` → device state and the state of each channel."""
        values = self._exchange("STATUS?")
        if len(values) != 1 + CHANNELS:
            raise UnexpectedReplyError(
                "STATUS?", values, f"a device state and {CHANNELS} channel states", self._label
            )
        return Tem4Status(values[0], tuple(values[1:]))

    def temperature(self) -> float:
        """``TEMP?`` → measured cup-holder temperature in °C."""
        values = self._exchange("TEMP?")
        try:
            (text,) = values
            return float(text)
        except ValueError:
            raise UnexpectedReplyError(
                "TEMP?", values, "one temperature in °C", self._label
            ) from None

    def set_temperature(self, celsius: float) -> None:
        """``TEMP <C>``: set the cup-holder set point; 20.0–45.0 °C, rejected (never clipped)."""
        if (
            isinstance(celsius, bool)
            or not isinstance(celsius, numbers.Real)
            or not math.isfinite(celsius)
            or not MIN_TEMP_C <= celsius <= MAX_TEMP_C
        ):
            raise ValueError(
                f"Temperature set point {celsius!r} °C is outside the TEM-4 range "
                f"{MIN_TEMP_C:.1f}–{MAX_TEMP_C:.1f} °C. Nothing was sent; choose a value "
                f"in range."
            )
        self._expect_ok(f"TEMP {celsius:.2f}")

    def set_rate(self, hz: int) -> str | None:
        """``RATE <Hz>``: samples per second per channel, 1–100.

        Returns a warning text (also logged) when four channels at this rate cannot fit the
        serial line's baud rate; sockets and pseudo-terminals have no such limit.
        """
        if (
            isinstance(hz, bool)
            or not isinstance(hz, numbers.Integral)
            or not MIN_RATE_HZ <= hz <= MAX_RATE_HZ
        ):
            raise ValueError(
                f"Sample rate {hz!r} Hz is outside the TEM-4 range {MIN_RATE_HZ}–{MAX_RATE_HZ} "
                f"Hz (whole numbers). Nothing was sent."
            )
        hz = int(hz)
        self._expect_ok(f"RATE {hz}")
        baudrate = getattr(self._t, "baudrate", None)
        if not isinstance(baudrate, int):
            return None
        need = CHANNELS * hz * NOMINAL_FRAME_BYTES * BITS_PER_BYTE
        if need <= baudrate:
            return None
        warning = (
            f"RATE {hz} Hz cannot fit the line: {CHANNELS} channels × {hz} Hz × "
            f"{NOMINAL_FRAME_BYTES} bytes × {BITS_PER_BYTE} bits = {need} bit/s, but "
            f"{self.resource} runs at {baudrate} baud. Frames will back up and be lost; "
            f"use at most {line_capacity_hz(baudrate)} Hz."
        )
        self._log.warning("%s: %s", self._label, warning)
        return warning

    def start_channel(self, channel: int, assay: str) -> None:
        """``CH<n>:START <assay>``: start measuring on a channel (1–4) with a named assay."""
        channel = _check_channel(channel)
        if assay not in ASSAYS:
            raise ValueError(
                f"Assay {assay!r} is not one the TEM-4 knows; use one of {', '.join(ASSAYS)}. "
                f"Nothing was sent."
            )
        self._expect_ok(f"CH{channel}:START {assay}")

    def stop_channel(self, channel: int) -> None:
        """``CH<n>:STOP``: stop measuring on a channel."""
        channel = _check_channel(channel)
        self._expect_ok(f"CH{channel}:STOP")

    def stop_all(self) -> list[Exception]:
        """Stop every channel, carrying on past errors (the "leave the instrument safe" path).

        Returns the errors met, empty when all four channels acknowledged.
        """
        failures: list[Exception] = []
        for channel in range(1, CHANNELS + 1):
            try:
                self.stop_channel(channel)
            except LinkLostError as exc:
                failures.append(exc)
                self._log.error("%s: cannot stop channels, link lost: %s", self._label, exc)
                break
            except (InstrumentError, UnexpectedReplyError, TransportError) as exc:
                failures.append(exc)
                self._log.warning("%s: stopping channel %d failed: %s", self._label, channel, exc)
        return failures
