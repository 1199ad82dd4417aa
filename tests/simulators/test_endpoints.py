"""Endpoints over a real pty and a real TCP socket, driven by plain pyserial clients."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import serial

from simulators.endpoints import EndpointUnavailable, PtyEndpoint, TcpEndpoint

needs_pty = pytest.mark.skipif(sys.platform == "win32", reason="no pseudo-terminals on Windows")


@pytest.fixture
def pty() -> Iterator[PtyEndpoint]:
    ep = PtyEndpoint()
    yield ep
    ep.close()


@pytest.fixture
def tcp() -> Iterator[TcpEndpoint]:
    ep = TcpEndpoint()
    yield ep
    ep.close()


def _read_until(ep: PtyEndpoint | TcpEndpoint, n: int, timeout: float = 2.0) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += ep.read(0.05)
    return got


def _wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@needs_pty
def test_pty_passes_bytes_raw_both_ways_without_echo(pty: PtyEndpoint) -> None:
    assert pty.path.startswith("/dev/")
    with serial.Serial(pty.path, baudrate=115200, timeout=0.5) as client:
        client.write(b"CH1:START NATEM\r\nTEMP?\n")
        assert _read_until(pty, 23) == b"CH1:START NATEM\r\nTEMP?\n"
        pty.write(b"$R,TEMP?,37.02*49\r\n\r\r\n")
        assert client.read(22) == b"$R,TEMP?,37.02*49\r\n\r\r\n"
        assert client.read(1) == b""  # nothing echoed back


@needs_pty
def test_pty_discards_output_without_a_client_and_accepts_reconnects(pty: PtyEndpoint) -> None:
    assert not pty.has_client
    t0 = time.monotonic()
    pty.write(b"x" * 200_000)
    assert time.monotonic() - t0 < 0.5
    assert pty.read(0.05) == b""
    for attempt in range(2):
        with serial.Serial(pty.path, timeout=0.5) as client:
            assert pty.has_client
            pty.write(b"hello %d\r\n" % attempt)
            assert client.readline() == b"hello %d\r\n" % attempt
        assert _wait_for(lambda: not pty.has_client)


@needs_pty
def test_pty_write_waits_for_a_slow_reader_and_loses_nothing(pty: PtyEndpoint) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, far more than the pty buffer
    with serial.Serial(pty.path, timeout=0.5) as client:
        writer = threading.Thread(target=pty.write, args=(payload,))
        writer.start()
        time.sleep(0.2)
        assert writer.is_alive(), "write returned before the client read the data"
        got = bytearray()
        deadline = time.monotonic() + 10
        while len(got) < len(payload) and time.monotonic() < deadline:
            got += client.read(65536)
        writer.join(2)
        assert not writer.is_alive()
        assert bytes(got) == payload


@needs_pty
def test_pty_blocked_write_ends_when_the_endpoint_closes(pty: PtyEndpoint) -> None:
    with serial.Serial(pty.path, timeout=0.5):
        writer = threading.Thread(target=pty.write, args=(b"y" * 1_000_000,))
        writer.start()
        time.sleep(0.2)
        assert writer.is_alive()
        t0 = time.monotonic()
        pty.close()
        writer.join(2)
        assert not writer.is_alive() and time.monotonic() - t0 < 1.0
        pty.close()  # idempotent


@needs_pty
def test_pty_drop_client_hangs_up_and_serves_a_new_port(pty: PtyEndpoint) -> None:
    old = pty.path
    with serial.Serial(old, timeout=0.5) as client:
        assert pty.has_client
        pty.drop_client()
        with pytest.raises(serial.SerialException):
            client.read(1)
    assert not pty.has_client
    with serial.Serial(pty.path, timeout=0.5) as again:
        again.write(b"*IDN?\r\n")
        assert _read_until(pty, 7) == b"*IDN?\r\n"


def test_pty_endpoint_says_what_to_use_where_there_are_no_ptys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(EndpointUnavailable, match=r"socket://127\.0\.0\.1:PORT"):
        PtyEndpoint()


def test_tcp_round_trip_and_reconnect_after_drop(tcp: TcpEndpoint) -> None:
    assert tcp.port > 0 and tcp.url == f"socket://127.0.0.1:{tcp.port}"
    first = serial.serial_for_url(tcp.url, timeout=1.0)
    try:
        first.write(b"STATUS?\r\n")
        assert _read_until(tcp, 9) == b"STATUS?\r\n"
        tcp.write(b"$R,STATUS?,IDLE*00\r\n")
        assert first.readline() == b"$R,STATUS?,IDLE*00\r\n"
        tcp.drop_client()
        assert not tcp.has_client
        with pytest.raises(serial.SerialException):
            first.read(1)
    finally:
        first.close()
    with serial.serial_for_url(tcp.url, timeout=1.0) as second:
        second.write(b"*IDN?\r\n")
        assert _read_until(tcp, 7) == b"*IDN?\r\n"
        tcp.write(b"back\r\n")
        assert second.readline() == b"back\r\n"


def test_tcp_notices_a_client_that_leaves(tcp: TcpEndpoint) -> None:
    client = serial.serial_for_url(tcp.url, timeout=1.0)
    assert _wait_for(lambda: tcp.has_client)
    client.close()
    tcp.read(0.1)
    assert not tcp.has_client
    tcp.write(b"nobody listens\r\n")  # discarded, does not raise


def test_tcp_write_waits_for_a_slow_reader_and_close_stops_it(tcp: TcpEndpoint) -> None:
    payload = bytes(range(256)) * 131072  # 32 MiB: more than the socket buffers hold
    with serial.serial_for_url(tcp.url, timeout=1.0) as client:
        assert _wait_for(lambda: tcp.has_client)
        writer = threading.Thread(target=tcp.write, args=(payload,))
        writer.start()
        time.sleep(0.3)
        assert writer.is_alive(), "write returned before the client read the data"
        head = client.read(1_000_000)
        assert head == payload[: len(head)] and len(head) == 1_000_000
        t0 = time.monotonic()
        tcp.close()
        writer.join(2)
        assert not writer.is_alive() and time.monotonic() - t0 < 1.0


def test_tcp_refuses_a_busy_port_with_a_clear_error(tcp: TcpEndpoint) -> None:
    with pytest.raises(EndpointUnavailable, match=f"cannot listen on TCP 127.0.0.1:{tcp.port}"):
        TcpEndpoint(port=tcp.port)
