"""Host side of the ASTM E1381 (CLSI LIS01-A2) low-level protocol, used by laboratory
analyzers (here: the hematology analyzer that counts platelets in loop sample tubes).

ASTM is byte oriented, not line oriented: single control characters (ENQ, ACK, NAK, EOT)
stand alone, so the link runs on a :class:`ByteTransport` (raw bytes in and out) instead of
the line transports of the other drivers. :class:`RawSerialTransport` provides one over a
serial port, a simulator's pty or a ``socket://`` URL.

:class:`AstmLink` implements both directions of a transfer, one at a time:

* receiving (the analyzer sends results): ENQ → ACK; each frame is checked (checksum, shape,
  frame number) and answered ACK or NAK; a repeated frame (same number as the last accepted
  one) is acknowledged and ignored, so a retransmission never duplicates a record; EOT ends
  the transfer; no frame within ``frame_s`` (30 s) ends it as timed out;
* sending: ENQ, wait ``establish_s`` (15 s) for ACK; NAK (receiver busy) → wait
  ``busy_retry_s`` (10 s) and ask again; ENQ in reply (contention) → the instrument has
  priority: the host receives the instrument's transfer and waits ``contention_backoff_s``
  (20 s) before its next ENQ; each frame waits ``ack_s`` (15 s) for ACK and is sent again on
  NAK, up to ``max_retransmissions`` (6) times; then EOT.

Every timing is an :class:`AstmTimings` field so tests can run the standard faster. See
docs/protocols/astm.md.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import serial

from drivers.transport import LinkLostError, PortBusyError, PortNotFoundError, TransportError
from drivers.wire import astm as wire

__all__ = [
    "AstmLink",
    "AstmLinkError",
    "AstmSendError",
    "AstmTimeoutError",
    "AstmTimings",
    "ByteTransport",
    "LinkStats",
    "RawSerialTransport",
    "Transfer",
]

_CHUNK = 4096


class ByteTransport(Protocol):
    """What the ASTM link needs: raw bytes both ways, no terminators added or removed."""

    name: str
    resource: str
    lock: threading.Lock

    def write(self, data: bytes) -> None:
        """Send ``data`` exactly as given."""
        ...

    def read(self, timeout: float) -> bytes:
        """Bytes received so far, waiting up to ``timeout`` s for some; b"" if none came."""
        ...

    def close(self) -> None:
        """Release the port."""
        ...


class RawSerialTransport:
    """A serial port, pty or pyserial URL (``socket://127.0.0.1:PORT``) read as raw bytes.

    Analyzers commonly use 9600 baud 8N1 without handshake; all line settings can be set.
    """

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        rtscts: bool = False,
        write_timeout: float = 2.0,
        name: str | None = None,
    ) -> None:
        self.resource = url
        self.name = name or "astm"
        self.lock = threading.Lock()
        self._log = logging.getLogger(f"hemocompat.io.{self.name}")
        self._closed = False
        try:
            self._serial: serial.Serial = serial.serial_for_url(
                url,
                baudrate=baudrate,
                bytesize=bytesize,
                parity=parity,
                stopbits=stopbits,
                rtscts=rtscts,
                timeout=0.05,
                write_timeout=write_timeout,
                exclusive=True,
                do_not_open=True,
            )
            self._selectable = (os.name == "posix" or "://" in url) and (
                getattr(type(self._serial), "fileno", None) is not io.RawIOBase.fileno
            )
            if self._selectable:
                self._serial.timeout = 0
            self._serial.open()
        except serial.SerialException as exc:
            raise _open_error(url, exc) from exc
        except ValueError as exc:
            raise TransportError(
                f"Cannot open {url}: invalid port settings ({exc}). Check the port name or URL "
                f"and the line settings (baud rate, data bits, parity N/E/O, stop bits).",
                resource=url,
            ) from exc
        self._fd: int | None = self._serial.fileno() if self._selectable else None
        self._log.debug("opened %s", url)

    def _lost(self, action: str, exc: BaseException) -> LinkLostError:
        return LinkLostError(
            f"Lost the link to {self.resource} while {action}: {exc}. Check the cable and that "
            f"the analyzer (or its simulator) is still running, then reconnect.",
            resource=self.resource,
        )

    def write(self, data: bytes) -> None:
        if self._closed:
            raise LinkLostError(f"Cannot write to {self.resource}: the port was closed.")
        try:
            self._serial.write(data)
        except serial.SerialTimeoutException as exc:
            raise TransportError(
                f"Writing to {self.resource} did not finish: the analyzer is not accepting "
                f"data. Check the cable and the handshake (RTS/CTS) setting.",
                resource=self.resource,
            ) from exc
        except (serial.SerialException, OSError, TypeError, ValueError) as exc:
            raise self._lost("writing", exc) from exc

    def read(self, timeout: float) -> bytes:
        if self._closed:
            raise LinkLostError(f"Cannot read from {self.resource}: the port was closed.")
        ser = self._serial
        try:
            if self._fd is not None:
                data: bytes = ser.read(_CHUNK)
                if data:
                    return data
                if timeout > 0:
                    ready, _, _ = select.select([self._fd], [], [], timeout)
                    if ready:
                        return bytes(ser.read(_CHUNK))
                return b""
            ser.timeout = max(timeout, 0.001)
            waiting = ser.in_waiting
            return bytes(ser.read(waiting if waiting else 1))
        except (serial.SerialException, OSError, TypeError, ValueError) as exc:
            raise self._lost("reading", exc) from exc

    def close(self) -> None:
        """Close the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        # pyserial's socket:// close() skips closing the socket when shutdown() fails (the
        # peer already hung up), leaving the descriptor open: close it here as well.
        sock = getattr(self._serial, "_socket", None)
        try:
            self._serial.close()
        except Exception as exc:  # closing must never raise
            self._log.debug("error closing %s: %s", self.resource, exc)
        finally:
            if sock is not None:
                sock.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> RawSerialTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RawSerialTransport({self.resource!r})"


def _open_error(url: str, exc: Exception) -> TransportError:
    text = str(exc)
    code = getattr(exc, "errno", None)
    if "://" in url:
        return PortNotFoundError(
            f"Cannot connect to {url}: {text}. Start the analyzer simulator or check the host "
            f"and port number.",
            resource=url,
        )
    if "exclusively lock" in text or code in (errno.EBUSY, errno.EAGAIN):
        return PortBusyError(
            f"{url} is in use by another program; close it or choose another port.", resource=url
        )
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "No such file" in text:
        from drivers.transport import available_serial_ports

        ports = ", ".join(available_serial_ports()) or "none found"
        return PortNotFoundError(
            f"Serial port {url} does not exist (serial ports: {ports}). Check the port name.",
            resource=url,
        )
    return TransportError(f"Cannot open {url}: {text}.", resource=url)


# -- link layer --------------------------------------------------------------------------------
class AstmLinkError(Exception):
    """The ASTM exchange failed; the message says what happened, where, and what to do."""

    def __init__(self, message: str, *, resource: str = "") -> None:
        super().__init__(message)
        self.resource = resource


class AstmTimeoutError(AstmLinkError):
    """The analyzer did not answer ENQ or a frame within the timeout (the host sent EOT)."""


class AstmSendError(AstmLinkError):
    """The analyzer refused the transfer (busy too often, or a frame NAKed too often)."""


@dataclass(frozen=True, slots=True)
class AstmTimings:
    """LIS01-A2 timers and retry limits; the defaults are the standard's."""

    establish_s: float = 15.0
    ack_s: float = 15.0
    frame_s: float = 30.0
    contention_backoff_s: float = 20.0
    busy_retry_s: float = 10.0
    max_retransmissions: int = 6
    max_busy_retries: int = 6

    def __post_init__(self) -> None:
        for name in ("establish_s", "ack_s", "frame_s", "contention_backoff_s", "busy_retry_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 s, got {getattr(self, name)!r}")
        if self.max_retransmissions < 0 or self.max_busy_retries < 0:
            raise ValueError("retry limits must be ≥ 0")

    def scaled(self, factor: float) -> AstmTimings:
        """Every timer multiplied by ``factor`` (for fast tests); limits unchanged."""
        return replace(
            self,
            establish_s=self.establish_s * factor,
            ack_s=self.ack_s * factor,
            frame_s=self.frame_s * factor,
            contention_backoff_s=self.contention_backoff_s * factor,
            busy_retry_s=self.busy_retry_s * factor,
        )


@dataclass(slots=True)
class LinkStats:
    """Counters of one link (both directions)."""

    transfers_received: int = 0
    frames_received: int = 0
    naks_sent: int = 0
    duplicate_frames: int = 0
    receive_timeouts: int = 0
    transfers_sent: int = 0
    frames_sent: int = 0
    retransmissions: int = 0
    naks_received: int = 0
    busy_replies: int = 0
    contentions: int = 0
    interrupt_requests: int = 0
    dropped_partial_records: int = 0


TransferEnd = Literal["eot", "timeout", "restarted", "link-lost"]


@dataclass(frozen=True, slots=True)
class Transfer:
    """What one received transfer (ENQ … EOT) delivered: complete records in order, and how
    it ended — ``eot`` normally, ``timeout`` (no frame within frame_s), ``restarted`` (the
    sender began a new transfer with ENQ) or ``link-lost``."""

    records: tuple[str, ...]
    ended: TransferEnd
    frames: int = 0
    naks: int = 0
    detail: str = ""


@dataclass(slots=True)
class _Tokens:
    """Received bytes cut into control characters and frames."""

    buffer: bytes = b""
    queue: deque[bytes] = field(default_factory=deque)


class AstmLink:
    """One end of an E1381 link, playing the host (computer system) role. Not thread-safe:
    one thread receives or sends at a time (the caller holds ``transport.lock``)."""

    def __init__(
        self,
        transport: ByteTransport,
        *,
        timings: AstmTimings | None = None,
        encoding: str = wire.ENCODING,
        max_frame_text: int = wire.MAX_FRAME_TEXT,
        name: str = "analyzer",
        transcript_limit: int = 10_000,
    ) -> None:
        self.transport = transport
        self.timings = timings or AstmTimings()
        self.encoding = encoding
        self.max_frame_text = max_frame_text
        self.name = name
        self.stats = LinkStats()
        #: The last exchanged tokens, ``(">", bytes)`` sent and ``("<", bytes)`` received.
        self.transcript: deque[tuple[str, bytes]] = deque(maxlen=transcript_limit)
        self._log = logging.getLogger(f"hemocompat.drivers.astm.{name}")
        self._rx = _Tokens()
        self._inbox: deque[Transfer] = deque()
        self._send_not_before = 0.0
        self._lost: LinkLostError | None = None

    @property
    def resource(self) -> str:
        return self.transport.resource

    # -- I/O ----------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        self.transcript.append((">", data))
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("> %r", data)
        self.transport.write(data)

    def _next_token(self, deadline: float) -> bytes | None:
        """The next control character or frame received before ``deadline``, else None."""
        rx = self._rx
        while not rx.queue:
            remaining = deadline - time.monotonic()
            data = self.transport.read(min(max(remaining, 0.0), 0.5))
            if not data and remaining <= 0:
                return None
            if data:
                tokens, rx.buffer = wire.split_stream(rx.buffer + data)
                rx.queue.extend(tokens)
        token = rx.queue.popleft()
        self.transcript.append(("<", token))
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("< %r", token)
        return token

    def _check_open(self) -> None:
        if self._lost is not None:
            raise self._lost

    # -- receiving ----------------------------------------------------------------------------
    def receive(self, timeout: float) -> Transfer | None:
        """Wait up to ``timeout`` s for the analyzer to start a transfer and receive it whole.

        Returns None if no transfer started. A transfer received while the host was trying to
        send (contention) is returned first. A started transfer is received to its end even
        past ``timeout``.
        """
        if self._inbox:
            return self._inbox.popleft()
        self._check_open()
        deadline = time.monotonic() + timeout
        while True:
            try:
                token = self._next_token(deadline)
            except LinkLostError as exc:
                self._lost = exc
                raise
            if token is None:
                return None
            if token == wire.ENQ:
                self._write(wire.ACK)
                return self._receive_frames()
            self._log.debug("%s: ignoring %r outside a transfer", self.resource, token[:20])

    def _receive_frames(self) -> Transfer:
        t = self.timings
        assembler = wire.FrameAssembler(self.encoding)
        records: list[str] = []
        expected = 1
        last_accepted: int | None = None
        frames = naks = 0

        def done(ended: TransferEnd, detail: str = "") -> Transfer:
            dropped = assembler.reset()
            if dropped:
                self.stats.dropped_partial_records += 1
                self._log.warning(
                    "%s: transfer ended (%s) inside a record; dropped %d bytes of it",
                    self.resource,
                    ended,
                    len(dropped),
                )
            self.stats.transfers_received += 1
            return Transfer(tuple(records), ended, frames, naks, detail)

        while True:
            try:
                token = self._next_token(time.monotonic() + t.frame_s)
            except LinkLostError as exc:
                self._lost = exc
                return done("link-lost", str(exc))
            if token is None:
                self.stats.receive_timeouts += 1
                self._rx.buffer = b""
                self._log.warning(
                    "%s: no frame within %g s; the transfer is ended (receiver timeout)",
                    self.resource,
                    t.frame_s,
                )
                return done("timeout", f"no frame within {t.frame_s:g} s")
            if token == wire.EOT:
                return done("eot")
            if token == wire.ENQ:
                self._rx.queue.appendleft(token)  # a new transfer: receive() answers it
                if self.transcript and self.transcript[-1] == ("<", token):
                    self.transcript.pop()  # logged again when receive() takes it
                return done("restarted", "the sender started a new transfer")
            if token in (wire.ACK, wire.NAK):
                continue
            try:
                frame = wire.parse_frame(token)
            except wire.FrameError as exc:
                self._write(wire.NAK)
                naks += 1
                self.stats.naks_sent += 1
                self._log.info("%s: NAK (%s)", self.resource, exc)
                continue
            if frame.number == expected:
                self._write(wire.ACK)
                frames += 1
                self.stats.frames_received += 1
                records += assembler.add(frame)
                last_accepted = expected
                expected = wire.next_frame_number(expected)
            elif frame.number == last_accepted:
                self._write(wire.ACK)  # our ACK was lost: the sender repeated the frame
                self.stats.duplicate_frames += 1
                self._log.info("%s: frame %d repeated; ignored", self.resource, frame.number)
            else:
                self._write(wire.NAK)
                naks += 1
                self.stats.naks_sent += 1
                self._log.info(
                    "%s: NAK (frame number %d, expected %d)", self.resource, frame.number, expected
                )

    # -- sending ------------------------------------------------------------------------------
    def send(self, records: Sequence[str]) -> None:
        """Send records (the texts of one or more E1394 messages) in one transfer.

        Raises :class:`AstmTimeoutError` when the analyzer does not answer,
        :class:`AstmSendError` when it refuses; transfers the analyzer sends meanwhile
        (contention) are kept for :meth:`receive`.
        """
        self._check_open()
        frames = wire.frames_for_records(
            records, encoding=self.encoding, max_text=self.max_frame_text
        )
        try:
            self._establish()
            for frame in frames:
                self._send_frame(frame)
            self._write(wire.EOT)
        except LinkLostError as exc:
            self._lost = exc
            raise
        self.stats.transfers_sent += 1
        self._send_not_before = 0.0

    def _wait_listening(self, until: float) -> None:
        """Wait until ``until``, receiving any transfer the analyzer starts meanwhile."""
        while True:
            token = self._next_token(until)
            if token is None:
                return
            if token == wire.ENQ:
                self._write(wire.ACK)
                self._inbox.append(self._receive_frames())
                self._check_open()

    def _establish(self) -> None:
        t = self.timings
        busy = 0
        while True:
            self._wait_listening(self._send_not_before)
            self._write(wire.ENQ)
            reply = self._await_reply(t.establish_s, wanted=(wire.ACK, wire.NAK, wire.ENQ))
            if reply == wire.ACK:
                return
            if reply == wire.ENQ:
                self.stats.contentions += 1
                self._send_not_before = time.monotonic() + t.contention_backoff_s
                self._log.info(
                    "%s: contention (both sent ENQ); the analyzer goes first, the host waits %g s",
                    self.resource,
                    t.contention_backoff_s,
                )
                continue
            if reply == wire.NAK:
                busy += 1
                self.stats.busy_replies += 1
                if busy > t.max_busy_retries:
                    raise AstmSendError(
                        f"{self.name} on {self.resource} answered ENQ with NAK (busy) "
                        f"{busy} times; nothing was sent. Try again when the analyzer is idle.",
                        resource=self.resource,
                    )
                self._send_not_before = time.monotonic() + t.busy_retry_s
                continue
            self._write(wire.EOT)
            raise AstmTimeoutError(
                f"{self.name} on {self.resource} did not answer ENQ within {t.establish_s:g} s. "
                f"Check the cable, the line settings and that the analyzer's host interface "
                f"is enabled.",
                resource=self.resource,
            )

    def _await_reply(
        self, timeout: float, wanted: tuple[bytes, ...], *, others_are_nak: bool = False
    ) -> bytes | None:
        """The next token among ``wanted`` within ``timeout`` s, or None. Other tokens are
        ignored, or taken as NAK with ``others_are_nak`` (LIS01-A2: any reply to a frame other
        than ACK or EOT counts as NAK)."""
        deadline = time.monotonic() + timeout
        while True:
            token = self._next_token(deadline)
            if token is None or token in wanted:
                return token
            if others_are_nak:
                return wire.NAK
            self._log.debug("%s: ignoring %r while waiting for a reply", self.resource, token)

    def _send_frame(self, frame: bytes) -> None:
        t = self.timings
        retransmissions = 0
        while True:
            self._write(frame)
            self.stats.frames_sent += 1
            reply = self._await_reply(
                t.ack_s, wanted=(wire.ACK, wire.NAK, wire.EOT), others_are_nak=True
            )
            if reply == wire.ACK:
                return
            if reply == wire.EOT:
                self.stats.interrupt_requests += 1
                self._log.info("%s: receiver interrupt request (EOT); continuing", self.resource)
                return
            if reply is None:
                self._write(wire.EOT)
                raise AstmTimeoutError(
                    f"{self.name} on {self.resource} did not acknowledge frame "
                    f"{frame[1:2].decode()} within {t.ack_s:g} s; the transfer was ended (EOT). "
                    f"Send it again; check the analyzer if this repeats.",
                    resource=self.resource,
                )
            self.stats.naks_received += 1
            if retransmissions >= t.max_retransmissions:
                self._write(wire.EOT)
                raise AstmSendError(
                    f"{self.name} on {self.resource} refused frame {frame[1:2].decode()} "
                    f"{retransmissions + 1} times (NAK); the transfer was ended (EOT). Check the "
                    f"line settings and cable (noise corrupts frames).",
                    resource=self.resource,
                )
            retransmissions += 1
            self.stats.retransmissions += 1

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the transport."""
        self.transport.close()

    def __enter__(self) -> AstmLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AstmLink({self.resource!r}, name={self.name!r})"
