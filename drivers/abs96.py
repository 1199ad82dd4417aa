"""ABS-96 absorbance plate reader driver: SCPI over VISA (docs/protocols/abs96.md).

The driver checks the SCPI error queue (``SYST:ERR?``) after every command that changes the
reader's state (``*RST``, ``CONF:WAV``, ``INIT``) and turns any entry into a
:class:`ReaderError`; a read is ``INIT``, ``*OPC?`` (waits until the plate has been read)
and one ``FETC:PLAT? <nm>`` per configured wavelength, each checked for exactly 96 finite
absorbances. Values are validated before anything is sent.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections import deque
from dataclasses import dataclass

from drivers.transport import LineTransport, TransportError, TransportTimeoutError
from drivers.wire import scpi
from drivers.wire.scpi import (
    ERROR_CODES,
    MAX_WAVELENGTH_NM,
    MIN_WAVELENGTH_NM,
    N_WELLS,
    ErrorEntry,
    PlateLengthError,
    ReplyFormatError,
)

__all__ = [
    "MODEL",
    "Abs96Error",
    "Abs96Reader",
    "ErrorEntry",
    "Identity",
    "PlateDataError",
    "ReaderError",
    "ReaderTimeout",
    "UnexpectedReplyError",
]

#: The model name in the reader's ``*IDN?`` reply.
MODEL = "ABS-96"
#: Most ``SYST:ERR?`` reads while draining the queue (a real queue holds far fewer).
MAX_ERROR_READS = 64
#: How long to wait for late replies after a timeout, before the next command.
STALE_WAIT_S = 0.1

_ADVICE: dict[int, str] = {
    -100: "Check the command against docs/protocols/abs96.md and the reader's firmware.",
    -102: "Check the command syntax against docs/protocols/abs96.md.",
    -104: "A parameter had the wrong type (a wavelength must be a whole number of nm).",
    -108: "Too many parameters: CONF:WAV takes a signal and at most one reference wavelength.",
    -109: "A parameter was missing: CONF:WAV needs at least the signal wavelength.",
    -113: "The reader does not know this command: check its firmware version with "
    "identify() and that an ABS-96 is at this address.",
    -213: "A read was already running: wait for *OPC? before starting another one.",
    -221: "The reader is busy reading a plate: wait for the read to finish, then configure.",
    -222: f"A value was outside the reader's range (wavelengths {MIN_WAVELENGTH_NM}–"
    f"{MAX_WAVELENGTH_NM} nm); choose one of its filter set.",
    -224: "A parameter value is not allowed (wavelengths are whole nanometres, all different).",
    -230: "There is no completed read to fetch (none since power-on, *RST or CONF:WAV, or "
    "the read failed): read the plate again.",
    -350: "The reader's error queue overflowed, so some errors were lost: clear it with "
    "clear_status() and repeat the step.",
    -363: "The reader received a command too long for its input buffer.",
    201: "The lamp did not light or its intensity is too low: let the reader warm up, check "
    "and replace the lamp, or call service. The plate was not read.",
    202: "The read chamber is too hot: check the reader's vents and room temperature, let it "
    "cool down before reading plates.",
}
_DEFAULT_ADVICE = "See the reader's manual for this error code."
_TIMEOUT_ADVICE = (
    "Check the reader is switched on and connected, the VISA address (for example "
    "TCPIP::192.168.1.20::5025::SOCKET) and that the read/write termination is LF."
)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who answered ``*IDN?``: stored with every run for traceability."""

    manufacturer: str
    model: str
    serial: str
    firmware: str

    @property
    def simulated(self) -> bool:
        """True for the project's simulator, whose serial number contains ``SIM``."""
        return "SIM" in self.serial.upper()


class Abs96Error(Exception):
    """Base of every ABS-96 problem the driver reports."""


