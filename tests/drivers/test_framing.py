"""NMEA-style framing: checksums, encoding and every way a line can be malformed."""

from __future__ import annotations

import re

import pytest

from drivers.wire.framing import (
    ChecksumError,
    Frame,
    FrameError,
    MalformedFrameError,
    encode_frame,
    parse_frame,
    xor_checksum,
)


def test_xor_checksum_of_worked_example() -> None:
    assert xor_checksum(b"D,2,1,0,0") == 0x47
    assert xor_checksum(b"") == 0


def test_encode_frame_exact_bytes() -> None:
    assert encode_frame("D", 2, 1, 0, 0) == b"$D,2,1,0,0*47\r\n"


@pytest.mark.parametrize(
    ("kind", "fields"),
    [("D", ("2", "1", "0", "0")), ("H", ("3", "184200", "3701", "RUN")), ("X", ())],
)
def test_round_trip(kind: str, fields: tuple[str, ...]) -> None:
    assert parse_frame(encode_frame(kind, *fields)) == Frame(kind, fields)


def test_parse_accepts_line_without_terminator_and_lowercase_hex() -> None:
    assert parse_frame(b"$R,*IDN?,HEMOTEC,TEM-4,T4-000123,2.1.0*4e").kind == "R"


def test_idn_echo_uses_last_star() -> None:
    line = b"$R,*IDN?,HEMOTEC,TEM-4,T4-000123,2.1.0*4E\r\n"
    frame = parse_frame(line)
    assert frame == Frame("R", ("*IDN?", "HEMOTEC", "TEM-4", "T4-000123", "2.1.0"))
    # The checksum covers the echoed '*': computing it only up to the first '*' fails.
    assert xor_checksum(b"R,*IDN?,HEMOTEC,TEM-4,T4-000123,2.1.0") == 0x4E
    assert xor_checksum(b"R,") != 0x4E


def test_bad_checksum() -> None:
    with pytest.raises(ChecksumError, match=r"checksum mismatch \(frame says 48\)") as info:
        parse_frame(b"$D,2,1,0,0*48\r\n")
    assert info.value.raw == b"$D,2,1,0,0*48\r\n"
    assert isinstance(info.value, FrameError)


def test_single_flipped_bit_is_detected() -> None:
    good = encode_frame("D", 1234, 2, 5600, 4321)
    for i in range(1, len(good) - 5):
        bad = bytearray(good)
        bad[i] ^= 0x01
        with pytest.raises(FrameError):
            parse_frame(bytes(bad))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"D,2,1,0,0*47", "does not start with '$'"),
        (b"", "does not start with '$'"),
        (b"$D*", "too short"),
        (b"$D,2,1,0,0", "does not end with '*HH'"),
        (b"$D,2,1,0,0*4", "does not end with '*HH'"),
        (b"$D,2,1,0,0*477", "does not end with '*HH'"),
        (b"$*4700", "does not end with '*HH'"),
        (b"$D,2,1,0,0*G7", "not two hex digits"),
        (b"$D,2,1,0,0*4 ", "not two hex digits"),
        (b"$,1*1D", "no type"),
    ],
)
def test_malformed(line: bytes, reason: str) -> None:
    with pytest.raises(MalformedFrameError, match=re.escape(reason)):
        parse_frame(line)


def test_non_ascii_with_valid_checksum_is_malformed() -> None:
    body = "D,1,1,0,\u00e9".encode("latin-1")
    line = b"$" + body + b"*%02X" % xor_checksum(body)
    with pytest.raises(MalformedFrameError, match="non-ASCII") as info:
        parse_frame(line)
    assert "\\xe9" in str(info.value)


def test_error_message_shows_raw_bytes_truncated() -> None:
    with pytest.raises(MalformedFrameError) as info:
        parse_frame(b"garbage" * 40)
    assert len(str(info.value)) < 140
    assert "garbage" in str(info.value)
