"""The example transcript in docs/protocols/loop8.md, replayed byte for byte against the driver.

Every ``>`` line must be exactly what Loop8Driver writes, every ``<`` line a valid frame, and
the data the driver delivers must be the transcript's frames in seq order.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drivers.loop8 import InstrumentError, Loop8Driver, StreamItem
from drivers.sequenced import LinkNotice
from drivers.testing import Pair, expected_protocol
from drivers.wire.framing import parse_frame
from drivers.wire.loop8 import (
    ErrorReplyFrame,
    EventFrame,
    HeartbeatFrame,
    LoopFrame,
    ReplyFrame,
    parse_line,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocols" / "loop8.md"


def transcript_lines() -> list[tuple[str, str]]:
    """The ``(direction, text)`` lines of the fenced ``transcript`` block of the protocol page."""
    match = re.search(r"^```transcript\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)
    assert match, f"{DOC} has no ```transcript block"
    lines = []
    for number, raw in enumerate(match.group(1).splitlines(), 1):
        assert raw[:2] in ("> ", "< "), f"transcript line {number} must start '> ' or '< ': {raw!r}"
        lines.append((raw[0], raw[2:]))
    return lines


def to_pairs(lines: list[tuple[str, str]]) -> list[Pair]:
    """A command takes the first device line after it as its reply; the rest are unsolicited."""
    pairs: list[Pair] = []
    awaiting_reply = False
    for direction, text in lines:
        data = text.encode("ascii")
        if direction == ">":
            pairs.append((data + b"\r\n", None))
            awaiting_reply = True
        elif awaiting_reply:
            pairs[-1] = (pairs[-1][0], data + b"\r\n")
            awaiting_reply = False
        else:
            pairs.append((None, data + b"\r\n"))
    return pairs


def perform(driver: Loop8Driver, command: str) -> object:
    """Call the driver method that sends ``command`` (REPLAY is sent by the driver itself)."""
    calls = [
        (r"\*IDN\?", lambda m: driver.identify()),
        (r"STATUS\?", lambda m: driver.status()),
        (r"ROT\?", lambda m: driver.rpm()),
        (r"ROT (\d+)", lambda m: driver.set_rpm(int(m[1]))),
        (r"RATE (\d+)", lambda m: driver.set_rate(int(m[1]))),
        (r"START", lambda m: driver.start()),
        (r"STOP", lambda m: driver.stop()),
        (r"REPLAY (\d+)", lambda m: driver.poll()),  # reading the gap makes the driver ask
    ]
    for pattern, call in calls:
        if match := re.fullmatch(pattern, command):
            return call(match)
    raise AssertionError(f"the transcript uses a command the test does not know: {command!r}")


def test_every_device_line_is_a_valid_frame() -> None:
    device_lines = [text for direction, text in transcript_lines() if direction == "<"]
    assert len(device_lines) >= 20
    for text in device_lines:
        parse_frame(text.encode("ascii"))  # checks the checksum
        parse_line(text.encode("ascii"))  # and the fields of its type


def test_transcript_covers_the_documented_exchanges() -> None:
    commands = {text.split()[0] for direction, text in transcript_lines() if direction == ">"}
    assert {"*IDN?", "STATUS?", "ROT", "ROT?", "RATE", "START", "STOP", "REPLAY"} <= commands
    kinds = [parse_line(text.encode()) for d, text in transcript_lines() if d == "<"]
    for kind in (LoopFrame, EventFrame, HeartbeatFrame, ReplyFrame, ErrorReplyFrame):
        assert any(isinstance(k, kind) for k in kinds), kind


def test_transcript_replays_against_driver() -> None:
    lines = transcript_lines()
    delivered: list[StreamItem] = []
    with expected_protocol(Loop8Driver, to_pairs(lines)) as driver:
        for index, (direction, text) in enumerate(lines):
            if direction != ">":
                continue
            reply = lines[index + 1][1] if index + 1 < len(lines) else ""
            refused = ",ERR," in reply and not text.startswith("REPLAY")
            if refused:
                with pytest.raises(InstrumentError) as info:
                    perform(driver, text)
                assert info.value.command == text
            else:
                result = perform(driver, text)
                if text.startswith("REPLAY"):
                    assert isinstance(result, list)
                    delivered.extend(result)
        delivered.extend(driver.poll())

    device = [parse_line(text.encode()) for direction, text in lines if direction == "<"]
    frames = {m.seq: m for m in device if isinstance(m, LoopFrame | EventFrame)}
    got = [i for i in delivered if isinstance(i, LoopFrame | EventFrame)]
    assert [i.seq for i in got] == sorted(frames) == list(range(1, 17))
    assert got == [frames[s] for s in sorted(frames)]
    heartbeats = [m for m in device if isinstance(m, HeartbeatFrame)]
    assert [i for i in delivered if isinstance(i, HeartbeatFrame)] == heartbeats
    assert {i.kind for i in delivered if isinstance(i, LinkNotice)} == {"gap"}
