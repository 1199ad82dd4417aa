"""Commands and the sequenced data stream shared by the TEM-4 and LOOP-8 drivers.

Both instruments number their data and event frames with one counter (``seq``), keep the
last 65 536 of them, resend from any ``seq`` on ``REPLAY <seq>``, send a heartbeat every
second carrying the last ``seq`` sent, and answer commands with ``$R`` replies that echo the
command. :class:`SequencedDriver` implements that once: command/reply exchange, in-order
delivery with duplicates dropped and gaps filled by ``REPLAY``, the reader thread. The
instrument drivers (:mod:`drivers.tem4`, :mod:`drivers.loop8`) add their command sets.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import ClassVar, Generic, Protocol, Self, TypeAlias, TypeVar, Union

from drivers.transport import LineTransport, LinkLostError, TransportError
from drivers.wire.framing import FrameError
from drivers.wire.sequenced import (
    ERROR_CODES,
    SEQ_BUFFER,
    ErrorReplyFrame,
    EventFrame,
    HeartbeatFrame,
    ReplyFrame,
)

__all__ = [
    "LINK_NOTICE_KINDS",
    "PENDING_MAX",
    "DeviceError",
    "Identity",
    "InstrumentError",
    "InstrumentTimeout",
    "LinkNotice",
    "LinkStats",
    "SequencedDriver",
    "SequencedFrame",
    "StreamItemOf",
    "UnexpectedReplyError",
]

#: Kinds of :class:`LinkNotice` the drivers deliver.
LINK_NOTICE_KINDS = ("corrupt_frame", "gap", "data_lost", "device_restarted", "link_lost")
#: Stream items kept while nobody streams (see :class:`SequencedDriver`).
PENDING_MAX = SEQ_BUFFER

_POLL_S = 0.05  # longest single wait of the reader thread, bounds how fast it stops
_JOIN_S = 2.0
_POLL_BATCHES = 256  # most reads one poll() call makes on a busy line
_SEQ_NOT_BUFFERED = 4
#: While data keeps arriving, a reply may take this many reply timeouts: the timeout
#: measures a silent instrument, not a reply queued behind a backlog of frames (a
#: free-running simulator can be hundreds of device seconds ahead of a busy reader).
_BUSY_REPLY_FACTOR = 15


# ---------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Identity:
    """Who answered ``*IDN?``: stored with every run for traceability."""

    manufacturer: str
    model: str
    serial: str
    firmware: str


@dataclass(frozen=True, slots=True)
class LinkNotice:
    """Something the stream's consumer should know about the link itself (not a sample)."""

    kind: str
    detail: str


@dataclass
class LinkStats:
    """Counters of the data stream; ``data_lost`` counts frames, the others occurrences."""

    frames_ok: int = 0
    corrupt: int = 0
    duplicates: int = 0
    gaps: int = 0
    replays_requested: int = 0
    data_lost: int = 0
    heartbeats: int = 0
    discarded_unstreamed: int = 0
    sink_errors: int = 0


class SequencedFrame(Protocol):
    """A data frame type of a sequenced instrument: it carries the shared ``seq``."""

    @property
    def seq(self) -> int: ...


D = TypeVar("D", bound=SequencedFrame)

#: What a stream sink receives from a driver whose data frames are ``D``.
StreamItemOf: TypeAlias = Union[D, EventFrame, HeartbeatFrame, LinkNotice]  # noqa: UP007


# ---------------------------------------------------------------------- errors


class DeviceError(Exception):
    """A problem with a sequenced-stream instrument the user can act on.

    Each instrument has its own subclass (``Tem4Error``, ``Loop8Error``) that names the model,
    its line settings and what to do about each error code.
    """

    MODEL: ClassVar[str] = "instrument"
    LINE_SETTINGS: ClassVar[str] = "the baud rate and format in the instrument manual"
    ADVICE: ClassVar[Mapping[int, str]] = MappingProxyType({})


