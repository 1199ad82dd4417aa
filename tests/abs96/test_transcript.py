"""The example transcript in docs/protocols/abs96.md, replayed byte for byte against the driver."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.abs96 import Abs96Reader, ReaderError
from drivers.testing import Pair, expected_protocol
from drivers.wire.scpi import parse_plate

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocols" / "abs96.md"


def _unescape(text: str) -> bytes:
    return text.replace("\\n", "\n").encode("ascii")


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
    assert len(pairs) == 17
    plates = {
        int(command.split()[-1]): parse_plate(reply.decode())
        for command, reply in pairs
        if command is not None and command.startswith(b"FETC:PLAT?") and isinstance(reply, bytes)
    }
    with expected_protocol(Abs96Reader, pairs, write_terminator=b"\n") as reader:
        reader.reset()
        identity = reader.identify()
        assert (identity.model, identity.serial, identity.firmware) == (
            "ABS-96",
            "A96-0042",
            "1.4.0",
        )
        reader.configure_wavelengths(492, 650)
        assert reader.temperature() == 25.04
        plate = reader.read_plate()
        assert plate == plates
        assert len(plate[492]) == len(plate[650]) == 96
        with pytest.raises(ReaderError) as info:
            reader.read_plate()
        assert (info.value.code, info.value.command) == (201, "INIT")
