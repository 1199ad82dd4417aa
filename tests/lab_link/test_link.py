"""The host's E1381 link layer (drivers.astm.AstmLink) against scripted analyzers: exact bytes
for acknowledgements, NAKs, retransmissions, timeouts and contention."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from drivers.astm import AstmLink, AstmSendError, AstmTimeoutError, AstmTimings
from drivers.transport import LinkLostError
from drivers.wire import astm as wire
from tests.lab_link.scripted import ScriptedPeer, Step

ENQ, ACK, NAK, EOT = wire.ENQ, wire.ACK, wire.NAK, wire.EOT
FAST = AstmTimings().scaled(0.01)  # 150 ms establishment/ACK, 300 ms frame wait, 200 ms backoff

RECORDS = [
    "H|\\^&|||HEMA^1.0|||||||P|LIS2-A2|20240501120000",
    "P|1",
    "O|1|S-000001||^^^PLT|||||||||||||||||||||F",
    "R|1|^^^PLT|182|10*9/L||N||F||||20240501120000",
    "L|1|N",
]
FRAMES = wire.frames_for_records(RECORDS)


def _bad(frame: bytes) -> bytes:
    """The frame with a wrong checksum."""
    return frame[:-4] + (b"00" if frame[-4:-2] != b"00" else b"01") + frame[-2:]


def _link(script: Sequence[Step], timings: AstmTimings = FAST) -> tuple[AstmLink, ScriptedPeer]:
    peer = ScriptedPeer(script)
    return AstmLink(peer, timings=timings), peer


def _receiving(frames: Sequence[bytes]) -> list[Step]:
    steps: list[Step] = [("peer", ENQ), ("host", ACK)]
    for frame in frames:
        steps += [("peer", frame), ("host", ACK)]
    return [*steps, ("peer", EOT)]


def test_receives_a_message_with_exact_acknowledgements() -> None:
    link, peer = _link(_receiving(FRAMES))
    transfer = link.receive(1.0)
    assert transfer is not None
    assert transfer.records == tuple(RECORDS)
    assert (transfer.ended, transfer.frames, transfer.naks) == ("eot", 5, 0)
    peer.assert_done()


def test_bad_checksum_is_naked_and_the_retransmission_accepted() -> None:
    script: list[Step] = [
        ("peer", ENQ),
        ("host", ACK),
        ("peer", FRAMES[0]),
        ("host", ACK),
        ("peer", _bad(FRAMES[1])),
        ("host", NAK),
        ("peer", FRAMES[1]),
        ("host", ACK),
    ]
    for frame in FRAMES[2:]:
        script += [("peer", frame), ("host", ACK)]
    script.append(("peer", EOT))
    link, peer = _link(script)
    transfer = link.receive(1.0)
    assert transfer is not None and transfer.records == tuple(RECORDS)
    assert transfer.naks == 1 and link.stats.naks_sent == 1
    assert [d for d, _ in link.transcript].count(">") == 7  # ACK ENQ, 5 × ACK, 1 × NAK
    assert (">", NAK) in link.transcript
    peer.assert_done()


def test_repeated_frame_is_acknowledged_once_more_but_not_duplicated() -> None:
    script: list[Step] = [("peer", ENQ), ("host", ACK)]
    for frame in (FRAMES[0], FRAMES[1], FRAMES[1], *FRAMES[2:]):
        script += [("peer", frame), ("host", ACK)]
    script.append(("peer", EOT))
    link, peer = _link(script)
    transfer = link.receive(1.0)
    assert transfer is not None and transfer.records == tuple(RECORDS)
    assert link.stats.duplicate_frames == 1
    peer.assert_done()


def test_wrong_frame_number_is_naked() -> None:
    out_of_order = wire.encode_frame(3, b"P|1\r", final=True)
    script: list[Step] = [
        ("peer", ENQ),
        ("host", ACK),
        ("peer", FRAMES[0]),
        ("host", ACK),
        ("peer", out_of_order),
        ("host", NAK),
        ("peer", FRAMES[1]),
        ("host", ACK),
        ("peer", EOT),
    ]
    link, peer = _link(script)
    transfer = link.receive(1.0)
    assert transfer is not None and transfer.records == tuple(RECORDS[:2])
    peer.assert_done()


def test_receiver_timeout_ends_the_transfer_and_drops_a_half_record() -> None:
    first_half = wire.encode_frame(2, b"P|1|", final=False)
    script: list[Step] = [
        ("peer", ENQ),
        ("host", ACK),
        ("peer", FRAMES[0]),
        ("host", ACK),
        ("peer", first_half),
        ("host", ACK),
    ]
    link, peer = _link(script)
    started = time.monotonic()
    transfer = link.receive(1.0)
    waited = time.monotonic() - started
    assert transfer is not None and transfer.ended == "timeout"
    assert transfer.records == (RECORDS[0],)
    assert waited >= FAST.frame_s
    assert link.stats.dropped_partial_records == 1 and link.stats.receive_timeouts == 1
    peer.assert_done()


def test_nothing_outside_a_transfer_is_answered() -> None:
    link, peer = _link([("peer", FRAMES[0] + ACK + EOT)])
    assert link.receive(0.05) is None
    peer.assert_done()


def test_link_loss_mid_transfer_returns_what_was_complete() -> None:
    script: list[Step] = [("peer", ENQ), ("host", ACK), ("peer", FRAMES[0]), ("host", ACK)]
    link, peer = _link(script)
    peer.disconnect_at_end()
    transfer = link.receive(1.0)
    assert transfer is not None and transfer.ended == "link-lost"
    assert transfer.records == (RECORDS[0],)
    with pytest.raises(LinkLostError):
        link.receive(0.1)


def _sending(frames: Sequence[bytes]) -> list[Step]:
    steps: list[Step] = [("host", ENQ), ("peer", ACK)]
    for frame in frames:
        steps += [("host", frame), ("peer", ACK)]
    return [*steps, ("host", EOT)]


def test_sends_a_message() -> None:
    link, peer = _link(_sending(FRAMES))
    link.send(RECORDS)
    peer.assert_done()
    assert link.stats.frames_sent == 5 and link.stats.transfers_sent == 1


def test_naked_frame_is_sent_again() -> None:
    script: list[Step] = [
        ("host", ENQ),
        ("peer", ACK),
        ("host", FRAMES[0]),
        ("peer", NAK),
        ("host", FRAMES[0]),
        ("peer", b"?"),  # line noise before the reply is skipped
        ("peer", NAK),
        ("host", FRAMES[0]),
        ("peer", ACK),
    ]
    for frame in FRAMES[1:]:
        script += [("host", frame), ("peer", ACK)]
    script.append(("host", EOT))
    link, peer = _link(script)
    link.send(RECORDS)
    peer.assert_done()
    assert link.stats.retransmissions == 2 and link.stats.naks_received == 2


def test_six_retransmissions_then_the_sender_gives_up_with_eot() -> None:
    script: list[Step] = [("host", ENQ), ("peer", ACK)]
    for _ in range(7):
        script += [("host", FRAMES[0]), ("peer", NAK)]
    script.append(("host", EOT))
    link, peer = _link(script)
    with pytest.raises(AstmSendError, match="7 times"):
        link.send(RECORDS)
    peer.assert_done()
    assert link.stats.retransmissions == 6


def test_no_ack_within_the_timeout_ends_the_transfer() -> None:
    link, peer = _link([("host", ENQ), ("peer", ACK), ("host", FRAMES[0]), ("host", EOT)])
    started = time.monotonic()
    with pytest.raises(AstmTimeoutError, match="did not acknowledge frame 1"):
        link.send(RECORDS)
    assert time.monotonic() - started >= FAST.ack_s
    peer.assert_done()


def test_no_answer_to_enq() -> None:
    link, peer = _link([("host", ENQ), ("host", EOT)])
    with pytest.raises(AstmTimeoutError, match="did not answer ENQ"):
        link.send(RECORDS)
    peer.assert_done()


def test_busy_receiver_is_asked_again_after_the_busy_delay() -> None:
    script: list[Step] = [("host", ENQ), ("peer", NAK), *_sending(FRAMES)]
    link, peer = _link(script)
    started = time.monotonic()
    link.send(RECORDS)
    assert time.monotonic() - started >= FAST.busy_retry_s
    assert link.stats.busy_replies == 1
    peer.assert_done()


def test_contention_the_analyzer_goes_first_and_the_host_backs_off() -> None:
    """Both send ENQ: the host receives the analyzer's transfer, waits ≥ the backoff (20 s by
    the standard), then sends; the analyzer's records are returned by the next receive()."""
    theirs = wire.frames_for_records(["H|\\^&", "L|1|N"])
    script: list[Step] = [("host", ENQ), ("peer", ENQ)]
    script += _receiving(theirs)  # the analyzer's ENQ, ACK, its frames, EOT
    script += _sending(FRAMES)
    link, peer = _link(script)
    started = time.monotonic()
    link.send(RECORDS)
    assert time.monotonic() - started >= FAST.contention_backoff_s
    peer.assert_done()
    assert link.stats.contentions == 1
    transfer = link.receive(0.0)
    assert transfer is not None and transfer.records == ("H|\\^&", "L|1|N")


