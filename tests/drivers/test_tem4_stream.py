"""Tem4Driver data stream: seq ordering, duplicates, gaps healed by REPLAY, lost data,
corrupt lines, restarts, and the reader thread (start, stop, link loss, reconnection)."""

from __future__ import annotations

import threading
import time

import pytest

import drivers.tem4 as tem4_module
from drivers.tem4 import LinkNotice, StreamItem, Tem4Driver
from drivers.testing import ScriptedTransport, expected_protocol
from drivers.transport import LinkLostError
from drivers.wire.tem4 import (
    DataFrame,
    EventFrame,
    HeartbeatFrame,
    encode_data,
    encode_error_reply,
    encode_event,
    encode_heartbeat,
    encode_reply,
)


def d(seq: int, ch: int = 1) -> bytes:
    """A D frame whose t_ms and amplitude follow from seq, so each is recognisable."""
    return encode_data(seq, ch, seq * 100, seq * 7)


def h(seq: int, device_ms: int = 10_000) -> bytes:
    return encode_heartbeat(seq, device_ms, 3700, "RUN")


def seqs(items: list[StreamItem]) -> list[int]:
    return [i.seq for i in items if isinstance(i, DataFrame | EventFrame)]


def notices(items: list[StreamItem], kind: str | None = None) -> list[LinkNotice]:
    return [i for i in items if isinstance(i, LinkNotice) and kind in (None, i.kind)]


def test_in_order_frames_from_any_start() -> None:
    pairs = [(None, [d(100), encode_event(101, 1, "STARTED", "NATEM"), d(102, 2)])]
    with expected_protocol(Tem4Driver, pairs) as tem:
        items = tem.poll()
        assert seqs(items) == [100, 101, 102]
        assert items[1] == EventFrame(101, 1, "STARTED", "NATEM")
        assert tem.next_expected == 103
        assert vars(tem.stats) == {
            "frames_ok": 3,
            "corrupt": 0,
            "duplicates": 0,
            "gaps": 0,
            "replays_requested": 0,
            "data_lost": 0,
            "heartbeats": 0,
            "discarded_unstreamed": 0,
            "sink_errors": 0,
        }
        assert notices(items) == []


def test_duplicates_are_dropped_and_counted() -> None:
    pairs = [(None, [d(1), d(2), d(2), d(1), d(3), d(3)])]
    with expected_protocol(Tem4Driver, pairs) as tem:
        assert seqs(tem.poll()) == [1, 2, 3]
        assert tem.stats.duplicates == 3
        assert tem.stats.replays_requested == 0


def test_gap_is_healed_by_replay() -> None:
    pairs = [
        (None, [d(1), d(2), d(4), d(5)]),
        (b"REPLAY 3\r\n", [encode_reply("REPLAY 3", "OK"), d(3), d(4), d(5), d(6)]),
    ]
    with expected_protocol(Tem4Driver, pairs) as tem:
        items = tem.poll()
        assert seqs(items) == [1, 2, 3, 4, 5, 6]
        (gap,) = notices(items)
        assert gap.kind == "gap" and "seq 3" in gap.detail and "REPLAY 3" in gap.detail
        assert items.index(gap) == 2  # reported where the gap was noticed
        stats = tem.stats
        # 4 and 5 were kept beyond the gap, so their replayed copies are duplicates
        assert (stats.gaps, stats.replays_requested, stats.duplicates) == (1, 1, 2)


def test_frames_kept_beyond_a_gap_fill_holes_the_replay_loses_again() -> None:
    pairs = [
        (None, [d(1), d(2), d(4), d(5), d(6)]),
        # the replayed copy of 5 is lost too; the one kept from the first pass fills it
        (b"REPLAY 3\r\n", [encode_reply("REPLAY 3", "OK"), d(3), d(4), d(6), d(7)]),
    ]
    with expected_protocol(Tem4Driver, pairs) as tem:
        assert seqs(tem.poll()) == [1, 2, 3, 4, 5, 6, 7]
        assert tem.stats.replays_requested == 1
        assert tem.stats.data_lost == 0


