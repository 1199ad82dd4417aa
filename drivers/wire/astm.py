"""ASTM E1381 (CLSI LIS01-A2) framing and ASTM E1394 (CLSI LIS2-A2) records.

Pure functions and value types shared by the host-side link layer (:mod:`drivers.astm`) and
the hematology analyzer simulator; nothing here does I/O. See docs/protocols/astm.md.

Low level (E1381): a frame is ``<STX> FN text <CR> <ETX> C1 C2 <CR> <LF>`` for the last
frame of a record and ``<STX> FN text <ETB> C1 C2 <CR> <LF>`` for an intermediate one. FN is
the frame number 0..7 (the first frame of a transfer is 1, then 2…7, 0, 1…), the text holds at
most 240 characters (the record's CR included) and C1 C2 are the two upper-case hex digits of
the sum modulo 256 of every byte from FN to ETX/ETB inclusive.

High level (E1394): a message is ``H … L`` records, one per line (CR terminated). The header
defines the field, repeat, component and escape delimiters (usually ``|\\^&``); fields hold
repeats, repeats hold components, and delimiters inside values are escaped (``&F&`` field,
``&S&`` component, ``&R&`` repeat, ``&E&`` escape, ``&Xhh…&`` hexadecimal).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

__all__ = [
    "ACK",
    "CR",
    "CRLF",
    "DEFAULT_DELIMITERS",
    "ENCODING",
    "ENQ",
    "EOT",
    "ETB",
    "ETX",
    "LF",
    "MAX_FRAME_TEXT",
    "NAK",
    "STX",
    "AstmRecord",
    "ChecksumError",
    "CommentRecord",
    "Delimiters",
    "FieldValue",
    "Frame",
    "FrameAssembler",
    "FrameError",
    "HeaderRecord",
    "MalformedFrameError",
    "Message",
    "OrderRecord",
    "OtherRecord",
    "PatientRecord",
    "QueryRecord",
    "RecordError",
    "ResultRecord",
    "TerminatorRecord",
    "checksum",
    "decode_message",
    "decode_record",
    "encode_frame",
    "encode_message",
    "encode_record",
    "escape",
    "frames_for_records",
    "group_messages",
    "next_frame_number",
    "parse_frame",
    "split_stream",
    "unescape",
]

# -- E1381 control characters ----------------------------------------------------------------
STX = b"\x02"
ETX = b"\x03"
EOT = b"\x04"
ENQ = b"\x05"
ACK = b"\x06"
NAK = b"\x15"
ETB = b"\x17"
CR = b"\r"
LF = b"\n"
CRLF = CR + LF

#: Most text characters in one frame (LIS01-A2: 247-character frames, 7 of them overhead).
MAX_FRAME_TEXT = 240
#: Text encoding of records on the wire (ASCII in the standard; ISO 8859-1 in practice).
ENCODING = "latin-1"

_CONTROL = frozenset(b"\x05\x06\x15\x04")  # ENQ ACK NAK EOT: tokens of their own
_FRAME_BREAK = frozenset(b"\x02\n\x05\x06\x15\x04")  # cannot occur inside a frame's text
#: A frame longer than this without ETX/ETB is handed on as malformed (it cannot be valid).
_MAX_FRAME = 1 + 1 + MAX_FRAME_TEXT + 1 + 4 + 16
_HEX = frozenset(b"0123456789ABCDEF")


class FrameError(ValueError):
    """Bytes that are not a valid E1381 frame; ``raw`` holds them for the log."""

    def __init__(self, raw: bytes, reason: str) -> None:
        self.raw = bytes(raw)
        self.reason = reason
        shown = self.raw[:80].decode("latin-1").encode("unicode_escape").decode("ascii")
        super().__init__(f"{reason}: '{shown}'")


class ChecksumError(FrameError):
    """The frame's checksum does not match its contents."""


class MalformedFrameError(FrameError):
    """The bytes do not have the ``<STX> FN text <ETX|ETB> C1 C2 <CR><LF>`` shape."""


class RecordError(ValueError):
    """An E1394 record or message that cannot be decoded (the message says where)."""


# -- frames ----------------------------------------------------------------------------------
def checksum(body: bytes) -> bytes:
    """Two upper-case hex digits of sum(``body``) mod 256; ``body`` is FN … ETX/ETB inclusive."""
    return b"%02X" % (sum(body) & 0xFF)