class InstrumentError(DeviceError):
    """The instrument refused a command with ``$R,<command>,ERR,<code>,<text>``."""

    def __init__(
        self, command: str, code: int, text: str, *, instrument: str | None = None
    ) -> None:
        self.command = command
        self.code = code
        self.text = text
        self.instrument = instrument if instrument is not None else self.MODEL
        self.meaning = ERROR_CODES.get(code, "unknown error code")
        advice = self.ADVICE.get(code, "See the instrument manual for this error code.")
        super().__init__(
            f"{self.instrument} refused '{command}': error {code} ({self.meaning}): {text}. "
            f"{advice}"
        )


class InstrumentTimeout(TransportError, DeviceError):  # noqa: N818 (name fixed by the contract)
    """No reply to a command within the reply timeout."""

    def __init__(
        self, command: str, resource: str, timeout_s: float, *, instrument: str | None = None
    ) -> None:
        self.command = command
        self.timeout_s = timeout_s
        who = instrument if instrument is not None else self.MODEL
        super().__init__(
            f"No reply from {who} on {resource} to '{command}' within {timeout_s:g} s. "
            f"Check the cable, that the instrument is powered on, and that the port runs at "
            f"{self.LINE_SETTINGS}.",
            resource=resource,
        )


class UnexpectedReplyError(DeviceError):
    """A reply that does not have the documented shape (another instrument on the port?)."""

    def __init__(self, command: str, values: tuple[str, ...], expected: str, instrument: str):
        self.command = command
        self.values = values
        super().__init__(
            f"{instrument} answered '{command}' with {','.join(values)!r}, expected {expected}. "
            f"Check that a {self.MODEL} is connected to this port and its firmware is supported."
        )


# ---------------------------------------------------------------------- the driver


