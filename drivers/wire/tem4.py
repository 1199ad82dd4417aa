"""TEM-4 thromboelastometer wire messages (see docs/protocols/tem4.md).

Pure functions and value types: the driver decodes with them, the simulator encodes with
them, and neither does I/O here. The event, heartbeat and reply frames are shared with the
LOOP-8 (:mod:`drivers.wire.sequenced`) and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.wire.framing import Frame, MalformedFrameError, encode_frame, parse_frame
from drivers.wire.sequenced import (
    ERROR_CODES,
    SEQ_BUFFER,
    ErrorReplyFrame,
    EventFrame,
    HeartbeatFrame,
    ReplyFrame,
    decode_shared,
    encode_error_reply,
    encode_event,
    encode_heartbeat,
    encode_reply,
    int_fields,
)

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
#: Assay names accepted by ``CH<n>:START <assay>``.
ASSAYS = ("NATEM", "EXTEM", "INTEM", "FIBTEM", "HEPTEM", "TEGN", "TEGK")


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


Message = DataFrame | EventFrame | HeartbeatFrame | ReplyFrame | ErrorReplyFrame


def decode(frame: Frame, line: bytes = b"") -> Message:
    """Turn a verified frame into a typed message; raise MalformedFrameError otherwise."""
    if frame.kind == "D":
        if len(frame.fields) != 4:
            raise MalformedFrameError(line, "'D' frame needs exactly 4 fields")
        seq, ch, t_ms, amp = int_fields(frame, 4, line)
        return DataFrame(seq, ch, t_ms, amp)
    return decode_shared(frame, line)


def parse_line(line: bytes) -> Message:
    """Verify, split and decode one line from a TEM-4."""
    return decode(parse_frame(line), line)


def encode_data(seq: int, channel: int, t_ms: int, amp_centi_mm: int) -> bytes:
    return encode_frame("D", seq, channel, t_ms, amp_centi_mm)
