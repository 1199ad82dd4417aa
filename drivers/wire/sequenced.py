"""Messages shared by the sequenced-stream instruments (TEM-4, LOOP-8).

Both instruments frame their lines the same way (:mod:`drivers.wire.framing`) and share the
event, heartbeat and reply frames, the error codes and the replay buffer size; only their
data frames differ (``$D`` for the TEM-4, ``$L`` for the LOOP-8). Pure functions and value
types, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.wire.framing import Frame, MalformedFrameError, encode_frame

__all__ = [
    "ERROR_CODES",
    "SEQ_BUFFER",
    "ErrorReplyFrame",
    "EventFrame",
    "HeartbeatFrame",
    "ReplyFrame",
    "SharedMessage",
    "decode_shared",
    "encode_error_reply",
    "encode_event",
    "encode_heartbeat",
    "encode_reply",
    "int_fields",
]

#: How many D/E (or L/E) frames the device keeps for ``REPLAY``.
SEQ_BUFFER = 65536

#: Instrument error codes carried by ``$R,<cmd>,ERR,<code>,<text>``.
ERROR_CODES = {
    1: "unknown command",
    2: "invalid argument",
    3: "busy",
    4: "sequence number no longer buffered",
    5: "hardware fault",
    6: "over-temperature",
}


@dataclass(frozen=True, slots=True)
class EventFrame:
    """``$E,seq,ch,code,text``: a device event on a channel or loop (0 = the whole device)."""

    seq: int
    channel: int
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class HeartbeatFrame:
    """``$H,seq,device_ms,temp_centi_C,state``; ``seq`` is the last data/event seq sent."""

    seq: int
    device_ms: int
    temp_centi_c: int
    state: str

    @property
    def temp_c(self) -> float:
        return self.temp_centi_c / 100.0


@dataclass(frozen=True, slots=True)
class ReplyFrame:
    """``$R,<command as received>,<value...>``."""

    command: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ErrorReplyFrame:
    """``$R,<command>,ERR,<code>,<text>``: the instrument refused a command."""

    command: str
    code: int
    text: str


SharedMessage = EventFrame | HeartbeatFrame | ReplyFrame | ErrorReplyFrame


def int_fields(frame: Frame, n: int, line: bytes) -> list[int]:
    """The first ``n`` fields of ``frame`` as integers; MalformedFrameError otherwise."""
    if len(frame.fields) < n:
        raise MalformedFrameError(line, f"'{frame.kind}' frame needs {n} fields")
    try:
        return [int(f) for f in frame.fields[:n]]
    except ValueError:
        raise MalformedFrameError(line, f"'{frame.kind}' frame has a non-integer field") from None


def decode_shared(frame: Frame, line: bytes = b"") -> SharedMessage:
    """Decode an ``E``, ``H`` or ``R`` frame; any other type is an unknown frame type."""
    kind, fields = frame.kind, frame.fields
    if kind == "H":
        if len(fields) != 4:
            raise MalformedFrameError(line, "'H' frame needs exactly 4 fields")
        seq, device_ms, temp = int_fields(frame, 3, line)
        return HeartbeatFrame(seq, device_ms, temp, fields[3])
    if kind == "E":
        if len(fields) < 4:
            raise MalformedFrameError(line, "'E' frame needs 4 fields")
        seq, ch = int_fields(frame, 2, line)
        return EventFrame(seq, ch, fields[2], ",".join(fields[3:]))
    if kind == "R":
        if not fields:
            raise MalformedFrameError(line, "'R' frame has no command")
        command, values = fields[0], fields[1:]
        if values and values[0] == "ERR":
            if len(values) < 2:
                raise MalformedFrameError(line, "error reply has no code")
            try:
                code = int(values[1])
            except ValueError:
                raise MalformedFrameError(line, "error reply code is not an integer") from None
            return ErrorReplyFrame(command, code, ",".join(values[2:]))
        return ReplyFrame(command, tuple(values))
    raise MalformedFrameError(line, f"unknown frame type {kind!r}")


def encode_event(seq: int, channel: int, code: str, text: str) -> bytes:
    return encode_frame("E", seq, channel, code, text)


def encode_heartbeat(seq: int, device_ms: int, temp_centi_c: int, state: str) -> bytes:
    return encode_frame("H", seq, device_ms, temp_centi_c, state)


def encode_reply(command: str, *values: object) -> bytes:
    return encode_frame("R", command, *values)


def encode_error_reply(command: str, code: int, text: str) -> bytes:
    return encode_frame("R", command, "ERR", code, text)