def next_frame_number(number: int) -> int:
    """The frame number after ``number``: 1…7, 0, 1…"""
    return (number + 1) % 8


@dataclass(frozen=True, slots=True)
class Frame:
    """One verified frame: its number, its text (without FN and ETX/ETB) and whether it is the
    last frame of a record (ETX) or an intermediate one (ETB)."""

    number: int
    text: bytes
    final: bool


def encode_frame(number: int, text: bytes, *, final: bool) -> bytes:
    """``<STX> FN text <ETX|ETB> C1 C2 <CR><LF>``; a final frame's text ends with the record CR."""
    if not 0 <= number <= 7:
        raise ValueError(f"frame number {number!r} is not 0…7")
    if len(text) > MAX_FRAME_TEXT:
        raise ValueError(f"frame text of {len(text)} characters exceeds {MAX_FRAME_TEXT}")
    bad = sorted(set(text) & _FRAME_BREAK | (set(text) & {0x03, 0x17}))
    if bad:
        raise ValueError(f"frame text contains control characters {bytes(bad)!r}")
    body = b"%d" % number + text + (ETX if final else ETB)
    return STX + body + checksum(body) + CRLF


def parse_frame(raw: bytes) -> Frame:
    """Verify and decode one frame (as cut by :func:`split_stream`).

    Raises :class:`ChecksumError` when the checksum does not match, :class:`MalformedFrameError`
    for any other defect (no STX, no ETX/ETB, bad frame number, missing CR LF).
    """
    if len(raw) < 7 or raw[:1] != STX:
        raise MalformedFrameError(raw, "too short or no STX")
    end = len(raw) - 5
    terminator = raw[end : end + 1]
    if terminator not in (ETX, ETB):
        raise MalformedFrameError(raw, "no ETX or ETB before the checksum")
    if raw[-2:] != CRLF:
        raise MalformedFrameError(raw, "the frame does not end with CR LF")
    fn = raw[1:2]
    if not fn.isdigit() or int(fn) > 7:
        raise MalformedFrameError(raw, f"frame number {fn!r} is not 0…7")
    got = raw[end + 1 : end + 3]
    body = raw[1 : end + 1]
    want = checksum(body)
    if got.upper() != want or not set(got.upper()) <= _HEX:
        raise ChecksumError(raw, f"checksum {got!r} does not match {want!r}")
    text = raw[2:end]
    if set(text) & (_FRAME_BREAK | {0x03, 0x17}):
        raise MalformedFrameError(raw, "control characters inside the frame text")
    return Frame(int(fn), text, terminator == ETX)


