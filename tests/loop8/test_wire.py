"""The LOOP-8 wire codec: exact bytes, typed messages, round trips, and no crash on any input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import drivers.wire.loop8 as loop8
import drivers.wire.tem4 as tem4
from drivers.wire.framing import ChecksumError, FrameError, MalformedFrameError
from drivers.wire.loop8 import (
    ErrorReplyFrame,
    EventFrame,
    HeartbeatFrame,
    LoopFrame,
    ReplyFrame,
    encode_error_reply,
    encode_event,
    encode_heartbeat,
    encode_loop,
    encode_reply,
    parse_line,
)

MESSAGE_TYPES = (LoopFrame, EventFrame, HeartbeatFrame, ReplyFrame, ErrorReplyFrame)
PROPS = settings(database=None, max_examples=300, deadline=None)
u32 = st.integers(min_value=0, max_value=2**32 - 1)
word = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1).filter(
    lambda s: "," not in s
)
text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"$L,2,1,0,1000*7E\r\n", LoopFrame(2, 1, 0, 1000)),
        (b"$L,13,1,2000,996*4B", LoopFrame(13, 1, 2000, 996)),
        (b"$E,3,3,EMPTY,no blood detected*7D\r\n", EventFrame(3, 3, "EMPTY", "no blood detected")),
        (b"$H,10,86401000,3702,RUN*0D\r\n", HeartbeatFrame(10, 86401000, 3702, "RUN")),
        (b"$R,ROT?,30*27\r\n", ReplyFrame("ROT?", ("30",))),
        (
            b"$R,ROT 20,ERR,3,cannot change the speed while the rotor turns*72\r\n",
            ErrorReplyFrame("ROT 20", 3, "cannot change the speed while the rotor turns"),
        ),
    ],
)
def test_documented_lines_decode_to_typed_messages(line: bytes, message: object) -> None:
    assert parse_line(line) == message


def test_encoders_produce_the_documented_bytes() -> None:
    assert encode_loop(2, 1, 0, 1000) == b"$L,2,1,0,1000*7E\r\n"
    assert encode_event(15, 1, "STOP", "host") == b"$E,15,1,STOP,host*68\r\n"
    assert encode_heartbeat(10, 86401000, 3702, "RUN") == b"$H,10,86401000,3702,RUN*0D\r\n"
    assert encode_reply("*IDN?", "HEMOTEC", "LOOP-8", "L8-000042", "1.0.3") == (
        b"$R,*IDN?,HEMOTEC,LOOP-8,L8-000042,1.0.3*11\r\n"
    )
    assert encode_error_reply("ROT 0", 2, "rpm must be a whole number from 1 to 60") == (
        b"$R,ROT 0,ERR,2,rpm must be a whole number from 1 to 60*0A\r\n"
    )


def test_loop_frame_helpers() -> None:
    frame = parse_line(b"$L,2,1,0,1000*7E")
    assert isinstance(frame, LoopFrame) and frame.motion_fraction == 1.0
    assert LoopFrame(1, 8, 0, 250).motion_fraction == 0.25
    assert loop8.LOOPS == 8 and loop8.BAUDRATE == 57600
    assert (loop8.MIN_RPM, loop8.MAX_RPM, loop8.DEFAULT_RPM) == (1, 60, 30)
    assert (loop8.MIN_RATE_HZ, loop8.MAX_RATE_HZ, loop8.DEFAULT_RATE_HZ) == (1, 10, 1)


def test_shared_messages_are_the_same_classes_as_the_tem4s() -> None:
    for name in ("EventFrame", "HeartbeatFrame", "ReplyFrame", "ErrorReplyFrame"):
        assert getattr(loop8, name) is getattr(tem4, name)
    assert loop8.ERROR_CODES is tem4.ERROR_CODES and loop8.SEQ_BUFFER == tem4.SEQ_BUFFER == 65536


def test_each_instrument_rejects_the_others_data_frames() -> None:
    with pytest.raises(MalformedFrameError, match="unknown frame type 'D'"):
        parse_line(tem4.encode_data(1, 1, 0, 0))
    with pytest.raises(MalformedFrameError, match="unknown frame type 'L'"):
        tem4.parse_line(encode_loop(1, 1, 0, 1000))


@pytest.mark.parametrize(
    ("line", "error", "reason"),
    [
        (b"$L,2,1,0,1000*7F", ChecksumError, "checksum mismatch"),
        (b"L,2,1,0,1000*7E", MalformedFrameError, r"does not start with '\$'"),
        (b"$L,2,1,0,1000", MalformedFrameError, r"does not end with '\*HH'"),
    ],
)
def test_bad_lines_raise_frame_errors(line: bytes, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        parse_line(line)


def test_wrong_field_counts_are_malformed() -> None:
    from drivers.wire.framing import encode_frame

    with pytest.raises(MalformedFrameError, match="'L' frame needs exactly 4 fields"):
        parse_line(encode_frame("L", 1, 1, 0))
    with pytest.raises(MalformedFrameError, match="non-integer"):
        parse_line(encode_frame("L", 1, 1, 0, "free"))


@PROPS
@given(st.binary(max_size=120))
def test_parse_line_raises_only_frame_errors(data: bytes) -> None:
    try:
        message = parse_line(data)
    except FrameError:
        return
    assert isinstance(message, MESSAGE_TYPES)


@PROPS
@given(st.binary(max_size=60))
def test_parse_line_on_checksummed_garbage(body: bytes) -> None:
    checksum = 0
    for b in body:
        checksum ^= b
    try:
        message = parse_line(b"$" + body + b"*%02X\r\n" % checksum)
    except FrameError:
        return
    assert isinstance(message, MESSAGE_TYPES)


@PROPS
@given(st.sampled_from(b"LEHR"), st.lists(st.sampled_from([b"1", b"-2", b"x", b"", b"OK", b"ERR"])))
def test_parse_line_on_plausible_frames(kind: int, fields: list[bytes]) -> None:
    body = b",".join([bytes([kind]), *fields])
    checksum = 0
    for b in body:
        checksum ^= b
    try:
        message = parse_line(b"$" + body + b"*%02X" % checksum)
    except FrameError:
        return
    assert isinstance(message, MESSAGE_TYPES)


@PROPS
@given(u32, st.integers(0, 8), u32, st.integers(0, 1000))
def test_loop_round_trip(seq: int, loop: int, t_ms: int, motion: int) -> None:
    assert parse_line(encode_loop(seq, loop, t_ms, motion)) == LoopFrame(seq, loop, t_ms, motion)


@PROPS
@given(u32, st.integers(0, 8), word, text)
def test_event_round_trip(seq: int, loop: int, code: str, body: str) -> None:
    assert parse_line(encode_event(seq, loop, code, body)) == EventFrame(seq, loop, code, body)


@PROPS
@given(u32, u32, st.integers(-5000, 20000), word)
def test_heartbeat_round_trip(seq: int, device_ms: int, temp: int, state: str) -> None:
    expected = HeartbeatFrame(seq, device_ms, temp, state)
    assert parse_line(encode_heartbeat(seq, device_ms, temp, state)) == expected


@PROPS
@given(word, st.lists(word.filter(lambda s: s != "ERR"), max_size=10))
def test_reply_round_trip(command: str, values: list[str]) -> None:
    assert parse_line(encode_reply(command, *values)) == ReplyFrame(command, tuple(values))


@PROPS
@given(word, st.integers(1, 99), text)
def test_error_reply_round_trip(command: str, code: int, body: str) -> None:
    expected = ErrorReplyFrame(command, code, body)
    assert parse_line(encode_error_reply(command, code, body)) == expected
