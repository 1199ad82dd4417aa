"""TEM-4 thromboelastometer wire messages (see docs/protocols/tem4.md).

Pure functions and value types: the driver decodes with them, the simulator encodes with
them, and neither does I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.wire.framing import Frame, MalformedFrameError, encode_frame, parse_frame

__all__ = [
    "ASSAYS",
    "BAUDRATE",
    "CHANNELS",
    "DEFAULT_RATE_HZ",
    "ERROR_CODES",
    "MAX_RATE_HZ",
    "MIN_RATE_HZ",
    "SEQ_BUFFER",
    "DataFrame",
    "ErrorReplyFrame",
    "EventFrame",
    "HeartbeatFrame",
    "Message",
    "ReplyFrame",
    "decode",
    "encode_data",
    "encode_error_reply",
    "encode_event",
    "encode_heartbeat",
    "encode_reply",
    "parse_line",
]

BAUDRATE = 115200
CHANNELS = 4
MIN_RATE_HZ = 1
MAX_RATE_HZ = 100
DEFAULT_RATE_HZ = 10
SEQ_BUFFER = 65536
#: Assay names accepted by ``CH<n>:START <assay>``.
ASSAYS = ("NATEM", "EXTEM", "INTEM", "FIBTEM", "HEPTEM", "TEGN", "TEGK")

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
class DataFrame:
    """``$D,seq,ch,t_ms,amp_centi_mm``: one amplitude sample; ``t_ms`` counts from CH START."""

    seq: int
    channel: int
    t_ms: int
    amp_centi_mm: int

    @property
    def amp_mm(self) -> float:
        return self.amp_centi_mm / 100.0


@dataclass(frozen=True, slots=True)
class EventFrame:
    """``$E,seq,ch,code,text``: a device event on a channel (0 = the whole device)."""

    seq: int
    channel: int
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class HeartbeatFrame:
    """``$H,seq,device_ms,temp_centi_C,state``; ``seq`` is the last D/E seq the device sent."""

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


Message = DataFrame | EventFrame | HeartbeatFrame | ReplyFrame | ErrorReplyFrame


def _ints(frame: Frame, n: int, line: bytes) -> list[int]:
    if len(frame.fields) < n:
        raise MalformedFrameError(line, f"'{frame.kind}' frame needs {n} fields")
    try:
        return [int(f) for f in frame.fields[:n]]
    except ValueError:
        raise MalformedFrameError(line, f"'{frame.kind}' frame has a non-integer field") from None


def decode(frame: Frame, line: bytes = b"") -> Message:
    """Turn a verified frame into a typed message; raise MalformedFrameError otherwise."""
    kind, fields = frame.kind, frame.fields
    if kind == "D":
        if len(fields) != 4:
            raise MalformedFrameError(line, "'D' frame needs exactly 4 fields")
        seq, ch, t_ms, amp = _ints(frame, 4, line)
        return DataFrame(seq, ch, t_ms, amp)
    if kind == "H":
        if len(fields) != 4:
            raise MalformedFrameError(line, "'H' frame needs exactly 4 fields")
        seq, device_ms, temp = _ints(frame, 3, line)
        return HeartbeatFrame(seq, device_ms, temp, fields[3])
    if kind == "E":
        if len(fields) < 4:
            raise MalformedFrameError(line, "'E' frame needs 4 fields")
        seq, ch = _ints(frame, 2, line)
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


def parse_line(line: bytes) -> Message:
    """Verify, split and decode one line from a TEM-4."""
    return decode(parse_frame(line), line)


def encode_data(seq: int, channel: int, t_ms: int, amp_centi_mm: int) -> bytes:
    return encode_frame("D", seq, channel, t_ms, amp_centi_mm)


def encode_event(seq: int, channel: int, code: str, text: str) -> bytes:
    return encode_frame("E", seq, channel, code, text)


def encode_heartbeat(seq: int, device_ms: int, temp_centi_c: int, state: str) -> bytes:
    return encode_frame("H", seq, device_ms, temp_centi_c, state)


def encode_reply(command: str, *values: object) -> bytes:
    return encode_frame("R", command, *values)


def encode_error_reply(command: str, code: int, text: str) -> bytes:
    return encode_frame("R", command, "ERR", code, text)