def split_stream(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Cut received bytes into tokens: single control bytes (ENQ, ACK, NAK, EOT) and frames.

    Returns (tokens, rest) where ``rest`` is an incomplete frame to keep for the next read.
    Bytes outside a frame that are not control characters (line noise) are skipped. A frame
    broken by STX, LF or a control character before its ETX/ETB is returned as it is, so that
    :func:`parse_frame` rejects it and the receiver answers NAK.
    """
    tokens: list[bytes] = []
    i = 0
    n = len(buffer)
    while i < n:
        b = buffer[i]
        if b in _CONTROL:
            tokens.append(buffer[i : i + 1])
            i += 1
            continue
        if b != STX[0]:
            i += 1  # noise between frames
            continue
        j = i + 1
        cut = -1
        while j < n:
            c = buffer[j]
            if c in (0x03, 0x17):  # ETX / ETB: C1 C2 CR LF follow
                if n < j + 5:
                    return tokens, buffer[i:]
                cut = j + 5
                break
            if c in _FRAME_BREAK:
                cut = j + 1 if c == LF[0] else j
                break
            if j - i >= _MAX_FRAME:
                cut = j
                break
            j += 1
        if cut < 0:
            return tokens, buffer[i:]
        tokens.append(buffer[i:cut])
        i = cut
    return tokens, b""


def frames_for_records(
    records: Sequence[str],
    *,
    first_number: int = 1,
    encoding: str = ENCODING,
    max_text: int = MAX_FRAME_TEXT,
) -> list[bytes]:
    """Encode records (one per frame; longer ones continued with ETB frames), numbered from
    ``first_number`` (1 at the start of a transfer) modulo 8."""
    if not 2 <= max_text <= MAX_FRAME_TEXT:
        raise ValueError(f"max_text must be 2…{MAX_FRAME_TEXT}, got {max_text}")
    frames: list[bytes] = []
    number = first_number % 8
    for record in records:
        data = record.encode(encoding) + CR
        chunks = [data[k : k + max_text] for k in range(0, len(data), max_text)]
        for k, chunk in enumerate(chunks):
            frames.append(encode_frame(number, chunk, final=k == len(chunks) - 1))
            number = next_frame_number(number)
    return frames


class FrameAssembler:
    """Joins accepted frames' texts into records: ETB frames continue a record, the ETX frame
    completes it. A final frame holding several CR-separated records yields them all."""

    def __init__(self, encoding: str = ENCODING) -> None:
        self.encoding = encoding
        self._parts: list[bytes] = []

    @property
    def pending(self) -> bool:
        """True while a record has been started by ETB frames but not completed."""
        return bool(self._parts)

    def add(self, frame: Frame) -> list[str]:
        """Add an accepted frame; return the records it completes (CR removed)."""
        self._parts.append(frame.text)
        if not frame.final:
            return []
        data = b"".join(self._parts)
        self._parts.clear()
        return [r.decode(self.encoding) for r in data.split(CR) if r]

    def reset(self) -> bytes:
        """Drop an incomplete record (transfer ended or aborted); return what was dropped."""
        dropped = b"".join(self._parts)
        self._parts.clear()
        return dropped


# -- records: delimiters and escapes ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Delimiters:
    """The four delimiters a header defines (``H|\\^&``)."""

    field: str = "|"
    repeat: str = "\\"
    component: str = "^"
    escape: str = "&"

    def __post_init__(self) -> None:
        chars = (self.field, self.repeat, self.component, self.escape)
        if any(len(c) != 1 for c in chars) or len(set(chars)) != 4:
            raise RecordError(f"delimiters must be four different characters, got {chars!r}")
        if any(ord(c) < 0x20 or ord(c) > 0x7E or c.isalnum() for c in chars):
            raise RecordError(f"delimiters must be printable punctuation, got {chars!r}")

    @property
    def definition(self) -> str:
        """The header's delimiter definition after ``H`` (``|\\^&``)."""
        return self.field + self.repeat + self.component + self.escape


DEFAULT_DELIMITERS = Delimiters()


def escape(value: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Escape delimiters inside a value (``a|b`` → ``a&F&b``); CR/LF become ``&X0D&``."""
    out: list[str] = []
    for ch in value:
        if ch == d.escape:
            out.append(f"{d.escape}E{d.escape}")
        elif ch == d.field:
            out.append(f"{d.escape}F{d.escape}")
        elif ch == d.component:
            out.append(f"{d.escape}S{d.escape}")
        elif ch == d.repeat:
            out.append(f"{d.escape}R{d.escape}")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"{d.escape}X{ord(ch):02X}{d.escape}")
        else:
            out.append(ch)
    return "".join(out)


def unescape(value: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Undo :func:`escape`: ``&F& &S& &R& &E&`` and ``&Xhh…&``; other sequences (``&H&``,
    ``&N&`` highlighting) are removed, an unterminated ``&`` is kept as it is."""
    e = d.escape
    if e not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        end = value.find(e, i + 1) if ch == e else -1
        if end < 0:
            out.append(ch)
            i += 1
            continue
        seq = value[i + 1 : end]
        simple = {"F": d.field, "S": d.component, "R": d.repeat, "E": d.escape}
        if seq in simple:
            out.append(simple[seq])
        elif seq[:1] == "X" and len(seq) >= 3 and len(seq) % 2 == 1:
            try:
                out.append(bytes.fromhex(seq[1:]).decode(ENCODING))
            except ValueError:
                out.append(value[i : end + 1])
        elif re.fullmatch(r"[A-Z]", seq):
            pass  # highlighting and other formatting sequences carry no text
        else:
            out.append(value[i : end + 1])
        i = end + 1
    return "".join(out)


#: A field as stored in a record: its repeats, each a tuple of (unescaped) components.
FieldValue: TypeAlias = tuple[tuple[str, ...], ...]

_EMPTY: FieldValue = ()


def _text(value: str) -> FieldValue:
    return ((value,),) if value else _EMPTY


def _first(fv: FieldValue, component: int = 1) -> str:
    """Component ``component`` (1-based) of the first repeat, or ""."""
    if not fv or len(fv[0]) < component:
        return ""
    return fv[0][component - 1]


def _split_field(raw: str, d: Delimiters) -> FieldValue:
    if raw == "":
        return _EMPTY
    return tuple(
        tuple(unescape(c, d) for c in rep.split(d.component)) for rep in raw.split(d.repeat)
    )


def _join_field(fv: FieldValue, d: Delimiters) -> str:
    reps = []
    for rep in fv:
        comps = [escape(c, d) for c in rep]
        while comps and comps[-1] == "":
            comps.pop()
        reps.append(d.component.join(comps))
    while reps and reps[-1] == "":
        reps.pop()
    return d.repeat.join(reps)


def _int(text: str, record: str, name: str) -> int:
    if text == "":
        return 1
    try:
        return int(text)
    except ValueError:
        raise RecordError(f"{record} record: {name} {text!r} is not a whole number") from None


# -- records: typed ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HeaderRecord:
    """H: message header (LIS2-A2 section 7). ``sender`` holds the components of H-5
    (name, software version, serial number, …); ``processing_id`` is P (production),
    T (training), D (debugging) or Q (quality control)."""

    TYPE: ClassVar[str] = "H"
    delimiters: Delimiters = DEFAULT_DELIMITERS
    message_id: str = ""
    password: str = ""
    sender: tuple[str, ...] = ()
    receiver: tuple[str, ...] = ()
    comment: str = ""
    processing_id: str = "P"
    version: str = "LIS2-A2"
    timestamp: str = ""
    extra: tuple[tuple[int, FieldValue], ...] = ()

    def to_fields(self) -> dict[int, FieldValue]:
        fields = {
            3: _text(self.message_id),
            4: _text(self.password),
            5: (self.sender,) if any(self.sender) else _EMPTY,
            10: (self.receiver,) if any(self.receiver) else _EMPTY,
            11: _text(self.comment),
            12: _text(self.processing_id),
            13: _text(self.version),
            14: _text(self.timestamp),
        }
        fields.update(dict(self.extra))
        return fields

    @classmethod
    def from_fields(cls, f: dict[int, FieldValue], d: Delimiters) -> HeaderRecord:
        known = {1, 2, 3, 4, 5, 10, 11, 12, 13, 14}
        return cls(
            delimiters=d,
            message_id=_first(f.get(3, _EMPTY)),
            password=_first(f.get(4, _EMPTY)),
            sender=f.get(5, _EMPTY)[0] if f.get(5) else (),
            receiver=f.get(10, _EMPTY)[0] if f.get(10) else (),
            comment=_first(f.get(11, _EMPTY)),
            processing_id=_first(f.get(12, _EMPTY)),
            version=_first(f.get(13, _EMPTY)),
            timestamp=_first(f.get(14, _EMPTY)),
            extra=tuple((k, v) for k, v in sorted(f.items()) if k not in known and v),
        )


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """P: patient information (LIS2-A2 section 8). Here a pseudonymised subject: for loop
    samples the lot (or vehicle) under test, never a person's name."""

    TYPE: ClassVar[str] = "P"
    seq: int = 1
    practice_id: str = ""
    lab_id: str = ""
    patient_id3: str = ""
    name: tuple[str, ...] = ()
    extra: tuple[tuple[int, FieldValue], ...] = ()

    def to_fields(self) -> dict[int, FieldValue]:
        fields = {
            2: _text(str(self.seq)),
            3: _text(self.practice_id),
            4: _text(self.lab_id),
            5: _text(self.patient_id3),
            6: (self.name,) if any(self.name) else _EMPTY,
        }
        fields.update(dict(self.extra))
        return fields

    @classmethod
    def from_fields(cls, f: dict[int, FieldValue], d: Delimiters) -> PatientRecord:
        return cls(
            seq=_int(_first(f.get(2, _EMPTY)), "P", "sequence number"),
            practice_id=_first(f.get(3, _EMPTY)),
            lab_id=_first(f.get(4, _EMPTY)),
            patient_id3=_first(f.get(5, _EMPTY)),
            name=f[6][0] if f.get(6) else (),
            extra=tuple((k, v) for k, v in sorted(f.items()) if k > 6 and v),
        )


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """O: test order (LIS2-A2 section 9). ``specimen_id`` (O-3) is the sample tube ID;
    ``test_ids`` are the universal test IDs of O-5, one tuple of components per repeat
    (``^^^PLT`` → ``("", "", "", "PLT")``); ``report_type`` (O-26) is F for final results."""

    TYPE: ClassVar[str] = "O"
    seq: int = 1
    specimen_id: str = ""
    instrument_specimen_id: tuple[str, ...] = ()
    test_ids: tuple[tuple[str, ...], ...] = ()
    priority: str = ""
    requested_at: str = ""
    collected_at: str = ""
    action_code: str = ""
    specimen_type: str = ""
    report_type: str = ""
    extra: tuple[tuple[int, FieldValue], ...] = ()

    def to_fields(self) -> dict[int, FieldValue]:
        fields = {
            2: _text(str(self.seq)),
            3: _text(self.specimen_id),
            4: (self.instrument_specimen_id,) if any(self.instrument_specimen_id) else _EMPTY,
            5: tuple(self.test_ids),
            6: _text(self.priority),
            7: _text(self.requested_at),
            8: _text(self.collected_at),
            12: _text(self.action_code),
            16: _text(self.specimen_type),
            26: _text(self.report_type),
        }
        fields.update(dict(self.extra))
        return fields

    @classmethod
    def from_fields(cls, f: dict[int, FieldValue], d: Delimiters) -> OrderRecord:
        known = {1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 26}
        return cls(
            seq=_int(_first(f.get(2, _EMPTY)), "O", "sequence number"),
            specimen_id=_first(f.get(3, _EMPTY)),
            instrument_specimen_id=f[4][0] if f.get(4) else (),
            test_ids=f.get(5, _EMPTY),
            priority=_first(f.get(6, _EMPTY)),
            requested_at=_first(f.get(7, _EMPTY)),
            collected_at=_first(f.get(8, _EMPTY)),
            action_code=_first(f.get(12, _EMPTY)),
            specimen_type=_first(f.get(16, _EMPTY)),
            report_type=_first(f.get(26, _EMPTY)),
            extra=tuple((k, v) for k, v in sorted(f.items()) if k not in known and v),
        )

    @property
    def sample_id(self) -> str:
        """The specimen ID (O-3), or the instrument's specimen ID (O-4) when O-3 is empty."""
        return self.specimen_id or next((c for c in self.instrument_specimen_id if c), "")


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """R: one result (LIS2-A2 section 10). ``test_id`` holds the components of R-3
    (``^^^PLT``); ``flags`` is R-7 (L, H, LL, HH, <, >, N, A …); ``status`` R-9 (F final,
    C correction, P preliminary, X cannot be done); ``completed_at`` R-13."""

    TYPE: ClassVar[str] = "R"
    seq: int = 1
    test_id: tuple[str, ...] = ()
    value: str = ""
    units: str = ""
    reference_range: str = ""
    flags: str = ""
    nature: str = ""
    status: str = ""
    operator: str = ""
    started_at: str = ""
    completed_at: str = ""
    instrument: str = ""
    extra: tuple[tuple[int, FieldValue], ...] = ()

    def to_fields(self) -> dict[int, FieldValue]:
        fields = {
            2: _text(str(self.seq)),
            3: (self.test_id,) if any(self.test_id) else _EMPTY,
            4: _text(self.value),
            5: _text(self.units),
            6: _text(self.reference_range),
            7: _text(self.flags),
            8: _text(self.nature),
            9: _text(self.status),
            11: _text(self.operator),
            12: _text(self.started_at),
            13: _text(self.completed_at),
            14: _text(self.instrument),
        }
        fields.update(dict(self.extra))
        return fields

    @classmethod
    def from_fields(cls, f: dict[int, FieldValue], d: Delimiters) -> ResultRecord:
        known = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14}
        return cls(
            seq=_int(_first(f.get(2, _EMPTY)), "R", "sequence number"),
            test_id=f[3][0] if f.get(3) else (),
            value=_first(f.get(4, _EMPTY)),
            units=_first(f.get(5, _EMPTY)),
            reference_range=_first(f.get(6, _EMPTY)),
            flags=_first(f.get(7, _EMPTY)),
            nature=_first(f.get(8, _EMPTY)),
            status=_first(f.get(9, _EMPTY)),
            operator=_first(f.get(11, _EMPTY)),
            started_at=_first(f.get(12, _EMPTY)),
            completed_at=_first(f.get(13, _EMPTY)),
            instrument=_first(f.get(14, _EMPTY)),
            extra=tuple((k, v) for k, v in sorted(f.items()) if k not in known and v),
        )

    @property
    def code(self) -> str:
        """The analyte code: the manufacturer's local code (4th component, ``^^^PLT``), else
        the last non-empty component of the universal test ID."""
        if len(self.test_id) >= 4 and self.test_id[3]:
            return self.test_id[3]
        return next((c for c in reversed(self.test_id) if c), "")


@dataclass(frozen=True, slots=True)
class CommentRecord:
    """C: comment (LIS2-A2 section 11); ``source`` I (instrument) or L (LIS), ``kind`` G
    (generic), T (test name), P (positive), N (negative), I (instruction)."""

    TYPE: ClassVar[str] = "C"
    seq: int = 1
    source: str = ""
    text: tuple[str, ...] = ()
    kind: str = "G"

    def to_fields(self) -> dict[int, FieldValue]:
        return {
            2: _text(str(self.seq)),
            3: _text(self.source),
            4: (self.text,) if any(self.text) else _EMPTY,
            5: _text(self.kind),
        }

    @classmethod
    def from_fields(cls, f: dict[int, FieldValue], d: Delimiters) -> CommentRecord:
        return cls(
            seq=_int(_first(f.get(2, _EMPTY)), "C", "sequence number"),
            source=_first(f.get(3, _EMPTY)),
            text=f[4][0] if f.get(4) else (),
            kind=_first(f.get(5, _EMPTY)),
        )


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """Q: request for information (LIS2-A2 section 12). ``specimen_ids`` are the specimen IDs
    of the starting range (Q-3, ``^S-000001`` per repeat; ``ALL`` for every sample);
    ``status`` Q-13 (O: send results, A: cancel)."""

    TYPE: ClassVar[str] = "Q"
    seq: int = 1
    specimen_ids: tuple[str, ...] = ()
    test_ids: tuple[tuple[str, ...], ...] = ()
    status: str = "O"

    def to_fields(self) -> dict[int, FieldValue]:
        return {
            2: _text(str(self.seq)),
            3: tuple(("", s) for s in self.specimen_ids),
            5: tuple(self.test_ids),
            13: _text(self.status),
        }

    @classmethod
    def from_fields(cls, f: dict[int, FieldValue], d: Delimiters) -> QueryRecord:
        ids = tuple(rep[1] if len(rep) > 1 else rep[0] for rep in f.get(3, _EMPTY) if any(rep))
        return cls(
            seq=_int(_first(f.get(2, _EMPTY)), "Q", "sequence number"),
            specimen_ids=ids,
            test_ids=f.get(5, _EMPTY),
            status=_first(f.get(13, _EMPTY)),
        )


@dataclass(frozen=True, slots=True)
class TerminatorRecord:
    """L: message terminator (LIS2-A2 section 13); ``code`` N normal, T sender aborted,
    R receiver abort, E system error, Q query error, I no information, F query done."""

    TYPE: ClassVar[str] = "L"
    seq: int = 1
    code: str = "N"

    def to_fields(self) -> dict[int, FieldValue]:
        return {2: _text(str(self.seq)), 3: _text(self.code)}

    @classmethod
    def from_fields(cls, f: dict[int, FieldValue], d: Delimiters) -> TerminatorRecord:
        return cls(
            seq=_int(_first(f.get(2, _EMPTY)), "L", "sequence number"),
            code=_first(f.get(3, _EMPTY)),
        )


@dataclass(frozen=True, slots=True)
class OtherRecord:
    """Any other record (M manufacturer, S scientific, …): its type and fields by number."""

    type: str
    fields: tuple[tuple[int, FieldValue], ...] = ()

    def to_fields(self) -> dict[int, FieldValue]:
        return dict(self.fields)

    def field(self, number: int) -> FieldValue:
        """Field ``number`` (1-based, as numbered in the standard)."""
        return dict(self.fields).get(number, _EMPTY)


AstmRecord: TypeAlias = (
    HeaderRecord
    | PatientRecord
    | OrderRecord
    | ResultRecord
    | CommentRecord
    | QueryRecord
    | TerminatorRecord
    | OtherRecord
)

_TYPED: dict[str, Callable[[dict[int, FieldValue], Delimiters], AstmRecord]] = {
    "P": PatientRecord.from_fields,
    "O": OrderRecord.from_fields,
    "R": ResultRecord.from_fields,
    "C": CommentRecord.from_fields,
    "Q": QueryRecord.from_fields,
    "L": TerminatorRecord.from_fields,
}


def _record_type(record: AstmRecord) -> str:
    return record.type if isinstance(record, OtherRecord) else record.TYPE


def encode_record(record: AstmRecord, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """One record as text (no CR). Trailing empty fields and components are left out."""
    kind = _record_type(record)
    if len(kind) != 1 or not kind.isalpha():
        raise RecordError(f"record type {kind!r} is not a single letter")
    fields = record.to_fields()
    if isinstance(record, HeaderRecord):
        d = record.delimiters
    last = max((k for k, v in fields.items() if v), default=1)
    parts = [kind]
    start = 3 if isinstance(record, HeaderRecord) else 2
    for number in range(start, last + 1):
        parts.append(_join_field(fields.get(number, _EMPTY), d))
    if isinstance(record, HeaderRecord):
        head = kind + d.definition
        return head + (d.field + d.field.join(parts[1:]) if len(parts) > 1 else "")
    return d.field.join(parts)


def decode_record(text: str, d: Delimiters = DEFAULT_DELIMITERS) -> AstmRecord:
    """Decode one record (without its CR). A header sets its own delimiters."""
    text = text.rstrip("\r\n")
    if not text:
        raise RecordError("empty record")
    kind = text[0].upper()
    if kind == "H":
        if len(text) < 5:
            raise RecordError(f"header {text!r} is too short to define the delimiters")
        d = Delimiters(text[1], text[2], text[3], text[4])
        rest = text[5:]
        if rest and rest[0] != d.field:
            raise RecordError(f"header {text[:12]!r}: the delimiter definition is not 4 chars")
        raw = rest[1:].split(d.field) if rest else []
        fields = {n: _split_field(v, d) for n, v in enumerate(raw, start=3)}
        return HeaderRecord.from_fields(fields, d)
    if len(text) > 1 and text[1] != d.field:
        raise RecordError(
            f"record {text[:20]!r}: expected the field delimiter {d.field!r} after the type"
        )
    raw = text.split(d.field)
    fields = {n: _split_field(v, d) for n, v in enumerate(raw, start=1) if n > 1}
    decoder = _TYPED.get(kind)
    if decoder is None:
        return OtherRecord(kind, tuple((k, v) for k, v in sorted(fields.items()) if v))
    return decoder(fields, d)


def encode_message(records: Iterable[AstmRecord]) -> list[str]:
    """Record texts of a message; the delimiters are those of its header (first record)."""
    out: list[str] = []
    d = DEFAULT_DELIMITERS
    for record in records:
        if isinstance(record, HeaderRecord):
            d = record.delimiters
        out.append(encode_record(record, d))
    return out


def decode_message(texts: Iterable[str]) -> list[AstmRecord]:
    """Decode record texts; each header switches to the delimiters it defines."""
    out: list[AstmRecord] = []
    d = DEFAULT_DELIMITERS
    for number, text in enumerate(texts, start=1):
        try:
            record = decode_record(text, d)
        except RecordError as exc:
            raise RecordError(f"record {number}: {exc}") from None
        if isinstance(record, HeaderRecord):
            d = record.delimiters
        out.append(record)
    return out


@dataclass(frozen=True, slots=True)
class Message:
    """One E1394 message: the records from a header to its terminator. ``complete`` is False
    when the transfer ended before the L record (the sender will send it again)."""

    records: tuple[AstmRecord, ...]
    complete: bool

    @property
    def header(self) -> HeaderRecord | None:
        first = self.records[0] if self.records else None
        return first if isinstance(first, HeaderRecord) else None


def group_messages(records: Iterable[AstmRecord]) -> list[Message]:
    """Split a stream of records into messages at H and after L; records before the first
    header form an incomplete message of their own."""
    messages: list[Message] = []
    current: list[AstmRecord] = []
    for record in records:
        if isinstance(record, HeaderRecord) and current:
            messages.append(Message(tuple(current), False))
            current = []
        current.append(record)
        if isinstance(record, TerminatorRecord):
            complete = isinstance(current[0], HeaderRecord)
            messages.append(Message(tuple(current), complete))
            current = []
    if current:
        messages.append(Message(tuple(current), False))
    return messages
