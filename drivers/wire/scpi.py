"""SCPI / IEEE 488.2 codecs for the ABS-96 absorbance plate reader (docs/protocols/abs96.md).

Pure functions and value types shared by the driver and the simulator: command formatting,
program-message parsing with SCPI short/long header forms, reply parsing (``*IDN?``,
numbers, ``SYST:ERR?`` entries, 96-value plates), the error-code table and the bits of the
IEEE 488.2 standard event status register. Nothing here does I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "DEFAULT_PORT",
    "ERROR_CODES",
    "ESR_BITS",
    "ESR_CME",
    "ESR_DDE",
    "ESR_EXE",
    "ESR_OPC",
    "ESR_PON",
    "ESR_QYE",
    "ESR_RQC",
    "ESR_URQ",
    "MAX_OD",
    "MAX_WAVELENGTHS",
    "MAX_WAVELENGTH_NM",
    "MIN_WAVELENGTH_NM",
    "NO_ERROR",
    "N_COLUMNS",
    "N_WELLS",
    "ROWS",
    "ErrorEntry",
    "IdnReply",
    "PlateLengthError",
    "ProgramUnit",
    "ReplyFormatError",
    "decode_esr",
    "error_class",
    "esr_bit_for_error",
    "format_command",
    "format_error_entry",
    "format_plate",
    "format_wavelengths",
    "header_matches",
    "parse_error_entry",
    "parse_idn",
    "parse_int",
    "parse_number",
    "parse_opc",
    "parse_plate",
    "parse_program_message",
    "parse_wavelengths",
    "wavelength_problem",
    "well_index",
    "well_names",
]

#: The TCP port of SCPI raw sockets (``TCPIP::host::5025::SOCKET``).
DEFAULT_PORT = 5025
#: The reader's wavelength range (its filter set spans 340–1000 nm).
MIN_WAVELENGTH_NM = 340
MAX_WAVELENGTH_NM = 1000
#: ``CONF:WAV`` takes a signal wavelength and optionally a reference wavelength.
MAX_WAVELENGTHS = 2
#: The top of the photometric range: higher absorbances are reported as this value.
MAX_OD = 4.0

ROWS = "ABCDEFGH"
N_COLUMNS = 12
N_WELLS = len(ROWS) * N_COLUMNS

# IEEE 488.2 standard event status register (``*ESR?``), bit values.
ESR_OPC = 1  #: operation complete (after ``*OPC``)
ESR_RQC = 2  #: request control (unused)
ESR_QYE = 4  #: query error
ESR_DDE = 8  #: device-dependent error (positive codes, -3xx)
ESR_EXE = 16  #: execution error (-2xx)
ESR_CME = 32  #: command error (-1xx)
ESR_URQ = 64  #: user request (unused)
ESR_PON = 128  #: power on
ESR_BITS: dict[int, str] = {
    ESR_OPC: "operation complete",
    ESR_RQC: "request control",
    ESR_QYE: "query error",
    ESR_DDE: "device-dependent error",
    ESR_EXE: "execution error",
    ESR_CME: "command error",
    ESR_URQ: "user request",
    ESR_PON: "power on",
}

NO_ERROR = 0
#: SCPI error codes the reader reports, with their standard (or device) message.
ERROR_CODES: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -200: "Execution error",
    -213: "Init ignored",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -350: "Queue overflow",
    -363: "Input buffer overrun",
    201: "Lamp failure",
    202: "Chamber over temperature",
}

_MAX_REPLY_SHOWN = 60
# ASCII-only number syntax (Python's float() also takes "1_0", "inf", "nan" and non-ASCII
# digits, none of which an instrument sends).
_NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_ERROR_ENTRY = re.compile(r'^\s*([+-]?[0-9]{1,6})\s*,\s*"((?:[^"]|"")*)"\s*$')
_HEADER_CHARS = re.compile(
    r"^:?(?:\*[A-Za-z]+\??|[A-Za-z][A-Za-z0-9]*(?::[A-Za-z][A-Za-z0-9]*)*\??)$"
)
_MNEMONIC = re.compile(r"^([A-Z0-9*]+)([a-z0-9]*)$")
_WELL = re.compile(r"^([A-Ha-h])0*([1-9][0-9]?)$")
#: SCPI's "not a number" (9.91E37) and overflow (±9.9E37) markers: not absorbances.
_SCPI_SENTINEL = 9.9e37


class ReplyFormatError(ValueError):
    """A reply that does not have the documented shape; carries the raw reply."""

    def __init__(self, reply: str, expected: str) -> None:
        self.reply = reply
        self.expected = expected
        shown = reply if len(reply) <= _MAX_REPLY_SHOWN else reply[:_MAX_REPLY_SHOWN] + "…"
        super().__init__(f"reply {shown!r} is not {expected}")


class PlateLengthError(ReplyFormatError):
    """A plate reply with the wrong number of values (a short or over-long plate)."""

    def __init__(self, reply: str, count: int, expected_count: int) -> None:
        self.count = count
        self.expected_count = expected_count
        super().__init__(reply, f"{expected_count} comma-separated absorbances")
        self.args = (f"the reply has {count} absorbances, expected {expected_count} (A1 … H12)",)


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    """One entry of the SCPI error queue: ``-113,"Undefined header"``."""

    code: int
    message: str

    @property
    def is_error(self) -> bool:
        return self.code != NO_ERROR

    def __str__(self) -> str:
        return format_error_entry(self.code, self.message)


@dataclass(frozen=True, slots=True)
class IdnReply:
    """The four fields of an IEEE 488.2 ``*IDN?`` reply."""

    manufacturer: str
    model: str
    serial: str
    firmware: str


@dataclass(frozen=True, slots=True)
class ProgramUnit:
    """One command of a program message: ``CONF:WAV 492,650`` → header, params."""

    header: str
    params: tuple[str, ...]

    @property
    def is_query(self) -> bool:
        return self.header.endswith("?")


# ---------------------------------------------------------------------------- wells


def well_names() -> list[str]:
    """All 96 wells in row-major order (A1 … A12, B1 … H12), the order of ``FETC:PLAT?``."""
    return [f"{row}{col}" for row in ROWS for col in range(1, N_COLUMNS + 1)]


def well_index(name: str) -> int:
    """Row-major index (0–95) of a well such as ``"B7"`` (``"b07"`` also accepted)."""
    match = _WELL.fullmatch(name.strip()) if isinstance(name, str) else None
    column = int(match.group(2)) if match else 0
    if match is None or not 1 <= column <= N_COLUMNS:
        raise ValueError(
            f"{name!r} is not a well of a 96-well plate: expected a row letter A–H and a "
            f"column 1–12, such as 'B7'"
        )
    return ROWS.index(match.group(1).upper()) * N_COLUMNS + column - 1


# ---------------------------------------------------------------------------- commands


def wavelength_problem(nm: object) -> str | None:
    """Why ``nm`` is not a wavelength the reader accepts, or None if it is."""
    if isinstance(nm, bool) or not isinstance(nm, int):
        return f"{nm!r} is not a whole number of nanometres"
    if not MIN_WAVELENGTH_NM <= nm <= MAX_WAVELENGTH_NM:
        return f"{nm} nm is outside the reader's range {MIN_WAVELENGTH_NM}–{MAX_WAVELENGTH_NM} nm"
    return None


def format_command(header: str, *params: int | float | str) -> str:
    """``format_command("CONF:WAV", 492, 650)`` → ``"CONF:WAV 492,650"``."""
    if not _HEADER_CHARS.fullmatch(header):
        raise ValueError(f"{header!r} is not a SCPI header")
    texts: list[str] = []
    for value in params:
        if isinstance(value, bool):
            raise ValueError(f"SCPI parameter {value!r}: send 0 or 1, not a bool")
        if isinstance(value, int):
            texts.append(str(value))
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"SCPI parameter {value!r} is not finite")
            texts.append(repr(value))
        else:
            if not value or any(c in value for c in ',;"\r\n') or not value.isascii():
                raise ValueError(f'SCPI parameter {value!r} is empty or has , ; " or a newline')
            texts.append(value)
    return f"{header} {','.join(texts)}" if texts else header


def format_wavelengths(wavelengths: tuple[int, ...] | list[int]) -> str:
    """The ``CONF:WAV?`` reply and ``CONF:WAV`` parameters: ``492,650``."""
    return ",".join(str(nm) for nm in wavelengths)


def _split_params(text: str) -> tuple[str, ...]:
    """Split a parameter list on commas outside double quotes; each part stripped."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return tuple(parts)


