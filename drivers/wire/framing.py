"""NMEA-style ASCII framing shared by the TEM-4 and LOOP-8 instruments.

A device→host frame is ``$TYPE,field,...*HH`` followed by CR LF, where ``HH`` is the
two-digit upper-case hex XOR of every byte between ``$`` and the *last* ``*`` (a reply may
echo a command that itself contains ``*``, such as ``*IDN?``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from operator import xor

__all__ = [
    "ChecksumError",
    "Frame",
    "FrameError",
    "MalformedFrameError",
    "encode_frame",
    "parse_frame",
    "xor_checksum",
]

_HEX = b"0123456789ABCDEFabcdef"


class FrameError(ValueError):
    """A line from an instrument that is not a valid frame."""

    def __init__(self, raw: bytes, reason: str) -> None:
        self.raw = bytes(raw)
        self.reason = reason
        shown = self.raw[:80].decode("ascii", "backslashreplace")
        super().__init__(f"{reason}: {shown!r}")


class ChecksumError(FrameError):
    """The frame's checksum does not match its contents (line noise, a glitching adapter)."""


class MalformedFrameError(FrameError):
    """The line does not have the ``$TYPE,...*HH`` shape or a field cannot be decoded."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One verified frame: its type letter(s) and its comma-separated fields as text."""

    kind: str
    fields: tuple[str, ...]


def xor_checksum(body: bytes) -> int:
    """XOR of all bytes of ``body`` (the text between ``$`` and the last ``*``)."""
    return reduce(xor, body, 0)


def encode_frame(kind: str, *fields: object) -> bytes:
    """Encode a frame with its checksum and CR LF terminator."""
    body = ",".join([kind, *(str(f) for f in fields)]).encode("ascii")
    return b"$%s*%02X\r\n" % (body, xor_checksum(body))


def parse_frame(line: bytes) -> Frame:
    """Verify and split one line (with or without its CR LF).

    Raises :class:`ChecksumError` or :class:`MalformedFrameError`; never anything else.
    """
    raw = line.rstrip(b"\r\n")
    if raw[:1] != b"$":
        raise MalformedFrameError(line, "frame does not start with '$'")
    if len(raw) < 5:  # "$T*HH" is the shortest frame
        raise MalformedFrameError(line, "frame is too short")
    star = raw.rfind(b"*")
    if star < 2 or len(raw) - star != 3:
        raise MalformedFrameError(line, "frame does not end with '*HH'")
    hh = raw[star + 1 :]
    if hh[0] not in _HEX or hh[1] not in _HEX:
        raise MalformedFrameError(line, "checksum is not two hex digits")
    body = raw[1:star]
    if xor_checksum(body) != int(hh, 16):
        raise ChecksumError(line, f"checksum mismatch (frame says {hh.decode()})")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedFrameError(line, "frame contains non-ASCII bytes") from None
    parts = text.split(",")
    if not parts[0]:
        raise MalformedFrameError(line, "frame has no type")
    return Frame(parts[0], tuple(parts[1:]))