def test_replay_is_repeated_at_most_every_retry_interval() -> None:
    pairs = [
        (None, [d(1), d(3), d(4), d(5)]),
        (b"REPLAY 2\r\n", None),  # lost: no answer
        (b"REPLAY 2\r\n", [encode_reply("REPLAY 2", "OK"), d(2), d(3), d(4), d(5)]),
    ]
    with expected_protocol(Tem4Driver, pairs, replay_retry_s=0.1) as tem:
        assert seqs(tem.poll()) == [1]  # three out-of-order frames, one REPLAY
        assert tem.stats.replays_requested == 1
        assert tem.poll() == []  # too soon to ask again
        time.sleep(0.12)
        assert seqs(tem.poll()) == [2, 3, 4, 5]
        assert tem.stats.replays_requested == 2
        assert tem.stats.gaps == 1


def test_heartbeat_reveals_lost_tail() -> None:
    pairs = [
        (None, [d(1), d(2), h(4)]),
        (b"REPLAY 3\r\n", [encode_reply("REPLAY 3", "OK"), d(3), d(4)]),
    ]
    with expected_protocol(Tem4Driver, pairs) as tem:
        items = tem.poll()
        assert seqs(items) == [1, 2, 3, 4]
        assert sum(isinstance(i, HeartbeatFrame) for i in items) == 1
        assert notices(items)[0].kind == "gap" and "heartbeat" in notices(items)[0].detail
        assert tem.stats.heartbeats == 1


def test_heartbeat_in_step_asks_nothing() -> None:
    pairs = [(None, [h(0, 1000), d(1), d(2), h(2, 2000), h(2, 3000)])]
    with expected_protocol(Tem4Driver, pairs) as tem:
        items = tem.poll()
        assert seqs(items) == [1, 2] and notices(items) == []
        assert tem.next_expected == 3


def test_first_heartbeat_sets_next_expected() -> None:
    pairs = [
        (None, [h(41), d(43)]),
        (b"REPLAY 42\r\n", [encode_reply("REPLAY 42", "OK"), d(42), d(43)]),
    ]
    with expected_protocol(Tem4Driver, pairs) as tem:
        assert seqs(tem.poll()) == [42, 43]


def test_refused_replay_reports_lost_range_and_skips_ahead() -> None:
    pairs = [
        (None, [d(1), d(4)]),
        (
            b"REPLAY 2\r\n",
            [encode_error_reply("REPLAY 2", 4, "sequence number no longer buffered"), d(5), d(6)],
        ),
    ]
    with expected_protocol(Tem4Driver, pairs) as tem:
        items = tem.poll()
        assert seqs(items) == [1, 4, 5, 6]  # 4 was kept beyond the gap
        (lost,) = notices(items, "data_lost")
        assert "frames 2–3 (2)" in lost.detail
        first_kept = next(i for i, x in enumerate(items) if isinstance(x, DataFrame) and x.seq == 4)
        assert items.index(lost) == first_kept - 1
        assert tem.stats.data_lost == 2
        assert tem.stats.replays_requested == 1


def test_refused_replay_then_heartbeat_reports_lost_range() -> None:
    pairs = [
        (None, [d(10), h(12)]),
        (b"REPLAY 11\r\n", [encode_error_reply("REPLAY 11", 4, "gone"), h(12), d(13)]),
    ]
    with expected_protocol(Tem4Driver, pairs) as tem:
        items = tem.poll()
        assert seqs(items) == [10, 13]
        (lost,) = notices(items, "data_lost")
        assert "frames 11–12 (2)" in lost.detail


def test_other_replay_refusal_is_retried() -> None:
    pairs = [
        (None, [d(1), d(3)]),
        (b"REPLAY 2\r\n", encode_error_reply("REPLAY 2", 3, "busy")),
        (b"REPLAY 2\r\n", [encode_reply("REPLAY 2", "OK"), d(2), d(3)]),
    ]
    with expected_protocol(Tem4Driver, pairs, replay_retry_s=0.05) as tem:
        assert seqs(tem.poll()) == [1]
        time.sleep(0.06)
        assert seqs(tem.poll()) == [2, 3]
        assert tem.stats.data_lost == 0


