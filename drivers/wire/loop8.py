"""LOOP-8 Chandler loop rotator wire messages (see docs/protocols/loop8.md).

The LOOP-8 frames its lines like the TEM-4 and shares its event, heartbeat and reply frames
(:mod:`drivers.wire.sequenced`, re-exported here); its data frame is
``$L,seq,loop,t_ms,motion_permille``. Pure functions and value types, no I/O.
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
    "BAUDRATE",
    "DEFAULT_RATE_HZ",
    "DEFAULT_RPM",
    "ERROR_CODES",
    "LOOPS",
    "MAX_RATE_HZ",
    "MAX_RPM",
    "MIN_RATE_HZ",
    "MIN_RPM",
    "MOTION_FREE_PERMILLE",
    "SEQ_BUFFER",
    "ErrorReplyFrame",
    "EventFrame",
    "HeartbeatFrame",
    "LoopFrame",
    "Message",
    "ReplyFrame",
    "decode",
    "encode_error_reply",
    "encode_event",
    "encode_heartbeat",
    "encode_loop",
    "encode_reply",
    "parse_line",
]

BAUDRATE = 57600
LOOPS = 8
MIN_RPM = 1
MAX_RPM = 60
DEFAULT_RPM = 30
MIN_RATE_HZ = 1
MAX_RATE_HZ = 10
DEFAULT_RATE_HZ = 1
#: ``motion_permille`` of blood moving freely; it falls towards 0 as an occlusive clot forms.
MOTION_FREE_PERMILLE = 1000


@dataclass(frozen=True, slots=True)
class LoopFrame:
    """``$L,seq,loop,t_ms,motion_permille``: one clot-sensor sample; ``t_ms`` from START."""

    seq: int
    loop: int
    t_ms: int
    motion_permille: int

    @property
    def motion_fraction(self) -> float:
        """The motion as a fraction of free flow (1.0 = moving freely, 0.0 = occluded)."""
        return self.motion_permille / MOTION_FREE_PERMILLE


Message = LoopFrame | EventFrame | HeartbeatFrame | ReplyFrame | ErrorReplyFrame


def decode(frame: Frame, line: bytes = b"") -> Message:
    """Turn a verified frame into a typed message; raise MalformedFrameError otherwise."""
    if frame.kind == "L":
        if len(frame.fields) != 4:
            raise MalformedFrameError(line, "'L' frame needs exactly 4 fields")
        seq, loop, t_ms, motion = int_fields(frame, 4, line)
        return LoopFrame(seq, loop, t_ms, motion)
    return decode_shared(frame, line)


def parse_line(line: bytes) -> Message:
    """Verify, split and decode one line from a LOOP-8."""
    return decode(parse_frame(line), line)


def encode_loop(seq: int, loop: int, t_ms: int, motion_permille: int) -> bytes:
    return encode_frame("L", seq, loop, t_ms, motion_permille)
