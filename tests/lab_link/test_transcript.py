"""The example transcript in docs/protocols/astm.md, replayed byte for byte against the host's
link layer."""

from __future__ import annotations

from pathlib import Path

from drivers.astm import AstmLink, AstmTimings
from drivers.wire import astm as wire
from tests.lab_link.scripted import ScriptedPeer, Step, control_names

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocols" / "astm.md"


def transcript_steps() -> list[Step]:
    section = DOC.read_text(encoding="utf-8").split("## Example transcript", 1)[1]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    steps: list[Step] = []
    for line in block.splitlines():
        who, _, text = line.partition("  ")
        assert who in ("A", "H"), f"unexpected transcript line {line!r}"
        steps.append(("peer" if who == "A" else "host", control_names(text)))
    return steps


def test_transcript_matches_the_link_layer() -> None:
    steps = transcript_steps()
    assert len(steps) == 19
    peer = ScriptedPeer(steps)
    link = AstmLink(peer, timings=AstmTimings().scaled(0.01))
    transfer = link.receive(1.0)
    peer.assert_done()
    assert transfer is not None and transfer.ended == "eot" and transfer.naks == 1
    records = wire.decode_message(transfer.records)
    assert [getattr(r, "TYPE", "?") for r in records] == ["H", "P", "O", "R", "R", "R", "L"]
    plt = records[3]
    assert isinstance(plt, wire.ResultRecord)
    assert (plt.code, plt.value, plt.units) == ("PLT", "182", "10*9/L")


def test_the_documented_message_is_what_the_simulator_sends() -> None:
    from datetime import datetime

    from simulators.hematology import CbcResult, cbc_message

    section = DOC.read_text(encoding="utf-8").split("### A complete blood count", 1)[1]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    result = CbcResult(
        "S-000012", {"PLT": 182, "WBC": 6.4, "HGB": 141}, datetime(2024, 5, 1, 11, 58)
    )
    assert cbc_message(result, "M00001", datetime(2024, 5, 1, 12, 0)) == block.splitlines()