def parse_program_message(line: str) -> list[ProgramUnit]:
    """Split one received line into commands (``;``-separated, outside quotes).

    Each unit's header keeps its spelling (matching is done by :func:`header_matches`);
    an empty line gives ``[]``, and a unit with nothing but whitespace is skipped.
    """
    units: list[ProgramUnit] = []
    pieces: list[str] = []
    current: list[str] = []
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    for piece in pieces:
        text = piece.strip()
        if not text:
            continue
        header, _, rest = text.partition(" ")
        if "\t" in header:
            header, _, more = header.partition("\t")
            rest = more + " " + rest
        rest = rest.strip()
        units.append(ProgramUnit(header, _split_params(rest) if rest else ()))
    return units


@lru_cache(maxsize=64)
def _header_regex(pattern: str) -> re.Pattern[str]:
    """Regex for a header pattern like ``SYSTem:ERRor[:NEXT]?`` (upper case = short form)."""
    query = pattern.endswith("?")
    body = pattern[:-1] if query else pattern
    parts: list[str] = []
    for optional, node in re.findall(r"(\[?):?([A-Za-z0-9*]+)\]?", body):
        m = _MNEMONIC.match(node)
        if m is None:
            raise ValueError(f"bad header pattern {pattern!r}")
        short, tail = m.group(1), m.group(2).upper()
        word = re.escape(short) + (f"(?:{re.escape(tail)})?" if tail else "")
        sep = "" if not parts else ":"
        parts.append(f"(?:{sep}{word})?" if optional else f"{sep}{word}")
    return re.compile("^:?" + "".join(parts) + (r"\?" if query else "") + "$", re.IGNORECASE)