class SequencedDriver(Generic[D]):
    """Commands and the sequenced data stream of one instrument on one transport.

    Without streaming, commands read their replies directly; data frames read meanwhile are
    sequenced and kept (up to ``pending_max`` items, oldest dropped and reported) until
    :meth:`poll` or :meth:`start_streaming` hands them on. While streaming, one reader thread
    owns the transport's input and delivers to the sink; commands keep working from other
    threads.

    Subclasses set :attr:`MODEL`, the error classes (subclasses of this module's) and a slug
    naming the logger and reader thread, and pass the wire module's ``parse_line`` and data
    frame type.
    """

    MODEL: ClassVar[str] = "instrument"
    #: Names the logger (``hemocompat.drivers.<slug>.<name>``) and reader thread.
    SLUG: ClassVar[str] = "sequenced"
    _instrument_error: ClassVar[type[InstrumentError]] = InstrumentError
    _timeout_error: ClassVar[type[InstrumentTimeout]] = InstrumentTimeout
    _unexpected_reply_error: ClassVar[type[UnexpectedReplyError]] = UnexpectedReplyError

    def __init__(
        self,
        transport: LineTransport,
        *,
        parse: Callable[[bytes], D | EventFrame | HeartbeatFrame | ReplyFrame | ErrorReplyFrame],
        data_type: type[D],
        name: str,
        reply_timeout: float = 2.0,
        replay_retry_s: float = 0.25,
        pending_max: int = PENDING_MAX,
    ) -> None:
        self.name = name
        self.reply_timeout = reply_timeout
        self.replay_retry_s = replay_retry_s
        self._t = transport
        self._parse = parse
        self._seq_types: tuple[type[D], type[EventFrame]] = (data_type, EventFrame)
        self._pending_max = pending_max
        self._label = f"{self.MODEL} '{name}'"
        self._log = logging.getLogger(f"hemocompat.drivers.{self.SLUG}.{name}")
        self._cond = threading.Condition()
        self._replies: deque[ReplyFrame | ErrorReplyFrame] = deque()
        self._pending: deque[StreamItemOf[D]] = deque()
        self._reported_discarded = 0
        self._sink: Callable[[StreamItemOf[D]], None] | None = None
        self._deliver: Callable[[StreamItemOf[D]], None] = self._keep
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._link_error: TransportError | None = None
        self._closed = False
        self._stats = LinkStats()
        # Sequencing state; touched only by the thread that reads the transport.
        self._next: int | None = None
        self._in_gap = False
        self._skip_ahead = False
        # Frames received beyond a gap, kept until the gap is filled (the REPLAY stream
        # resends them too, but keeping them means a frame lost again during the replay
        # rarely needs another round trip).
        self._ahead: dict[int, D | EventFrame] = {}
        self._last_replay_at = -math.inf
        self._last_device_ms: int | None = None
        self._expect_request: int | None = None
        self._batches_read = 0  # batches of lines handled: shows the line is not silent
        self._handling = False  # lines being handled now (the sink may be slow, not silent)

    # ------------------------------------------------------------------ properties

    @property
    def transport(self) -> LineTransport:
        return self._t

    @property
    def resource(self) -> str:
        return self._t.resource

    @property
    def stats(self) -> LinkStats:
        """A snapshot of the stream counters."""
        return replace(self._stats)

    @property
    def next_expected(self) -> int | None:
        """The ``seq`` the next delivered data/event frame must carry (None before the first)."""
        return self._next

    @property
    def streaming(self) -> bool:
        reader = self._reader
        return reader is not None and reader.is_alive()

    @property
    def link_error(self) -> TransportError | None:
        """The error that ended the reader thread, if the link was lost while streaming."""
        return self._link_error

    # ------------------------------------------------------------------ commands

    def identify(self) -> Identity:
        """``*IDN?`` → manufacturer, model, serial number, firmware."""
        values = self._exchange("*IDN?")
        if len(values) < 4:
            raise self._unexpected_reply_error(
                "*IDN?", values, "manufacturer,model,serial,firmware", self._label
            )
        identity = Identity(values[0], values[1], values[2], ",".join(values[3:]))
        if identity.model != self.MODEL:
            self._log.warning("%s on %s identifies as %r", self._label, self.resource, identity)
        return identity

    def _expect_ok(self, command: str) -> None:
        values = self._exchange(command)
        if values != ("OK",):
            raise self._unexpected_reply_error(command, values, "OK", self._label)

    def _exchange(self, command: str) -> tuple[str, ...]:
        """Send one command and return its reply's values; raise on an error reply."""
        if threading.current_thread() is self._reader:
            raise RuntimeError(
                f"{self._label}: commands cannot be sent from the stream sink, which runs on "
                f"the reader thread that must deliver their replies; send them from another "
                f"thread."
            )
        if self._link_error is not None:
            raise LinkLostError(str(self._link_error), resource=self.resource)
        with self._t.lock:
            with self._cond:
                self._discard_replies()
            self._t.write(command.encode("ascii"))
            reply = self._wait_reply(command)
        if isinstance(reply, ErrorReplyFrame):
            raise self._instrument_error(
                command, reply.code, reply.text, instrument=f"{self._label} on {self.resource}"
            )
        return reply.values

    def _wait_reply(self, command: str) -> ReplyFrame | ErrorReplyFrame:
        start = time.monotonic()
        deadline = start + self.reply_timeout
        limit = start + self.reply_timeout * _BUSY_REPLY_FACTOR
        seen = self._batches_read
        while True:
            if self._batches_read != seen or self._handling:  # data keeps coming: not silent
                seen = self._batches_read
                deadline = min(max(deadline, time.monotonic() + self.reply_timeout), limit)
            if self.streaming:
                with self._cond:
                    reply = self._take_reply(command)
                    if reply is not None:
                        return reply
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(min(remaining, _POLL_S))
                continue
            with self._cond:
                reply = self._take_reply(command)
            if reply is not None:
                return reply
            if self._link_error is not None:
                raise LinkLostError(str(self._link_error), resource=self.resource)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            lines = self._t.read_lines(min(remaining, _POLL_S))
            if lines:
                self._handle_lines(lines)
            self._tick()
        raise self._timeout_error(
            command, self.resource, self.reply_timeout, instrument=self._label
        )

    def _take_reply(self, command: str) -> ReplyFrame | ErrorReplyFrame | None:
        replies = self._replies
        while replies:
            reply = replies.popleft()
            if reply.command == command:
                return reply
            self._log.warning(
                "%s: discarding a reply to '%s' while waiting for '%s'",
                self._label,
                reply.command,
                command,
            )
        return None

    def _discard_replies(self) -> None:
        while self._replies:
            stale = self._replies.popleft()
            self._log.warning("%s: discarding a late reply to '%s'", self._label, stale.command)

    # ------------------------------------------------------------------ stream

    def start_streaming(self, sink: Callable[[StreamItemOf[D]], None]) -> None:
        """Start the reader thread; it delivers data, event and heartbeat frames and link
        notices to ``sink``.

        Items kept since the last poll are delivered first. The sink runs on the reader
        thread and must be quick (append to a buffer); an exception in it is logged and
        counted, never fatal to the stream.
        """
        if self._closed:
            raise RuntimeError(f"{self._label} is closed; create a new driver to stream again.")
        with self._t.lock:
            if self.streaming:
                raise RuntimeError(f"{self._label} is already streaming; stop_streaming() first.")
            self._sink = sink
            self._link_error = None
            self._stop.clear()
            self._deliver = self._to_sink
            self._reader = threading.Thread(
                target=self._read_loop, name=f"{self.SLUG}-reader-{self.name}", daemon=True
            )
            self._reader.start()

    def stop_streaming(self) -> None:
        """Stop the reader thread (returns within about 50 ms unless the sink blocks)."""
        reader = self._reader
        if reader is None:
            return
        self._stop.set()
        if reader is not threading.current_thread():
            reader.join(_JOIN_S)
            if reader.is_alive():
                self._log.error(
                    "%s: reader thread did not stop within %g s (is the sink blocking?)",
                    self._label,
                    _JOIN_S,
                )
        self._reader = None
        self._deliver = self._keep
        self._sink = None

    def poll(self, timeout: float = 0.0) -> list[StreamItemOf[D]]:
        """Without streaming: read what has arrived (waiting up to ``timeout`` for the first
        line), sequence it, and return every item kept so far, in order."""
        with self._t.lock:
            if self.streaming:
                raise RuntimeError(
                    f"{self._label} is streaming: its reader thread delivers to the sink, "
                    f"so poll() has nothing to return. Call stop_streaming() first."
                )
            self._tick()
            lines = self._t.read_lines(timeout)
            batches = 0
            while lines and batches < _POLL_BATCHES:
                self._handle_lines(lines)
                batches += 1
                lines = self._t.read_lines(0.0)
            if lines:
                self._handle_lines(lines)
            self._tick()
            return self._drain_kept()

    def feed_lines(self, lines: Iterable[bytes]) -> None:
        """Parse and sequence lines that were read elsewhere (a recorded raw log, a benchmark).

        Not while streaming: the reader thread owns the sequencing state then.
        """
        if self.streaming:
            raise RuntimeError(f"{self._label} is streaming; feed_lines() would race its reader.")
        self._handle_lines(lines)

    def expect_seq(self, seq: int) -> None:
        """Set the ``seq`` the next data/event frame must carry (after a reconnection, say)."""
        if self.streaming:
            self._expect_request = seq  # applied by the reader thread before its next read
            return
        self._apply_expect(seq)

    def replace_transport(self, transport: LineTransport) -> None:
        """Continue on a new transport after the link was lost, keeping the sequencing state.

        The first heartbeat on the new link reveals the frames missed meanwhile and the
        driver asks for them with ``REPLAY``. Not while streaming.
        """
        if self._closed:
            raise RuntimeError(f"{self._label} is closed; create a new driver instead.")
        if self.streaming:
            raise RuntimeError(f"{self._label} is streaming; stop_streaming() first.")
        self.stop_streaming()  # clears up after a reader thread that ended on a lost link
        old, self._t = self._t, transport
        if old is not transport:
            old.close()
        self._link_error = None

    def close(self) -> None:
        """Stop streaming and close the transport (idempotent); sends nothing."""
        if self._closed:
            return
        self._closed = True
        self.stop_streaming()
        self._t.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_loop(self) -> None:
        read_lines = self._t.read_lines
        handle = self._handle_lines
        stop = self._stop
        try:
            for item in self._drain_kept():
                self._to_sink(item)
            while not stop.is_set():
                if self._expect_request is not None:
                    seq, self._expect_request = self._expect_request, None
                    self._apply_expect(seq)
                lines = read_lines(_POLL_S)
                if lines:
                    handle(lines)
                if self._in_gap:
                    self._tick()
        except TransportError as exc:
            if stop.is_set():
                return
            self._link_lost(exc)
        except Exception as exc:  # a bug must not kill the stream silently
            self._log.exception("%s: reader thread failed", self._label)
            self._link_lost(
                TransportError(f"reader thread failed: {exc!r}", resource=self.resource)
            )

    def _link_lost(self, exc: TransportError) -> None:
        """End of the reader thread on a broken link; ``replace_transport`` is the way back."""
        self._link_error = exc
        self._log.error("%s: %s", self._label, exc)
        self._to_sink(LinkNotice("link_lost", str(exc)))
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ sequencing

    def _handle_lines(self, lines: Iterable[bytes]) -> None:
        """Parse lines and route them: replies to the waiting command, frames in seq order."""
        self._batches_read += 1
        self._handling = True
        try:
            self._route(lines)
        finally:
            self._handling = False

    def _route(self, lines: Iterable[bytes]) -> None:
        deliver = self._deliver
        parse = self._parse
        seq_types = self._seq_types
        stats = self._stats
        for line in lines:
            try:
                msg = parse(line)
            except FrameError as exc:
                self._corrupt(line, exc)
                continue
            if isinstance(msg, seq_types):
                seq = msg.seq
                if seq == self._next:
                    self._next = seq + 1
                    stats.frames_ok += 1
                    deliver(msg)
                    if self._in_gap:
                        self._drain_ahead()
                else:
                    self._out_of_sequence(msg)
            elif isinstance(msg, HeartbeatFrame):
                self._heartbeat(msg)
            elif isinstance(msg, ReplyFrame | ErrorReplyFrame):
                self._reply(msg)

    def _out_of_sequence(self, msg: D | EventFrame) -> None:
        seq, expected = msg.seq, self._next
        if expected is None:
            self._next = seq + 1
            self._stats.frames_ok += 1
            self._deliver(msg)
        elif seq < expected:
            self._stats.duplicates += 1
        elif self._skip_ahead:
            self._data_lost(expected, seq - 1)
            self._next = seq + 1
            self._stats.frames_ok += 1
            self._deliver(msg)
        else:
            if len(self._ahead) < SEQ_BUFFER:
                self._ahead[seq] = msg
            self._gap(expected, f"received seq {seq}")

    def _drain_ahead(self) -> None:
        """Deliver frames kept beyond a gap once the gap is filled; close it if none is left."""
        ahead = self._ahead
        nxt = self._next
        assert nxt is not None
        while nxt in ahead:
            msg = ahead.pop(nxt)
            nxt += 1
            self._next = nxt
            self._stats.frames_ok += 1
            self._deliver(msg)
        for seq in [s for s in ahead if s < nxt]:
            del ahead[seq]
        if not ahead:
            self._gap_closed()

    def _heartbeat(self, hb: HeartbeatFrame) -> None:
        last_ms, self._last_device_ms = self._last_device_ms, hb.device_ms
        expected = self._next
        if last_ms is not None and hb.device_ms < last_ms:
            self._deliver(
                LinkNotice(
                    "device_restarted",
                    f"{self._label} uptime went back from {last_ms} ms to {hb.device_ms} ms: "
                    f"the instrument restarted and its frame counter with it; frames after "
                    f"seq {(expected or 1) - 1} that were not received are lost.",
                )
            )
            self._apply_expect(hb.seq + 1)
        elif expected is None:
            self._next = hb.seq + 1
        elif hb.seq >= expected:
            if self._skip_ahead:
                self._data_lost(expected, hb.seq)
                self._apply_expect(hb.seq + 1)
            else:
                self._gap(expected, f"heartbeat says seq {hb.seq} was sent")
        self._stats.heartbeats += 1
        self._deliver(hb)

    def _reply(self, msg: ReplyFrame | ErrorReplyFrame) -> None:
        if msg.command.startswith("REPLAY "):
            self._replay_reply(msg)
            return
        with self._cond:
            self._replies.append(msg)
            self._cond.notify_all()

    def _replay_reply(self, msg: ReplyFrame | ErrorReplyFrame) -> None:
        if not isinstance(msg, ErrorReplyFrame):
            self._log.debug("%s: %s accepted", self._label, msg.command)
            return
        if msg.code == _SEQ_NOT_BUFFERED:
            if self._in_gap and msg.command == f"REPLAY {self._next}":
                if self._ahead and self._next is not None:
                    kept = dict(self._ahead)
                    self._data_lost(self._next, min(kept) - 1)
                    self._ahead, self._next, self._in_gap = kept, min(kept), True
                    self._drain_ahead()
                    return
                self._skip_ahead = True
                self._log.warning(
                    "%s: %s refused (%s); skipping to the next frame received",
                    self._label,
                    msg.command,
                    msg.text,
                )
            return
        self._log.warning(
            "%s: %s refused with error %d (%s: %s); retrying in %g s",
            self._label,
            msg.command,
            msg.code,
            ERROR_CODES.get(msg.code, "unknown error code"),
            msg.text,
            self.replay_retry_s,
        )

    def _gap(self, expected: int, evidence: str) -> None:
        if not self._in_gap:
            self._in_gap = True
            self._stats.gaps += 1
            self._deliver(
                LinkNotice(
                    "gap",
                    f"frames from seq {expected} are missing ({evidence}); "
                    f"asking {self._label} to REPLAY {expected}",
                )
            )
        self._request_replay()

    def _gap_closed(self) -> None:
        self._in_gap = False
        self._skip_ahead = False
        self._ahead.clear()

    def _tick(self) -> None:
        """Repeat an unanswered REPLAY while a gap stays open (at most every replay_retry_s)."""
        if self._in_gap and not self._skip_ahead:
            self._request_replay()

    def _request_replay(self) -> None:
        now = time.monotonic()
        if self._next is None or now - self._last_replay_at < self.replay_retry_s:
            return
        self._last_replay_at = now
        self._stats.replays_requested += 1
        self._t.write(f"REPLAY {self._next}".encode("ascii"))

    def _data_lost(self, first: int, last: int) -> None:
        count = last - first + 1
        self._stats.data_lost += count
        detail = (
            f"frames {first}–{last} ({count}) are lost: {self._label} no longer buffered "
            f"them when REPLAY {first} was sent; their samples are missing from this run"
        )
        self._log.error("%s: %s", self._label, detail)
        self._deliver(LinkNotice("data_lost", detail))
        self._gap_closed()

    def _apply_expect(self, seq: int) -> None:
        self._next = seq
        self._gap_closed()

    def _corrupt(self, line: bytes, exc: FrameError) -> None:
        self._stats.corrupt += 1
        self._log.warning(
            "%s: corrupt line on %s (%s): %r", self._label, self.resource, exc.reason, line
        )
        self._deliver(LinkNotice("corrupt_frame", f"{exc.reason}: {line[:80]!r}"))

    # ------------------------------------------------------------------ delivery

    def _keep(self, item: StreamItemOf[D]) -> None:
        pending = self._pending
        if len(pending) >= self._pending_max:
            pending.popleft()
            self._stats.discarded_unstreamed += 1
        pending.append(item)

    def _drain_kept(self) -> list[StreamItemOf[D]]:
        items: list[StreamItemOf[D]] = []
        discarded = self._stats.discarded_unstreamed - self._reported_discarded
        if discarded:
            self._reported_discarded += discarded
            items.append(
                LinkNotice(
                    "data_lost",
                    f"{discarded} items received while nothing was reading the stream were "
                    f"discarded (at most {self._pending_max} are kept); start streaming earlier",
                )
            )
        items.extend(self._pending)
        self._pending.clear()
        return items

    def _to_sink(self, item: StreamItemOf[D]) -> None:
        sink = self._sink
        if sink is None:
            self._keep(item)
            return
        try:
            sink(item)
        except Exception:
            self._stats.sink_errors += 1
            self._log.exception("%s: the stream sink raised on %r", self._label, item)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._t!r}, name={self.name!r})"
