"""Real endpoints a simulated instrument serves on: a pseudo-terminal and a TCP port.

A client opens ``PtyEndpoint.path`` (``/dev/pts/N``) exactly like a USB-serial port, or
connects to ``socket://127.0.0.1:PORT`` with pyserial. Both endpoints serve one client at a
time, notice when it goes away and accept the next one. Writes never drop data while a client
is attached: if the client stops reading they wait in short bounded steps (backpressure), and
``close()`` from another thread ends the wait.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import sys
import threading
from typing import Protocol

__all__ = ["Endpoint", "EndpointUnavailable", "PtyEndpoint", "TcpEndpoint"]

log = logging.getLogger("hemocompat.sim.endpoint")

#: Longest single wait inside write(); bounds how long close() waits for a blocked writer.
WRITE_WAIT_S = 0.05
_READ_CHUNK = 4096


class EndpointUnavailable(RuntimeError):  # noqa: N818 - reads as a state, like TimeoutError
    """The endpoint cannot be created on this system."""


class Endpoint(Protocol):
    """What a simulator needs from the endpoint it serves on."""

    @property
    def description(self) -> str: ...

    @property
    def has_client(self) -> bool: ...

    def read(self, timeout: float) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def drop_client(self) -> None: ...

    def close(self) -> None: ...


class PtyEndpoint:
    """A pseudo-terminal in raw mode: no echo, no CR/LF translation, like a serial adapter.

    The simulator keeps only the master side; with no client on ``path`` output is discarded
    (the device keeps running, as a real one does with its cable unplugged).
    """

    def __init__(self) -> None:
        if sys.platform == "win32" or not hasattr(os, "openpty"):
            raise EndpointUnavailable(
                f"pseudo-terminals are not available on this system ({sys.platform}); "
                "serve the simulator on TCP instead and connect to socket://127.0.0.1:PORT"
            )
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._master = -1
        self._attached = False
        self.path = ""
        self._open()

    def _open(self) -> None:
        import tty

        master, slave = os.openpty()
        try:
            tty.setraw(slave)
            self.path = os.ttyname(slave)
        finally:
            os.close(slave)  # a client's close must be visible to us as a hang-up
        os.set_blocking(master, False)
        self._master = master
        self._poll_in = select.poll()
        self._poll_in.register(master, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._poll_out = select.poll()
        self._poll_out.register(master, select.POLLOUT | select.POLLHUP | select.POLLERR)
        self._attached = False
        log.info("pty endpoint ready on %s", self.path)

    @property
    def description(self) -> str:
        return f"pty {self.path}"

    @property
    def has_client(self) -> bool:
        with self._lock:
            if self._closed.is_set():
                return False
            events = self._poll_in.poll(0)
            return self._note_client(not (events and events[0][1] & select.POLLHUP))

    def _note_client(self, attached: bool) -> bool:
        if attached != self._attached:
            log.info("client %s %s", "opened" if attached else "closed", self.path)
            self._attached = attached
        return attached

    def read(self, timeout: float) -> bytes:
        """Up to 4 KiB the client sent, or b"" after ``timeout`` s (also with no client)."""
        with self._lock:
            if self._closed.is_set():
                return b""
            events = self._poll_in.poll(max(0, int(timeout * 1000)))
            if events:
                ev = events[0][1]
                if ev & select.POLLIN:
                    try:
                        data = os.read(self._master, _READ_CHUNK)
                        self._note_client(True)
                        return data
                    except BlockingIOError:
                        return b""
                    except OSError as exc:
                        if exc.errno != errno.EIO:
                            raise
                        self._note_client(False)
                elif ev & select.POLLHUP:
                    self._note_client(False)
                else:
                    return b""
            else:
                return b""
        self._closed.wait(timeout)  # no client: poll() would return at once, so wait here
        return b""

    def write(self, data: bytes) -> None:
        """Send all of ``data`` to the client; discard it when no client is attached."""
        view = memoryview(data)
        while view:
            with self._lock:
                if self._closed.is_set():
                    return
                events = self._poll_out.poll(int(WRITE_WAIT_S * 1000))
                if not events:
                    continue  # client not reading: wait again (bounded, stoppable)
                ev = events[0][1]
                if ev & (select.POLLHUP | select.POLLERR):
                    self._note_client(False)
                    return
                try:
                    sent = os.write(self._master, view)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
                    self._note_client(False)
                    return
                self._note_client(True)
                view = view[sent:]

    def drop_client(self) -> None:
        """Hang up on the client, like unplugging a USB adapter; the new port may get a new path."""
        with self._lock:
            if self._closed.is_set():
                return
            old = self.path
            os.close(self._master)
            self._open()
            log.warning("dropped the client of %s; now serving on %s", old, self.path)

    def close(self) -> None:
        """Stop serving (idempotent, safe from another thread)."""
        self._closed.set()
        with self._lock:
            if self._master >= 0:
                os.close(self._master)
                self._master = -1
                log.info("pty endpoint %s closed", self.path)


class TcpEndpoint:
    """A listening TCP socket serving one client at a time (pyserial ``socket://`` URL)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.RLock()
        self._closed = threading.Event()
        try:
            self._server = socket.create_server((host, port), backlog=1)
        except OSError as exc:
            raise EndpointUnavailable(
                f"cannot listen on TCP {host}:{port}: {exc.strerror or exc}; "
                "choose another port or 0 for any free port"
            ) from None
        self._server.setblocking(False)
        self.host = host
        self.port: int = self._server.getsockname()[1]
        self._client: socket.socket | None = None
        self._rx = bytearray()
        log.info("TCP endpoint listening on %s:%d", host, self.port)

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    @property
    def description(self) -> str:
        return f"TCP {self.host}:{self.port}"

    @property
    def has_client(self) -> bool:
        with self._lock:
            return self._client is not None or self._accept(0.0)

    def _accept(self, timeout: float) -> bool:
        if self._closed.is_set():
            return False
        ready, _, _ = select.select([self._server], [], [], timeout)
        if not ready:
            return False
        try:
            client, peer = self._server.accept()
        except (BlockingIOError, InterruptedError):
            return False
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client = client
        log.info("client %s:%d connected to %s", peer[0], peer[1], self.description)
        return True

    def _lose_client(self, why: str) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.close()
            self._client = None
            self._rx.clear()
            log.info("client of %s gone (%s)", self.description, why)

    def _receive(self) -> bool:
        """Move what the client sent into the receive buffer; False if it disconnected."""
        assert self._client is not None
        try:
            data = self._client.recv(_READ_CHUNK)
        except BlockingIOError:
            return True
        except OSError as exc:
            self._lose_client(str(exc))
            return False
        if not data:
            self._lose_client("closed by the client")
            return False
        self._rx += data
        return True

    def read(self, timeout: float) -> bytes:
        """What the client sent, or b"" after ``timeout`` s; accepts a waiting client."""
        with self._lock:
            if self._closed.is_set():
                return b""
            if self._client is None and not self._accept(timeout):
                return b""
            if not self._rx and self._client is not None:
                ready, _, _ = select.select([self._client], [], [], timeout)
                if ready:
                    self._receive()
            data = bytes(self._rx)
            self._rx.clear()
            return data

    def write(self, data: bytes) -> None:
        """Send all of ``data`` to the client; discard it when no client is connected."""
        view = memoryview(data)
        with self._lock:
            if self._client is None:
                self._accept(0.0)
        while view:
            with self._lock:
                client = self._client
                if self._closed.is_set() or client is None:
                    return
                readable, writable, _ = select.select([client], [client], [], WRITE_WAIT_S)
                if readable and not self._receive():
                    return
                if not writable:
                    continue
                try:
                    sent = client.send(view)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self._lose_client(str(exc))
                    return
                view = view[sent:]

    def drop_client(self) -> None:
        """Disconnect the current client; the next one is accepted on the same port."""
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(OSError):
                    self._client.shutdown(socket.SHUT_RDWR)
                self._lose_client("dropped by the simulator")

    def close(self) -> None:
        """Stop listening and disconnect (idempotent, safe from another thread)."""
        self._closed.set()
        with self._lock:
            self._lose_client("endpoint closed")
            if self._server.fileno() >= 0:
                self._server.close()
                log.info("TCP endpoint %s:%d closed", self.host, self.port)
