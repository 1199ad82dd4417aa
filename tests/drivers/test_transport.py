"""Transports on real endpoints: a pseudo-terminal, a TCP socket, and VISA over TCP."""

from __future__ import annotations

import logging
import os
import socket
import threading
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest

import drivers.transport as transport_module
from drivers.tem4 import Tem4Driver
from drivers.transport import (
    LinkLostError,
    PortBusyError,
    PortNotFoundError,
    SerialTransport,
    TransportError,
    TransportTimeoutError,
    VisaTransport,
    available_serial_ports,
)
from drivers.wire.tem4 import encode_data, encode_reply

# ---------------------------------------------------------------- endpoints


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """A raw pseudo-terminal: yields the master fd and the slave's path."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    try:
        yield master, path
    finally:
        for fd in (master, slave):
            with suppress(OSError):  # a test may have closed the master already
                os.close(fd)


def read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        data += os.read(fd, n - len(data))
    return data


@contextmanager
def tcp_server(handler: Callable[[socket.socket], None]) -> Iterator[int]:
    """Serve one connection on 127.0.0.1 with ``handler`` in a thread; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    port = listener.getsockname()[1]
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError as exc:
            errors.append(exc)
            return
        with conn:
            conn.settimeout(5)
            try:
                handler(conn)
            except OSError as exc:
                errors.append(exc)

    thread = threading.Thread(target=serve, name="test-tcp-server", daemon=True)
    thread.start()
    try:
        yield port
    finally:
        thread.join(5)
        listener.close()
    assert not thread.is_alive()
    assert not errors, errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def recv_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data


# ---------------------------------------------------------------- serial over a pty


def test_pty_lines_in_both_directions(
    pty_pair: tuple[int, str], caplog: pytest.LogCaptureFixture
) -> None:
    master, path = pty_pair
    caplog.set_level(logging.DEBUG, logger="hemocompat.io.tem-pty")
    with SerialTransport(path, name="tem-pty") as port:
        assert port.resource == path and port.name == "tem-pty"
        assert port.baudrate is None  # a pseudo-terminal has no line-rate limit
        port.write(b"*IDN?")
        assert read_exactly(master, 7) == b"*IDN?\r\n"
        os.write(master, encode_data(1, 1, 0, 0) + encode_data(2, 1, 100, 5))
        assert port.read_lines(1.0) == [
            encode_data(1, 1, 0, 0)[:-2],
            encode_data(2, 1, 100, 5)[:-2],
        ]
        assert port.read_lines(0.02) == []
    logged = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("hemocompat.io.tem-pty", "> b'*IDN?'") in logged
    assert ("hemocompat.io.tem-pty", "< b'$D,2,1,100,5*43'") in logged


