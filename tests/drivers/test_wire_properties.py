"""Property tests of the wire codec: no input crashes the parser, encoding round-trips."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.wire.framing import FrameError, encode_frame, parse_frame
from drivers.wire.tem4 import (
    DataFrame,
    ErrorReplyFrame,
    EventFrame,
    HeartbeatFrame,
    ReplyFrame,
    encode_data,
    encode_error_reply,
    encode_event,
    encode_heartbeat,
    parse_line,
)

MESSAGE_TYPES = (DataFrame, EventFrame, HeartbeatFrame, ReplyFrame, ErrorReplyFrame)
PROPS = settings(database=None, max_examples=300, deadline=None)
u32 = st.integers(min_value=0, max_value=2**32 - 1)
word = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1).filter(
    lambda s: "," not in s
)
text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E))


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
    # A correct checksum around arbitrary bytes exercises the field decoding, not just framing.
    checksum = 0
    for b in body:
        checksum ^= b
    try:
        message = parse_line(b"$" + body + b"*%02X\r\n" % checksum)
    except FrameError:
        return
    assert isinstance(message, MESSAGE_TYPES)


@PROPS
@given(u32, st.integers(0, 4), u32, st.integers(0, 10000))
def test_data_round_trip(seq: int, ch: int, t_ms: int, amp: int) -> None:
    assert parse_line(encode_data(seq, ch, t_ms, amp)) == DataFrame(seq, ch, t_ms, amp)


@PROPS
@given(u32, st.integers(0, 4), word, text)
def test_event_round_trip(seq: int, ch: int, code: str, body: str) -> None:
    assert parse_line(encode_event(seq, ch, code, body)) == EventFrame(seq, ch, code, body)


@PROPS
@given(u32, u32, st.integers(-5000, 20000), word)
def test_heartbeat_round_trip(seq: int, device_ms: int, temp: int, state: str) -> None:
    expected = HeartbeatFrame(seq, device_ms, temp, state)
    assert parse_line(encode_heartbeat(seq, device_ms, temp, state)) == expected


@PROPS
@given(word, st.integers(1, 99), text)
def test_error_reply_round_trip(command: str, code: int, body: str) -> None:
    assert parse_line(encode_error_reply(command, code, body)) == ErrorReplyFrame(
        command, code, body
    )


@PROPS
@given(st.lists(word, max_size=6), st.sampled_from("DEHRXY"))
def test_frame_round_trip(fields: list[str], kind: str) -> None:
    frame = parse_frame(encode_frame(kind, *fields))
    assert (frame.kind, frame.fields) == (kind, tuple(fields))