def test_a_receiver_interrupt_request_is_accepted_like_an_ack() -> None:
    script: list[Step] = [("host", ENQ), ("peer", ACK), ("host", FRAMES[0]), ("peer", EOT)]
    for frame in FRAMES[1:]:
        script += [("host", frame), ("peer", ACK)]
    script.append(("host", EOT))
    link, peer = _link(script)
    link.send(RECORDS)
    peer.assert_done()
    assert link.stats.interrupt_requests == 1


def test_timings_must_be_positive_and_scale() -> None:
    with pytest.raises(ValueError, match="frame_s"):
        AstmTimings(frame_s=0)
    assert AstmTimings().scaled(0.5).contention_backoff_s == 10.0
    assert AstmTimings() == AstmTimings(15.0, 15.0, 30.0, 20.0, 10.0, 6, 6)


def test_a_new_enq_inside_a_transfer_restarts_it() -> None:
    script: list[Step] = [("peer", ENQ), ("host", ACK), ("peer", FRAMES[0]), ("host", ACK)]
    script += _receiving(FRAMES)
    link, peer = _link(script)
    first = link.receive(1.0)
    assert first is not None and first.ended == "restarted" and first.records == (RECORDS[0],)
    second = link.receive(1.0)
    assert second is not None and second.ended == "eot" and second.records == tuple(RECORDS)
    peer.assert_done()
    assert [t for d, t in link.transcript if d == "<"].count(ENQ) == 2