class ReaderError(Abs96Error):
    """The reader reported an error, or its data cannot be used; the text says what to do.

    ``code`` is the SCPI error code (None when the driver, not the reader, found the
    problem); ``errors`` holds every entry drained from the error queue, oldest first.
    """

    def __init__(
        self,
        code: int | None,
        message: str,
        command: str,
        resource: str,
        *,
        errors: tuple[ErrorEntry, ...] = (),
        advice: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.command = command
        self.resource = resource
        if code is None:
            self.errors = errors
            self.meaning = "reply not usable"
            text = f"ABS-96 on {resource}, '{command}': {message}"
        else:
            self.errors = errors or (ErrorEntry(code, message),)
            self.meaning = (
                f"{ERROR_CODES.get(code, 'device-specific error')}, {scpi.error_class(code)}"
            )
            text = (
                f"ABS-96 on {resource} reported error {code} ({self.meaning}): "
                f"'{message}' after '{command}'"
            )
        advice = advice or (_ADVICE.get(code, _DEFAULT_ADVICE) if code is not None else "")
        more = [str(e) for e in self.errors[1:]]
        if more:
            text += f"; the error queue also held {'; '.join(more)}"
        super().__init__(f"{text}. {advice}".rstrip())


class PlateDataError(ReaderError):
    """A plate reply with missing, extra or non-numeric values (e.g. 95 instead of 96)."""

    def __init__(
        self,
        message: str,
        command: str,
        resource: str,
        *,
        count: int | None,
        wavelength_nm: int,
        advice: str,
    ) -> None:
        self.count = count
        self.wavelength_nm = wavelength_nm
        super().__init__(None, message, command, resource, advice=advice)


class UnexpectedReplyError(ReaderError):
    """A reply without the documented shape (another instrument at this address?)."""

    def __init__(self, command: str, reply: str, expected: str, resource: str) -> None:
        self.reply = reply
        self.expected = expected
        shown = reply if len(reply) <= 80 else reply[:80] + "…"
        super().__init__(
            None,
            f"the reply {shown!r} is not {expected}",
            command,
            resource,
            advice="Check that an ABS-96 is at this address and its firmware is supported "
            "(identify()).",
        )


class ReaderTimeout(TransportError, Abs96Error):  # noqa: N818 (name fixed by the contract)
    """No reply within the timeout; any late reply is discarded before the next command."""

    def __init__(self, command: str, resource: str, timeout_s: float, advice: str) -> None:
        self.command = command
        self.timeout_s = timeout_s
        super().__init__(
            f"No reply from the ABS-96 on {resource} to '{command}' within {timeout_s:g} s. "
            f"{advice}",
            resource=resource,
        )


def _wavelength(nm: object, role: str, resource: str) -> int:
    if isinstance(nm, bool) or not isinstance(nm, numbers.Integral):
        raise ValueError(
            f"The {role} wavelength {nm!r} is not a whole number of nanometres. Nothing was "
            f"sent to {resource}."
        )
    value = int(nm)
    if not MIN_WAVELENGTH_NM <= value <= MAX_WAVELENGTH_NM:
        raise ValueError(
            f"The {role} wavelength {value} nm is outside the ABS-96 range "
            f"{MIN_WAVELENGTH_NM}–{MAX_WAVELENGTH_NM} nm. Nothing was sent to {resource}; "
            f"choose a wavelength of the reader's filter set (TAT ELISA with OPD: 492 nm, "
            f"reference 650 nm)."
        )
    return value


class Abs96Reader:
    """Commands of one ABS-96 plate reader on one transport (normally a ``VisaTransport``).

    ``reply_timeout_s`` bounds an ordinary reply; ``op_timeout_s`` bounds the wait for a
    plate read to complete (``*OPC?`` after ``INIT``). Each method holds the transport's
    lock for its whole exchange, so several threads may share one reader.
    """

    def __init__(
        self,
        transport: LineTransport,
        *,
        name: str = "reader",
        op_timeout_s: float = 30.0,
        reply_timeout_s: float = 2.0,
    ) -> None:
        for label, value in (("op_timeout_s", op_timeout_s), ("reply_timeout_s", reply_timeout_s)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{label} must be a finite number of seconds > 0, got {value!r}")
        self.name = name
        self.op_timeout_s = float(op_timeout_s)
        self.reply_timeout_s = float(reply_timeout_s)
        self._t = transport
        self._log = logging.getLogger(f"hemocompat.drivers.abs96.{name}")
        self._lines: deque[str] = deque()
        self._stale = False
        self._closed = False

    # ------------------------------------------------------------------ properties

    @property
    def transport(self) -> LineTransport:
        return self._t

    @property
    def resource(self) -> str:
        return self._t.resource

    # ------------------------------------------------------------------ commands

    def identify(self) -> Identity:
        """``*IDN?`` → manufacturer, model, serial number, firmware."""
        with self._t.lock:
            reply = self._query("*IDN?")
        try:
            idn = scpi.parse_idn(reply)
        except ReplyFormatError as exc:
            raise UnexpectedReplyError("*IDN?", reply, exc.expected, self.resource) from None
        identity = Identity(idn.manufacturer, idn.model, idn.serial, idn.firmware)
        if identity.model != MODEL:
            self._log.warning("the reader on %s identifies as %r", self.resource, identity)
        return identity

    def reset(self) -> None:
        """``*CLS`` then ``*RST``: clear old errors, return to power-on settings (signal
        wavelength 492 nm, no reference, no plate data), then check the error queue."""
        with self._t.lock:
            self._send("*CLS")
            self._send("*RST")
            self._check_errors("*RST")

    def clear_status(self) -> None:
        """``*CLS``: empty the error queue and the event status register."""
        with self._t.lock:
            self._send("*CLS")

    def configure_wavelengths(self, signal_nm: int, reference_nm: int | None = None) -> None:
        """``CONF:WAV <signal>[,<reference>]``: wavelengths in nm, 340–1000, rejected (never
        clipped) before anything is sent."""
        wavelengths = [_wavelength(signal_nm, "signal", self.resource)]
        if reference_nm is not None:
            reference = _wavelength(reference_nm, "reference", self.resource)
            if reference == wavelengths[0]:
                raise ValueError(
                    f"The reference wavelength must differ from the signal wavelength "
                    f"({reference} nm). Nothing was sent to {self.resource}."
                )
            wavelengths.append(reference)
        command = scpi.format_command("CONF:WAV", *wavelengths)
        with self._t.lock:
            self._send(command)
            self._check_errors(command)

    def wavelengths(self) -> tuple[int, ...]:
        """``CONF:WAV?`` → the configured wavelengths, signal first."""
        with self._t.lock:
            return self._wavelengths()

    def read_plate(self) -> dict[int, list[float]]:
        """Read the plate at every configured wavelength: ``{nm: [A1 … H12]}``.

        ``CONF:WAV?``, ``INIT`` (error queue checked), ``*OPC?`` (up to ``op_timeout_s``)
        and ``FETC:PLAT? <nm>`` for each wavelength; each reply must hold exactly 96 finite
        absorbances.
        """
        with self._t.lock:
            wavelengths = self._wavelengths()
            self._send("INIT")
            self._check_errors("INIT")
            self._send("*OPC?")
            reply = self._read_reply(
                "*OPC?",
                self.op_timeout_s,
                advice=(
                    f"The plate read did not complete. Check the reader's display (plate "
                    f"carrier, lid, lamp); if reads at {len(wavelengths)} wavelength(s) take "
                    f"longer on this reader, raise op_timeout_s."
                ),
                explain=False,
            )
            try:
                scpi.parse_opc(reply)
            except ReplyFormatError as exc:
                raise UnexpectedReplyError("*OPC?", reply, exc.expected, self.resource) from None
            return {nm: self._fetch(nm) for nm in wavelengths}

    def temperature(self) -> float:
        """``TEMP?`` → read-chamber temperature in °C."""
        with self._t.lock:
            reply = self._query("TEMP?")
        try:
            return scpi.parse_number(reply)
        except ReplyFormatError as exc:
            raise UnexpectedReplyError("TEMP?", reply, exc.expected, self.resource) from None

    def event_status(self) -> int:
        """``*ESR?`` → the standard event status register (read and cleared by the reader);
        :func:`drivers.wire.scpi.decode_esr` names its bits."""
        with self._t.lock:
            reply = self._query("*ESR?")
        try:
            value = scpi.parse_int(reply)
            scpi.decode_esr(value)
        except ValueError:
            raise UnexpectedReplyError(
                "*ESR?", reply, "a register value 0–255", self.resource
            ) from None
        return value

    def errors(self) -> list[ErrorEntry]:
        """Drain the error queue (``SYST:ERR?`` until ``0``) and return its entries."""
        with self._t.lock:
            return self._drain_errors("SYST:ERR?")

    def close(self) -> None:
        """Close the transport (idempotent); sends nothing."""
        if self._closed:
            return
        self._closed = True
        self._t.close()

    def __enter__(self) -> Abs96Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Abs96Reader({self.resource!r}, name={self.name!r})"

    # ------------------------------------------------------------------ exchanges

    def _wavelengths(self) -> tuple[int, ...]:
        reply = self._query("CONF:WAV?")
        try:
            return scpi.parse_wavelengths(reply)
        except ReplyFormatError as exc:
            raise UnexpectedReplyError("CONF:WAV?", reply, exc.expected, self.resource) from None

    def _fetch(self, nm: int) -> list[float]:
        command = scpi.format_command("FETC:PLAT?", nm)
        reply = self._query(command)
        try:
            return scpi.parse_plate(reply)
        except PlateLengthError as exc:
            raise PlateDataError(
                f"{exc.count} absorbances came at {nm} nm, expected {N_WELLS} (A1 … H12)",
                command,
                self.resource,
                count=exc.count,
                wavelength_nm=nm,
                advice="The plate data is incomplete and was not used. Read the plate again; "
                "if it repeats, check the network or cable (a reply cut short) and the "
                "reader's firmware.",
            ) from None
        except ReplyFormatError as exc:
            raise PlateDataError(
                f"the reply at {nm} nm is not {exc.expected}",
                command,
                self.resource,
                count=None,
                wavelength_nm=nm,
                advice="The plate data was not used. Read the plate again; if it repeats, "
                "check the reader's firmware and that an ABS-96 is at this address.",
            ) from None

    def _query(self, command: str) -> str:
        self._send(command)
        return self._read_reply(command, self.reply_timeout_s, advice=_TIMEOUT_ADVICE)

    def _send(self, command: str) -> None:
        """Discard stale replies, then write ``command`` (the transport adds LF)."""
        self._discard_stale()
        try:
            self._t.write(command.encode("ascii"))
        except TransportTimeoutError as exc:
            self._stale = True
            raise ReaderTimeout(command, self.resource, self.reply_timeout_s, str(exc)) from exc

    def _discard_stale(self) -> None:
        while self._lines:
            self._log.warning(
                "%s: discarding a late reply %r", self.resource, self._lines.popleft()[:80]
            )
        if not self._stale:
            return
        while True:
            lines = self._read_lines(STALE_WAIT_S)
            if not lines:
                break
            for line in lines:
                self._log.warning("%s: discarding a late reply %r", self.resource, line[:80])
        self._stale = False

    def _read_lines(self, timeout: float) -> list[str]:
        try:
            raw = self._t.read_lines(timeout)
        except TransportTimeoutError:
            return []
        return [line.decode("ascii", "replace") for line in raw]

    def _read_reply(
        self, command: str, timeout: float, *, advice: str, explain: bool = True
    ) -> str:
        """The next reply line, waiting up to ``timeout``; on silence, ask the error queue
        why (a refused query gets no reply) and raise."""
        if self._lines:
            return self._lines.popleft()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            lines = self._read_lines(remaining)
            if lines:
                self._lines.extend(lines[1:])
                return lines[0]
        self._stale = True
        if explain:
            self._explain_silence(command)
        raise ReaderTimeout(command, self.resource, timeout, advice)

    def _explain_silence(self, command: str) -> None:
        """After a query went unanswered: raise its ``ReaderError`` if the queue has one."""
        self._discard_stale()
        try:
            self._t.write(b"SYST:ERR?")
        except TransportError:
            return
        lines = self._read_lines(self.reply_timeout_s)
        if not lines:
            self._stale = True
            return
        self._lines.extend(lines[1:])
        try:
            first = scpi.parse_error_entry(lines[0])
        except ReplyFormatError:
            self._log.warning("%s: discarding a late reply %r", self.resource, lines[0][:80])
            first = ErrorEntry(scpi.NO_ERROR, "")
        if first.is_error:
            self._raise_errors(command, [first, *self._drain_errors(command)])
        self._stale = True  # the reader is alive but silent on this query: a reply may follow

    def _check_errors(self, command: str) -> None:
        """Drain the error queue after ``command``; raise ``ReaderError`` for any entry."""
        entries = self._drain_errors(command)
        if entries:
            self._raise_errors(command, entries)

    def _raise_errors(self, command: str, entries: list[ErrorEntry]) -> None:
        first = entries[0]
        raise ReaderError(first.code, first.message, command, self.resource, errors=tuple(entries))

    def _drain_errors(self, command: str) -> list[ErrorEntry]:
        entries: list[ErrorEntry] = []
        for _ in range(MAX_ERROR_READS):
            self._send("SYST:ERR?")
            reply = self._read_reply(
                "SYST:ERR?", self.reply_timeout_s, advice=_TIMEOUT_ADVICE, explain=False
            )
            try:
                entry = scpi.parse_error_entry(reply)
            except ReplyFormatError as exc:
                raise UnexpectedReplyError(
                    "SYST:ERR?", reply, exc.expected, self.resource
                ) from None
            if not entry.is_error:
                return entries
            entries.append(entry)
        raise ReaderError(
            entries[0].code,
            entries[0].message,
            command,
            self.resource,
            errors=tuple(entries),
            advice=f"The error queue still held errors after {MAX_ERROR_READS} reads: "
            f"power-cycle the reader.",
        )
