"""The example transcript in docs/protocols/julabo.md, replayed byte for byte against the driver."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.julabo import JulaboBath
from drivers.testing import Pair, expected_protocol
from tests.julabo.test_driver import FakeClock

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocols" / "julabo.md"


def _unescape(text: str) -> bytes:
    return text.replace("\\r", "\r").replace("\\n", "\n").encode("ascii")


def transcript_pairs() -> list[Pair]:
    """The ``>``/``<`` lines of the doc's transcript as (command, reply) pairs."""
    section = DOC.read_text(encoding="utf-8").split("## Example transcript", 1)[1]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    pairs: list[Pair] = []
    for line in block.splitlines():
        if line.startswith("> "):
            pairs.append((_unescape(line[2:]), None))
        elif line.startswith("< "):
            command, reply = pairs[-1]
            assert reply is None, f"two replies to {command!r} in the transcript"
            pairs[-1] = (command, _unescape(line[2:]))
        else:
            assert line.startswith("#"), f"unexpected transcript line {line!r}"
    return pairs


def test_transcript_matches_the_driver() -> None:
    pairs = transcript_pairs()
    assert len(pairs) == 9
    clock = FakeClock()
    with expected_protocol(
        JulaboBath,
        pairs,
        write_terminator=b"\r",
        reply_timeout=0.02,
        clock=clock,
        sleep=clock.sleep,
    ) as bath:
        assert bath.identify() == "JULABO CORIO CD-200F VERSION 1.0"
        assert bath.status().code == 2
        assert bath.temperature() == 22.41
        assert bath.setpoint() == 25.0
        bath.set_setpoint(37.0)
        bath.start()
        assert bath.running()
        assert bath.check_alarm().code == 3
    assert clock.sleeps == [pytest.approx(0.25), pytest.approx(0.25)]  # before start, running