def test_corrupt_line_is_reported_and_its_gap_healed(caplog: pytest.LogCaptureFixture) -> None:
    bad = bytearray(d(2))
    bad[5] ^= 0x04  # a flipped bit on the line
    pairs = [
        (None, [d(1), bytes(bad), b"\x00\xffnoise", d(3)]),
        (b"REPLAY 2\r\n", [encode_reply("REPLAY 2", "OK"), d(2), d(3)]),
    ]
    with expected_protocol(Tem4Driver, pairs) as tem:
        items = tem.poll()
        assert seqs(items) == [1, 2, 3]
        corrupt = notices(items, "corrupt_frame")
        assert len(corrupt) == 2
        assert "checksum mismatch" in corrupt[0].detail
        assert tem.stats.corrupt == 2
    assert "corrupt line" in caplog.text and "noise" in caplog.text


def test_device_restart_follows_new_counter() -> None:
    pairs = [(None, [d(5), h(5, 90_000), h(0, 400), d(1), d(2)])]
    with expected_protocol(Tem4Driver, pairs) as tem:
        items = tem.poll()
        assert seqs(items) == [5, 1, 2]
        (restart,) = notices(items, "device_restarted")
        assert "90000 ms to 400 ms" in restart.detail


def test_expect_seq() -> None:
    pairs = [(None, [d(49), d(50), d(51)])]
    with expected_protocol(Tem4Driver, pairs) as tem:
        tem.expect_seq(50)
        assert seqs(tem.poll()) == [50, 51]
        assert tem.stats.duplicates == 1


def test_kept_items_overflow_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tem4_module, "_PENDING_MAX", 3)
    with expected_protocol(Tem4Driver, [(None, [d(n) for n in range(1, 6)])]) as tem:
        items = tem.poll()
    assert seqs(items) == [3, 4, 5]
    assert items[0] == LinkNotice("data_lost", items[0].detail)  # type: ignore[union-attr]
    assert "2 items" in items[0].detail  # type: ignore[union-attr]


def test_feed_lines() -> None:
    with expected_protocol(Tem4Driver, []) as tem:
        tem.feed_lines(d(n).rstrip() for n in (7, 8, 8, 9))
        assert seqs(tem.poll()) == [7, 8, 9]


# ---------------------------------------------------------------- the reader thread


class Collector:
    """A thread-safe sink that lets a test wait for a condition on what arrived."""

    def __init__(self) -> None:
        self.items: list[StreamItem] = []
        self._cond = threading.Condition()

    def __call__(self, item: StreamItem) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, predicate: object, timeout: float = 2.0) -> list[StreamItem]:
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self.items), timeout)  # type: ignore[operator]
            assert ok, f"timed out; got {self.items!r}"
            return list(self.items)


def test_streaming_delivers_in_order_and_commands_still_work() -> None:
    transport = ScriptedTransport(
        [
            (None, [d(1), d(2), d(4)]),
            (b"REPLAY 3\r\n", [encode_reply("REPLAY 3", "OK"), d(3), d(4)]),
            (b"TEMP?\r\n", [d(5), encode_reply("TEMP?", "37.01"), d(6)]),
        ]
    )
    sink = Collector()
    with Tem4Driver(transport) as tem:
        tem.start_streaming(sink)
        assert tem.streaming
        sink.wait_for(lambda items: len(seqs(items)) >= 4)
        assert tem.temperature() == pytest.approx(37.01)
        items = sink.wait_for(lambda items: len(seqs(items)) >= 6)
        assert seqs(items) == [1, 2, 3, 4, 5, 6]
        reader = next(t for t in threading.enumerate() if t.name == "tem4-reader-tem")
        assert reader.daemon
        with pytest.raises(RuntimeError, match="streaming"):
            tem.poll()
        with pytest.raises(RuntimeError, match="already streaming"):
            tem.start_streaming(sink)
        started = time.monotonic()
        tem.stop_streaming()
        assert time.monotonic() - started < 0.5
        assert not reader.is_alive() and not tem.streaming
    transport.assert_done()