def header_matches(header: str, pattern: str) -> bool:
    """True if ``header`` spells ``pattern`` in its short or long form, any case.

    ``header_matches("conf:wav", "CONFigure:WAVelength")`` and
    ``header_matches(":CONFIGURE:WAVELENGTH", "CONFigure:WAVelength")`` are true;
    ``"CONFIG:WAV"`` is not (SCPI accepts exactly the short or the long form).
    """
    return _header_regex(pattern).fullmatch(header) is not None


# ---------------------------------------------------------------------------- replies


def _strip_reply(reply: str) -> str:
    return reply.rstrip("\r\n").strip(" ")


def parse_number(reply: str) -> float:
    """A finite SCPI number (NR1, NR2 or NR3: ``25``, ``25.04``, ``2.504E+01``)."""
    text = _strip_reply(reply)
    if not _NUMBER.fullmatch(text):
        raise ReplyFormatError(reply, "a decimal number")
    value = float(text)
    if not math.isfinite(value) or abs(value) >= _SCPI_SENTINEL:
        raise ReplyFormatError(reply, "a finite number (SCPI 9.9E37 marks overflow / NaN)")
    return value


def parse_int(reply: str) -> int:
    """A whole number such as ``*ESR?`` returns (``32``)."""
    text = _strip_reply(reply)
    if not _INTEGER.fullmatch(text) or len(text) > 12:
        raise ReplyFormatError(reply, "a whole number")
    return int(text)


def parse_opc(reply: str) -> None:
    """``*OPC?`` answers ``1`` once the pending operation is complete."""
    if _strip_reply(reply) != "1":
        raise ReplyFormatError(reply, "'1' (operation complete)")


