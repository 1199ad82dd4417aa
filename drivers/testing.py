"""Exact-bytes driver tests without I/O: a scripted transport and ``expected_protocol``.

``pairs`` list what the driver must write and what the instrument answers, in order::

    with expected_protocol(Tem4Driver, [(b"TEMP?\\r\\n", b"$R,TEMP?,37.02*49")]) as tem:
        assert tem.temperature() == 37.02

A pair ``(None, reply)`` is output the instrument sends on its own (data, heartbeats); it
becomes readable once every earlier pair has been used. A pair ``(command, None)`` is a
command the instrument does not answer.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from drivers.transport import LinkLostError

__all__ = ["Pair", "ScriptedTransport", "expected_protocol"]

Pair = tuple[bytes | None, bytes | list[bytes] | None]
D = TypeVar("D")


def _reply_lines(reply: bytes | list[bytes] | None) -> list[bytes]:
    """Split a scripted reply into lines the way a transport would (CR/LF stripped)."""
    if reply is None:
        return []
    chunks = [reply] if isinstance(reply, bytes) else list(reply)
    lines: list[bytes] = []
    for chunk in chunks:
        if not isinstance(chunk, bytes):
            raise TypeError(f"scripted reply lines must be bytes, got {chunk!r}")
        lines.extend(part.rstrip(b"\r") for part in chunk.split(b"\n") if part.rstrip(b"\r"))
    return lines


class ScriptedTransport:
    """An in-memory transport (the ``SerialTransport`` interface) that follows a script.

    Each ``write`` must equal the next expected command exactly, terminator included;
    a mismatch raises ``AssertionError`` at once and is remembered for :meth:`assert_done`.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        *,
        write_terminator: bytes = b"\r\n",
        baudrate: int | None = None,
        name: str = "scripted",
    ) -> None:
        self.name = name
        self.resource = f"scripted://{name}"
        self.lock = threading.Lock()
        self.baudrate = baudrate
        self.write_terminator = write_terminator
        self.written: list[bytes] = []
        self.failures: list[str] = []
        self._script: list[tuple[bytes | None, list[bytes]]] = []
        for number, (command, reply) in enumerate(pairs, 1):
            if command is None and reply is None:
                raise ValueError(f"pair {number} is (None, None): give a command or a reply")
            if command is not None and not isinstance(command, bytes):
                raise TypeError(f"pair {number}: the command must be bytes, got {command!r}")
            self._script.append((command, _reply_lines(reply)))
        self._index = 0
        self._incoming: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._disconnected = False
        self.closed = False

    def write(self, data: bytes) -> None:
        """Check ``data`` + terminator against the next expected command; queue its reply."""
        line = data + self.write_terminator
        with self._cond:
            if self.closed:
                raise LinkLostError(f"{self.resource} is closed", resource=self.resource)
            self.written.append(line)
            self._release_unsolicited()
            if self._index >= len(self._script):
                self._fail(
                    f"the driver wrote {line!r} but all {len(self._script)} scripted "
                    f"exchanges were already used"
                )
            expected, reply = self._script[self._index]
            if line != expected:
                self._fail(
                    f"exchange {self._index + 1}: expected the driver to write {expected!r}, "
                    f"got {line!r}"
                )
            self._index += 1
            self._incoming.extend(reply)
            self._cond.notify_all()

    def read_lines(self, timeout: float) -> list[bytes]:
        """Return every reply line released so far, waiting up to ``timeout`` for one."""
        with self._cond:
            if self.closed:
                raise LinkLostError(f"{self.resource} is closed", resource=self.resource)
            self._release_unsolicited()
            if not self._incoming and timeout > 0:
                self._cond.wait_for(lambda: bool(self._incoming) or self.closed, timeout)
            if self._incoming:
                lines = list(self._incoming)
                self._incoming.clear()
                return lines
            if self._disconnected:
                raise LinkLostError(
                    f"{self.resource}: the scripted peer disconnected", resource=self.resource
                )
            return []

    def disconnect(self) -> None:
        """Make reads fail with ``LinkLostError`` once the queued lines have been read."""
        with self._cond:
            self._disconnected = True
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _release_unsolicited(self) -> None:
        script = self._script
        while self._index < len(script) and script[self._index][0] is None:
            self._incoming.extend(script[self._index][1])
            self._index += 1
        if self._incoming:
            self._cond.notify_all()

    def _fail(self, message: str) -> None:
        self.failures.append(message)
        raise AssertionError(message)

    def assert_done(self) -> None:
        """Fail unless every exchange was used, every reply read, and nothing went wrong."""
        with self._cond:
            if self.failures:
                raise AssertionError(self.failures[0])
            if self._index < len(self._script):
                command, reply = self._script[self._index]
                what = (
                    f"expected write {command!r}"
                    if command is not None
                    else f"unsolicited line(s) {reply!r} were never read"
                )
                raise AssertionError(
                    f"the driver stopped after exchange {self._index} of {len(self._script)}; "
                    f"next {what}"
                )
            if self._incoming:
                raise AssertionError(f"the driver never read these lines: {list(self._incoming)!r}")

    def __repr__(self) -> str:
        return f"ScriptedTransport(exchange {self._index} of {len(self._script)})"


@contextmanager
def expected_protocol(
    driver_factory: Callable[..., D],
    pairs: Sequence[Pair],
    *,
    write_terminator: bytes = b"\r\n",
    transport_baudrate: int | None = None,
    **kwargs: Any,
) -> Iterator[D]:
    """Yield ``driver_factory(transport, **kwargs)`` on a scripted transport; on a normal
    exit, assert that the driver wrote exactly the scripted commands and read every reply."""
    transport = ScriptedTransport(
        pairs, write_terminator=write_terminator, baudrate=transport_baudrate
    )
    driver = driver_factory(transport, **kwargs)
    completed = False
    try:
        yield driver
        completed = True
    finally:
        close = getattr(driver, "close", None)
        if callable(close):
            close()
    if completed:
        transport.assert_done()