def test_items_kept_before_streaming_are_delivered_first() -> None:
    transport = ScriptedTransport(
        [(b"STATUS?\r\n", [d(1), encode_reply("STATUS?", *["IDLE"] * 5)]), (None, d(2))]
    )
    sink = Collector()
    with Tem4Driver(transport) as tem:
        tem.status()
        tem.start_streaming(sink)
        assert seqs(sink.wait_for(lambda items: len(items) >= 2)) == [1, 2]


def test_command_timeout_while_streaming() -> None:
    transport = ScriptedTransport([(b"TEMP?\r\n", None)])
    with Tem4Driver(transport, reply_timeout=0.1) as tem:
        tem.start_streaming(Collector())
        with pytest.raises(tem4_module.InstrumentTimeout, match="TEMP"):
            tem.temperature()


def test_link_lost_ends_reader_with_notice() -> None:
    transport = ScriptedTransport([(None, [d(1), d(2)])])
    sink = Collector()
    tem = Tem4Driver(transport)
    tem.start_streaming(sink)
    transport.disconnect()
    items = sink.wait_for(lambda items: bool(notices(items, "link_lost")))
    assert seqs(items) == [1, 2]
    assert "disconnected" in notices(items, "link_lost")[0].detail
    deadline = time.monotonic() + 1
    while tem.streaming and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not tem.streaming
    assert isinstance(tem.link_error, LinkLostError)
    with pytest.raises(LinkLostError, match="disconnected"):
        tem.status()

    # Reconnect: the new link's first heartbeat shows frames 3..4 were missed meanwhile.
    fresh = ScriptedTransport(
        [
            (None, h(4)),
            (b"REPLAY 3\r\n", [encode_reply("REPLAY 3", "OK"), d(3), d(4), d(5)]),
        ]
    )
    tem.replace_transport(fresh)
    assert transport.closed and tem.link_error is None
    tem.start_streaming(sink)
    items = sink.wait_for(lambda items: len(seqs(items)) >= 5)
    assert seqs(items) == [1, 2, 3, 4, 5]
    tem.close()
    tem.close()  # idempotent
    assert fresh.closed
    fresh.assert_done()


def test_sink_errors_do_not_stop_the_stream() -> None:
    sink = Collector()

    def fragile(item: StreamItem) -> None:
        if isinstance(item, DataFrame) and item.seq == 2:
            raise ValueError("sink bug")
        sink(item)

    transport = ScriptedTransport([(None, [d(1), d(2), d(3)])])
    with Tem4Driver(transport) as tem:
        tem.start_streaming(fragile)
        assert seqs(sink.wait_for(lambda items: len(items) >= 2)) == [1, 3]
        assert tem.stats.sink_errors == 1


def test_stop_streaming_from_inside_the_sink() -> None:
    transport = ScriptedTransport([(None, [d(1)])])
    stopped = threading.Event()
    tem = Tem4Driver(transport)

    def sink(item: StreamItem) -> None:
        tem.stop_streaming()
        stopped.set()

    tem.start_streaming(sink)
    assert stopped.wait(2.0)
    tem.close()
    assert not tem.streaming


def test_commands_from_inside_the_sink_are_refused() -> None:
    transport = ScriptedTransport([(None, [d(1)])])
    errors: list[Exception] = []
    with Tem4Driver(transport) as tem:

        def sink(item: StreamItem) -> None:
            try:
                tem.status()
            except RuntimeError as exc:
                errors.append(exc)

        tem.start_streaming(sink)
        deadline = time.monotonic() + 2
        while not errors and time.monotonic() < deadline:
            time.sleep(0.01)
    assert errors and "reader thread" in str(errors[0])
    assert transport.written == []


def test_expect_seq_while_streaming() -> None:
    transport = ScriptedTransport([(None, [d(1)])])
    sink = Collector()
    with Tem4Driver(transport) as tem:
        tem.start_streaming(sink)
        sink.wait_for(lambda items: len(items) == 1)
        tem.expect_seq(10)
        deadline = time.monotonic() + 1
        while tem.next_expected != 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tem.next_expected == 10


def test_closed_driver_cannot_stream() -> None:
    tem = Tem4Driver(ScriptedTransport([]))
    tem.close()
    with pytest.raises(RuntimeError, match="closed"):
        tem.start_streaming(Collector())
