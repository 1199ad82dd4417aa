"""Loop8Driver data stream: seq order, duplicates, gaps healed by REPLAY, lost data, corrupt
lines and the reader thread (the machinery is shared with the TEM-4)."""

from __future__ import annotations

import threading
import time

import pytest

from drivers.loop8 import Loop8Driver, StreamItem
from drivers.sequenced import LinkNotice
from drivers.testing import ScriptedTransport, expected_protocol
from drivers.wire.loop8 import (
    EventFrame,
    HeartbeatFrame,
    LoopFrame,
    encode_error_reply,
    encode_event,
    encode_heartbeat,
    encode_loop,
    encode_reply,
)


def lf(seq: int, loop: int = 1) -> bytes:
    """An L frame whose t_ms and motion follow from seq, so each is recognisable."""
    return encode_loop(seq, loop, seq * 1000, 1000 - seq)


def h(seq: int, device_ms: int = 10_000) -> bytes:
    return encode_heartbeat(seq, device_ms, 3700, "RUN")


def seqs(items: list[StreamItem]) -> list[int]:
    return [i.seq for i in items if isinstance(i, LoopFrame | EventFrame)]


def notices(items: list[StreamItem], kind: str) -> list[LinkNotice]:
    return [i for i in items if isinstance(i, LinkNotice) and i.kind == kind]


def test_in_order_frames_are_delivered_typed() -> None:
    pairs = [(None, [encode_event(1, 1, "START", "30 rpm"), lf(2), lf(3, 2), h(3)])]
    with expected_protocol(Loop8Driver, pairs) as loop:
        items = loop.poll()
        assert items == [
            EventFrame(1, 1, "START", "30 rpm"),
            LoopFrame(2, 1, 2000, 998),
            LoopFrame(3, 2, 3000, 997),
            HeartbeatFrame(3, 10_000, 3700, "RUN"),
        ]
        assert loop.next_expected == 4 and loop.stats.frames_ok == 3


def test_gap_is_healed_by_replay_and_duplicates_dropped() -> None:
    pairs = [
        (None, [lf(1), lf(2), lf(4), lf(5)]),
        (b"REPLAY 3\r\n", [encode_reply("REPLAY 3", "OK"), lf(3), lf(4), lf(5), lf(6)]),
    ]
    with expected_protocol(Loop8Driver, pairs) as loop:
        items = loop.poll()
        assert seqs(items) == [1, 2, 3, 4, 5, 6]
        (gap,) = notices(items, "gap")
        assert "seq 3" in gap.detail and "LOOP-8 'loop'" in gap.detail
        stats = loop.stats
        assert (stats.gaps, stats.replays_requested, stats.duplicates) == (1, 1, 2)


def test_heartbeat_reveals_a_lost_tail() -> None:
    pairs = [
        (None, [lf(1), lf(2), h(4)]),
        (b"REPLAY 3\r\n", [encode_reply("REPLAY 3", "OK"), lf(3), lf(4)]),
    ]
    with expected_protocol(Loop8Driver, pairs) as loop:
        assert seqs(loop.poll()) == [1, 2, 3, 4]


def test_refused_replay_reports_the_lost_range() -> None:
    pairs = [
        (None, [lf(1), lf(4)]),
        (b"REPLAY 2\r\n", [encode_error_reply("REPLAY 2", 4, "no longer buffered"), lf(5)]),
    ]
    with expected_protocol(Loop8Driver, pairs) as loop:
        items = loop.poll()
        assert seqs(items) == [1, 4, 5]
        (lost,) = notices(items, "data_lost")
        assert "frames 2–3 (2)" in lost.detail and loop.stats.data_lost == 2


def test_corrupt_line_is_reported_and_its_gap_healed() -> None:
    bad = bytearray(lf(2))
    bad[6] ^= 0x01
    pairs = [
        (None, [lf(1), bytes(bad), lf(3)]),
        (b"REPLAY 2\r\n", [encode_reply("REPLAY 2", "OK"), lf(2), lf(3)]),
    ]
    with expected_protocol(Loop8Driver, pairs) as loop:
        items = loop.poll()
        assert seqs(items) == [1, 2, 3]
        assert "checksum mismatch" in notices(items, "corrupt_frame")[0].detail


def test_a_tem4_data_frame_on_the_port_is_reported_as_corrupt() -> None:
    pairs = [(None, [lf(1), b"$D,2,1,0,0*47", lf(2)])]
    with expected_protocol(Loop8Driver, pairs) as loop:
        items = loop.poll()
        assert seqs(items) == [1, 2]
        assert "unknown frame type 'D'" in notices(items, "corrupt_frame")[0].detail


class Collector:
    def __init__(self) -> None:
        self.items: list[StreamItem] = []
        self._cond = threading.Condition()

    def __call__(self, item: StreamItem) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for_seqs(self, n: int, timeout: float = 2.0) -> list[StreamItem]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(seqs(self.items)) >= n, timeout)
            assert ok, f"timed out; got {self.items!r}"
            return list(self.items)


def test_streaming_delivers_in_order_and_commands_still_work() -> None:
    transport = ScriptedTransport(
        [
            (None, [lf(1), lf(2), lf(4)]),
            (b"REPLAY 3\r\n", [encode_reply("REPLAY 3", "OK"), lf(3), lf(4)]),
            (b"ROT?\r\n", [lf(5), encode_reply("ROT?", "30"), lf(6)]),
        ]
    )
    sink = Collector()
    with Loop8Driver(transport) as loop:
        loop.start_streaming(sink)
        sink.wait_for_seqs(4)
        assert loop.rpm() == 30
        assert seqs(sink.wait_for_seqs(6)) == [1, 2, 3, 4, 5, 6]
        reader = next(t for t in threading.enumerate() if t.name == "loop8-reader-loop")
        assert reader.daemon
        with pytest.raises(RuntimeError, match="streaming"):
            loop.poll()
        started = time.monotonic()
        loop.stop_streaming()
        assert time.monotonic() - started < 0.5 and not reader.is_alive()
    transport.assert_done()


def test_link_lost_ends_the_reader_with_a_notice() -> None:
    transport = ScriptedTransport([(None, [lf(1)])])
    sink = Collector()
    with Loop8Driver(transport) as loop:
        loop.start_streaming(sink)
        sink.wait_for_seqs(1)
        transport.disconnect()
        deadline = time.monotonic() + 2
        while loop.streaming and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not loop.streaming and loop.link_error is not None
        assert notices(sink.items, "link_lost")
