"""TEM-4 message codec: every frame type both ways, and the field checks of decode()."""

from __future__ import annotations

import pytest

from drivers.wire.framing import ChecksumError, Frame, MalformedFrameError, encode_frame
from drivers.wire.tem4 import (
    ASSAYS,
    CHANNELS,
    ERROR_CODES,
    SEQ_BUFFER,
    DataFrame,
    ErrorReplyFrame,
    EventFrame,
    HeartbeatFrame,
    ReplyFrame,
    decode,
    encode_data,
    encode_error_reply,
    encode_event,
    encode_heartbeat,
    encode_reply,
    parse_line,
)


def test_constants() -> None:
    assert CHANNELS == 4
    assert SEQ_BUFFER == 65536
    assert "NATEM" in ASSAYS and "FIBTEM" in ASSAYS
    assert ERROR_CODES[4] == "sequence number no longer buffered"


def test_data_frame() -> None:
    line = encode_data(2, 1, 0, 0)
    assert line == b"$D,2,1,0,0*47\r\n"
    frame = parse_line(line)
    assert frame == DataFrame(seq=2, channel=1, t_ms=0, amp_centi_mm=0)
    assert parse_line(encode_data(9, 3, 1500, 5512)).amp_mm == pytest.approx(55.12)


def test_event_frame_text_may_hold_commas() -> None:
    frame = parse_line(encode_event(7, 0, "FAULT", "heater, zone 2"))
    assert frame == EventFrame(seq=7, channel=0, code="FAULT", text="heater, zone 2")


def test_heartbeat_frame() -> None:
    line = encode_heartbeat(3, 184200, 3701, "RUN")
    assert line == b"$H,3,184200,3701,RUN*38\r\n"
    frame = parse_line(line)
    assert frame == HeartbeatFrame(seq=3, device_ms=184200, temp_centi_c=3701, state="RUN")
    assert isinstance(frame, HeartbeatFrame)
    assert frame.temp_c == pytest.approx(37.01)


def test_reply_frames() -> None:
    assert parse_line(encode_reply("*IDN?", "HEMOTEC", "TEM-4", "T4-1", "2.1.0")) == ReplyFrame(
        "*IDN?", ("HEMOTEC", "TEM-4", "T4-1", "2.1.0")
    )
    assert parse_line(b"$R,TEMP 37.00,OK*50") == ReplyFrame("TEMP 37.00", ("OK",))
    assert parse_line(encode_reply("CH1:STOP")) == ReplyFrame("CH1:STOP", ())


def test_error_reply_frame() -> None:
    line = encode_error_reply("RATE 20", 3, "channel 1 is measuring")
    assert line == b"$R,RATE 20,ERR,3,channel 1 is measuring*11\r\n"
    assert parse_line(line) == ErrorReplyFrame("RATE 20", 3, "channel 1 is measuring")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (encode_frame("D", 1, 2, 3), "exactly 4 fields"),
        (encode_frame("D", 1, 2, 3, 4, 5), "exactly 4 fields"),
        (encode_frame("D", 1, "x", 3, 4), "non-integer"),
        (encode_frame("D", 1, 2, 3.5, 4), "non-integer"),
        (encode_frame("H", 1, 2, 3), "exactly 4 fields"),
        (encode_frame("H", "a", 2, 3, "RUN"), "non-integer"),
        (encode_frame("E", 1, 2, "X"), "needs 4 fields"),
        (encode_frame("E", "one", 2, "X", "t"), "non-integer"),
        (encode_frame("R"), "no command"),
        (encode_frame("R", "TEMP 50", "ERR"), "no code"),
        (encode_frame("R", "TEMP 50", "ERR", "x", "bad"), "not an integer"),
        (encode_frame("Q", 1), "unknown frame type 'Q'"),
    ],
)
def test_decode_rejects(line: bytes, reason: str) -> None:
    with pytest.raises(MalformedFrameError, match=reason):
        parse_line(line)


def test_parse_line_checks_checksum_first() -> None:
    with pytest.raises(ChecksumError):
        parse_line(b"$D,2,1,0,0*00")


def test_decode_of_a_frame_object() -> None:
    assert decode(Frame("D", ("5", "2", "100", "7"))) == DataFrame(5, 2, 100, 7)