def test_pty_partial_lines_and_blank_lines(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    with SerialTransport(path) as port:
        os.write(master, b"$D,1,1,")
        assert port.read_lines(0.05) == []
        os.write(master, b"0,0*46\r\n\r\n\n$H,1")
        assert port.read_lines(1.0) == [b"$D,1,1,0,0*46"]
        os.write(master, b",2,3,RUN*00\r\n")
        assert port.read_lines(1.0) == [b"$H,1,2,3,RUN*00"]


def test_pty_bulk_stream_arrives_intact(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    frames = [encode_data(n, 1 + n % 4, n * 10, n % 9000) for n in range(1, 20_001)]
    writer = threading.Thread(target=lambda: os.write(master, b"".join(frames)), name="pty-writer")
    with SerialTransport(path) as port:
        writer.start()
        got: list[bytes] = []
        while len(got) < len(frames):
            lines = port.read_lines(2.0)
            assert lines, f"stream stalled after {len(got)} lines"
            got.extend(lines)
        writer.join(5)
    assert got == [f.rstrip(b"\r\n") for f in frames]


def test_pty_overlong_fragment_is_passed_on(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    with SerialTransport(path) as port:
        os.write(master, b"x" * 3000)
        assert port.read_lines(0.05) == []
        os.write(master, b"y" * 3000)
        lines = port.read_lines(1.0)
        assert len(lines) == 1 and len(lines[0]) > 4096


def test_pty_busy_port(pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    with SerialTransport(path), pytest.raises(PortBusyError) as info:
        SerialTransport(path)
    message = str(info.value)
    assert path in message and "in use by another program" in message
    assert info.value.resource == path
    with SerialTransport(path):  # released after close
        pass


def test_pty_link_lost_when_peer_closes(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    with SerialTransport(path) as port:
        os.close(master)
        with pytest.raises(LinkLostError) as info:
            port.read_lines(1.0)
        assert path in str(info.value) and "reconnect" in str(info.value)


def test_closed_transport_refuses_io(pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    port = SerialTransport(path)
    port.close()
    port.close()
    assert port.closed
    with pytest.raises(LinkLostError, match="closed"):
        port.read_lines(0.01)
    with pytest.raises(LinkLostError, match="closed"):
        port.write(b"TEMP?")


def test_is_pseudo_terminal(pty_pair: tuple[int, str]) -> None:
    assert transport_module._is_pseudo_terminal(pty_pair[1])
    assert not transport_module._is_pseudo_terminal("/dev/null")
    assert not transport_module._is_pseudo_terminal("/dev/does-not-exist")


def test_missing_port_lists_existing_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        transport_module, "available_serial_ports", lambda: ["/dev/ttyS0", "/dev/ttyUSB7"]
    )
    with pytest.raises(PortNotFoundError) as info:
        SerialTransport("/dev/ttyUSB-missing")
    message = str(info.value)
    assert "/dev/ttyUSB-missing does not exist" in message
    assert "Serial ports that exist: /dev/ttyS0, /dev/ttyUSB7." in message


def test_missing_port_when_there_are_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_module, "available_serial_ports", lambda: [])
    with pytest.raises(PortNotFoundError, match="No serial ports were found"):
        SerialTransport("/dev/ttyUSB-missing")


def test_available_serial_ports_is_a_sorted_list() -> None:
    ports = available_serial_ports()
    assert ports == sorted(ports) and all(isinstance(p, str) for p in ports)


def test_invalid_settings() -> None:
    with pytest.raises(TransportError, match="invalid port settings"):
        SerialTransport("socket://127.0.0.1:1", parity="X")
    with pytest.raises(TransportError, match="invalid port settings"):
        SerialTransport("nosuchscheme://x")


# ---------------------------------------------------------------- serial over TCP


def test_socket_url_exchange_and_peer_close() -> None:
    def device(conn: socket.socket) -> None:
        assert recv_line(conn) == b"TEMP?\r\n"
        conn.sendall(encode_reply("TEMP?", "37.02"))

    with tcp_server(device) as port_number:
        url = f"socket://127.0.0.1:{port_number}"
        with SerialTransport(url) as port:
            assert port.baudrate is None and port.name == "socket_127_0_0_1_" + str(port_number)
            port.write(b"TEMP?")
            assert port.read_lines(2.0) == [b"$R,TEMP?,37.02*49"]
            with pytest.raises(LinkLostError) as info:
                for _ in range(100):
                    port.read_lines(0.05)
            assert url in str(info.value)


def test_socket_bulk_lines_are_read_in_bursts() -> None:
    frames = b"".join(encode_data(n, 1, n, 0) for n in range(1, 5001))

    def device(conn: socket.socket) -> None:
        # pyserial discards whatever arrives while it opens a socket:// port, so the device
        # starts sending only when asked.
        assert recv_line(conn) == b"GO\r\n"
        conn.sendall(frames)

    with (
        tcp_server(device) as port_number,
        SerialTransport(f"socket://127.0.0.1:{port_number}") as port,
    ):
        port.write(b"GO")
        got: list[bytes] = []
        reads = 0
        while len(got) < 5000:
            lines = port.read_lines(2.0)
            assert lines, f"stream stalled after {len(got)} lines"
            got.extend(lines)
            reads += 1
    assert [int(line.split(b",")[1]) for line in got] == list(range(1, 5001))
    assert reads < 500  # whole bursts per read, not a byte at a time


def test_socket_nothing_listening() -> None:
    url = f"socket://127.0.0.1:{free_port()}"
    with pytest.raises(PortNotFoundError, match="Nothing is listening") as info:
        SerialTransport(url)
    assert url in str(info.value)


def test_driver_over_socket_with_streaming() -> None:
    """The TEM-4 driver on a real socket: a command while streaming, a gap, a replay."""

    def device(conn: socket.socket) -> None:
        assert recv_line(conn) == b"CH1:START NATEM\r\n"
        conn.sendall(encode_reply("CH1:START NATEM", "OK"))
        conn.sendall(b"".join(encode_data(n, 1, n * 100, n) for n in (1, 2, 4)))
        assert recv_line(conn) == b"REPLAY 3\r\n"
        conn.sendall(encode_reply("REPLAY 3", "OK"))
        conn.sendall(b"".join(encode_data(n, 1, n * 100, n) for n in (3, 4, 5)))
        assert recv_line(conn) == b"CH1:STOP\r\n"
        conn.sendall(encode_reply("CH1:STOP", "OK"))

    received: list[object] = []
    five = threading.Event()

    def sink(item: object) -> None:
        received.append(item)
        if getattr(item, "seq", None) == 5:
            five.set()

    with tcp_server(device) as port_number:
        tem = Tem4Driver(SerialTransport(f"socket://127.0.0.1:{port_number}"))
        with tem:
            tem.start_streaming(sink)
            tem.start_channel(1, "NATEM")
            assert five.wait(2.0)
            tem.stop_channel(1)
    assert [getattr(i, "seq", None) for i in received if hasattr(i, "t_ms")] == [1, 2, 3, 4, 5]
    assert tem.stats.replays_requested == 1


# ---------------------------------------------------------------- VISA over TCP


def scpi_device(conn: socket.socket) -> None:
    """Answers *IDN? and stays silent on anything else, until the host hangs up."""
    while line := recv_line(conn):
        if line == b"*IDN?\n":
            conn.sendall(b"HEMOTEC,ABS-96,A96-0042,1.3\n")


def test_visa_query_over_tcp_socket() -> None:
    with tcp_server(scpi_device) as port_number:
        resource = f"TCPIP::127.0.0.1::{port_number}::SOCKET"
        with VisaTransport(resource, timeout_ms=500, name="reader") as visa:
            assert visa.resource == resource and visa.name == "reader"
            assert visa.query("*IDN?") == "HEMOTEC,ABS-96,A96-0042,1.3"
            visa.write(b"*IDN?")
            assert visa.read_lines(1.0) == [b"HEMOTEC,ABS-96,A96-0042,1.3"]
            assert visa.read_lines(0.05) == []
            visa.write("*IDN?")
            assert visa.read() == "HEMOTEC,ABS-96,A96-0042,1.3"
            with pytest.raises(TransportTimeoutError) as info:
                visa.query("FETC:PLAT?")
            assert resource in str(info.value) and "500 ms" in str(info.value)
        assert visa.closed
        with pytest.raises(LinkLostError, match="closed"):
            visa.query("*IDN?")


def test_visa_nothing_listening() -> None:
    resource = f"TCPIP::127.0.0.1::{free_port()}::SOCKET"
    with (
        pytest.raises(PortNotFoundError, match="Nothing is listening") as info,
        VisaTransport(resource, timeout_ms=200) as visa,
    ):
        visa.query("*IDN?")
    assert resource in str(info.value)


def test_visa_bad_resource_name() -> None:
    with pytest.raises(PortNotFoundError, match="is not a VISA address") as info:
        VisaTransport("NOT-A-VISA-ADDRESS")
    assert "NOT-A-VISA-ADDRESS" in str(info.value)


def test_port_without_select_uses_in_waiting_reads() -> None:
    """loop:// has no file descriptor: the transport falls back to pyserial's timed reads."""
    with SerialTransport("loop://", timeout=0.01) as port:
        assert port._fd is None
        port.write(b"$D,1,1,0,0*44")  # a loopback: what is written comes back
        port.write(b"$D,2,")
        lines = port.read_lines(0.5)
        while len(lines) < 2:
            more = port.read_lines(0.5)
            assert more, f"only {lines!r} came back"
            lines += more
        assert lines == [b"$D,1,1,0,0*44", b"$D,2,"]
        assert port.read_lines(0.03) == []
