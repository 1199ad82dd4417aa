"""LOOP-8 Chandler loop rotator driver: its commands, and its clot-sensor stream in order.

The wire protocol is specified in docs/protocols/loop8.md. The rotor turns all eight loops
together; each loop's clot sensor reports ``$L`` frames (motion of the blood, 1000 ‰ when it
moves freely, falling towards 0 as an occlusive clot forms). Sequencing, ``REPLAY`` and the
reader thread are those of the TEM-4 (:class:`drivers.sequenced.SequencedDriver`).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from drivers import sequenced
from drivers.sequenced import DeviceError, Identity, LinkNotice, LinkStats, SequencedDriver
from drivers.transport import LineTransport, TransportError
from drivers.wire.loop8 import (
    LOOPS,
    MAX_RATE_HZ,
    MAX_RPM,
    MIN_RATE_HZ,
    MIN_RPM,
    SEQ_BUFFER,
    EventFrame,
    HeartbeatFrame,
    LoopFrame,
    parse_line,
)

__all__ = [
    "EventFrame",
    "HeartbeatFrame",
    "Identity",
    "InstrumentError",
    "InstrumentTimeout",
    "LinkNotice",
    "LinkStats",
    "Loop8Driver",
    "Loop8Error",
    "Loop8Status",
    "LoopFrame",
    "Sink",
    "StreamItem",
    "UnexpectedReplyError",
]

_ADVICE: Mapping[int, str] = MappingProxyType(
    {
        1: "Check the instrument firmware supports this command (identify() shows its version).",
        2: "Check the value against the LOOP-8 manual; the driver may be newer than the firmware.",
        3: "Stop the rotor first (stop()); speed and rate cannot change during a run.",
        4: "The instrument no longer holds those frames; their data is lost.",
        5: "Check the loops are clipped into the rotor and the drum turns freely; power-cycle "
        "the instrument and call service if it persists.",
        6: "Let the rotor housing cool down: check the incubator or bath temperature and that "
        "the housing vents are free.",
    }
)

StreamItem = LoopFrame | EventFrame | HeartbeatFrame | LinkNotice
Sink = Callable[[StreamItem], None]


@dataclass(frozen=True, slots=True)
class Loop8Status:
    """``STATUS?``: device state (``IDLE``, ``RUN``, ...), rotor speed, one state per loop."""

    state: str
    rpm: int
    loops: tuple[str, ...]


class Loop8Error(DeviceError):
    """A LOOP-8 problem the user can act on (refused command, silent or unknown instrument)."""

    MODEL = "LOOP-8"
    LINE_SETTINGS = "57600 baud 8N1"
    ADVICE: ClassVar[Mapping[int, str]] = _ADVICE


class InstrumentError(sequenced.InstrumentError, Loop8Error):
    """The LOOP-8 refused a command with ``$R,<command>,ERR,<code>,<text>``."""


class InstrumentTimeout(sequenced.InstrumentTimeout, Loop8Error):  # noqa: N818 (contract name)
    """No reply from the LOOP-8 to a command within the reply timeout."""


class UnexpectedReplyError(sequenced.UnexpectedReplyError, Loop8Error):
    """A reply that does not have the documented shape (another instrument on the port?)."""


def _whole_number_in(value: object, low: int, high: int) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, numbers.Integral)
        and low <= int(value) <= high
    )


class Loop8Driver(SequencedDriver[LoopFrame]):
    """Commands and the sequenced clot-sensor stream of one LOOP-8 on one transport.

    ``START`` starts the rotor and every loop holding blood at once; ``t_ms`` of each loop's
    frames counts from that START. Streaming, :meth:`poll`, gap filling by ``REPLAY`` and
    link notices work as for the TEM-4.
    """

    MODEL = "LOOP-8"
    SLUG = "loop8"
    _instrument_error = InstrumentError
    _timeout_error = InstrumentTimeout
    _unexpected_reply_error = UnexpectedReplyError

    def __init__(
        self,
        transport: LineTransport,
        *,
        name: str = "loop",
        reply_timeout: float = 2.0,
        replay_retry_s: float = 0.25,
    ) -> None:
        super().__init__(
            transport,
            parse=parse_line,
            data_type=LoopFrame,
            name=name,
            reply_timeout=reply_timeout,
            replay_retry_s=replay_retry_s,
            pending_max=SEQ_BUFFER,
        )

    def status(self) -> Loop8Status:
        """``STATUS?`` → device state, rotor speed (rpm) and the state of each loop."""
        values = self._exchange("STATUS?")
        expected = f"a device state, the rpm and {LOOPS} loop states"
        if len(values) != 2 + LOOPS:
            raise UnexpectedReplyError("STATUS?", values, expected, self._label)
        try:
            rpm = int(values[1])
        except ValueError:
            raise UnexpectedReplyError("STATUS?", values, expected, self._label) from None
        return Loop8Status(values[0], rpm, tuple(values[2:]))

    def rpm(self) -> int:
        """``ROT?`` → the rotor speed set, in revolutions per minute."""
        values = self._exchange("ROT?")
        try:
            (text,) = values
            return int(text)
        except ValueError:
            raise UnexpectedReplyError(
                "ROT?", values, "one whole number of rpm", self._label
            ) from None

    def set_rpm(self, rpm: int) -> None:
        """``ROT <rpm>``: rotor speed, 1–60 rpm (whole numbers), rejected (never clipped)."""
        if not _whole_number_in(rpm, MIN_RPM, MAX_RPM):
            raise ValueError(
                f"Rotor speed {rpm!r} rpm is outside the LOOP-8 range {MIN_RPM}–{MAX_RPM} rpm "
                f"(whole numbers). Nothing was sent."
            )
        self._expect_ok(f"ROT {int(rpm)}")

    def set_rate(self, hz: int) -> None:
        """``RATE <Hz>``: clot-sensor samples per second per loop, 1–10 (default 1).

        Eight loops at 10 Hz need about 25 600 bit/s, well within the 57 600 baud line.
        """
        if not _whole_number_in(hz, MIN_RATE_HZ, MAX_RATE_HZ):
            raise ValueError(
                f"Sample rate {hz!r} Hz is outside the LOOP-8 range {MIN_RATE_HZ}–{MAX_RATE_HZ} "
                f"Hz (whole numbers). Nothing was sent."
            )
        self._expect_ok(f"RATE {int(hz)}")

    def start(self) -> None:
        """``START``: start the rotor and the clot sensors of every loop holding blood."""
        self._expect_ok("START")

    def stop(self) -> None:
        """``STOP``: stop the rotor and the measurement (``OK`` also when idle)."""
        self._expect_ok("STOP")

    def stop_all(self) -> list[Exception]:
        """Stop the rotor, returning instead of raising the error met (the "leave the
        instrument safe" path, like ``Tem4Driver.stop_all``); empty when it acknowledged."""
        try:
            self.stop()
        except (InstrumentError, UnexpectedReplyError, TransportError) as exc:
            self._log.error("%s: cannot stop the rotor: %s", self._label, exc)
            return [exc]
        return []