def parse_idn(reply: str) -> IdnReply:
    """``HEMOTEC,ABS-96,<serial>,<firmware>``: exactly four comma-separated fields."""
    text = _strip_reply(reply)
    fields = [f.strip() for f in text.split(",")]
    if len(fields) != 4 or not all(fields[:2]) or not text.isprintable():
        raise ReplyFormatError(reply, "an IEEE 488.2 identity 'manufacturer,model,serial,firmware'")
    return IdnReply(*fields)


def format_error_entry(code: int, message: str) -> str:
    """``-113,"Undefined header"`` (a double quote inside the message is doubled)."""
    return f'{code},"{message.replace(chr(34), chr(34) * 2)}"'


def parse_error_entry(reply: str) -> ErrorEntry:
    """One ``SYST:ERR?`` reply: ``<code>,"<message>"``, e.g. ``0,"No error"``."""
    match = _ERROR_ENTRY.fullmatch(reply.rstrip("\r\n"))
    if match is None:
        raise ReplyFormatError(reply, 'an error-queue entry like -113,"Undefined header"')
    return ErrorEntry(int(match.group(1)), match.group(2).replace('""', '"'))


def error_class(code: int) -> str:
    """The SCPI class of an error code: command, execution, device-specific, query, none."""
    if code == NO_ERROR:
        return "none"
    if -199 <= code <= -100:
        return "command error"
    if -299 <= code <= -200:
        return "execution error"
    if -499 <= code <= -400:
        return "query error"
    return "device-specific error"


def esr_bit_for_error(code: int) -> int:
    """The ``*ESR?`` bit an error sets (0 for no error)."""
    return {
        "none": 0,
        "command error": ESR_CME,
        "execution error": ESR_EXE,
        "query error": ESR_QYE,
        "device-specific error": ESR_DDE,
    }[error_class(code)]


def decode_esr(value: int) -> tuple[str, ...]:
    """Names of the bits set in an ``*ESR?`` value, lowest bit first."""
    if not 0 <= value <= 255:
        raise ValueError(f"*ESR? value {value} is outside 0–255")
    return tuple(name for bit, name in ESR_BITS.items() if value & bit)


def parse_wavelengths(reply: str) -> tuple[int, ...]:
    """``CONF:WAV?`` → ``(492, 650)``: one or two distinct wavelengths in range."""
    text = _strip_reply(reply)
    parts = [p.strip() for p in text.split(",")]
    expected = f"one or two wavelengths {MIN_WAVELENGTH_NM}–{MAX_WAVELENGTH_NM} nm like '492,650'"
    if not 1 <= len(parts) <= MAX_WAVELENGTHS or not all(_INTEGER.fullmatch(p) for p in parts):
        raise ReplyFormatError(reply, expected)
    values = tuple(int(p) for p in parts)
    if len(set(values)) != len(values) or any(wavelength_problem(nm) for nm in values):
        raise ReplyFormatError(reply, expected)
    return values


def parse_plate(reply: str, expected_count: int = N_WELLS) -> list[float]:
    """``FETC:PLAT?`` → 96 finite absorbances, A1 … H12 row-major.

    Raises :class:`PlateLengthError` (with ``count``) for a short or long plate and
    :class:`ReplyFormatError` naming the first bad well for a value that is not a finite
    number.
    """
    text = _strip_reply(reply)
    parts = text.split(",") if text else []
    if len(parts) != expected_count:
        raise PlateLengthError(reply, len(parts), expected_count)
    names = well_names() if expected_count == N_WELLS else None
    values: list[float] = []
    for i, part in enumerate(parts):
        try:
            values.append(parse_number(part))
        except ReplyFormatError:
            where = names[i] if names is not None else f"value {i + 1}"
            raise ReplyFormatError(
                reply, f"a plate of finite absorbances ({where} is {part.strip()[:20]!r})"
            ) from None
    return values


def format_plate(values: list[float] | tuple[float, ...]) -> str:
    """The ``FETC:PLAT?`` reply: absorbances with 4 decimals, comma-separated."""
    return ",".join(f"{v:.4f}" for v in values)
