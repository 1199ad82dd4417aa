"""A scripted ASTM peer for exact-bytes tests of the link layer, with no I/O.

A script is a list of steps: ``("host", bytes)`` — what the host must write next, exactly;
``("peer", bytes)`` — what the analyzer sends, readable once every earlier host step has
been written. Anything the host writes out of turn fails at once.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from drivers.transport import LinkLostError

Step = tuple[str, bytes]

_NAMES = {
    "STX": b"\x02",
    "ETX": b"\x03",
    "EOT": b"\x04",
    "ENQ": b"\x05",
    "ACK": b"\x06",
    "NAK": b"\x15",
    "ETB": b"\x17",
    "CR": b"\r",
    "LF": b"\n",
}


def control_names(text: str) -> bytes:
    """``<ENQ>``, ``<STX>1H|…<CR><ETX>A5<CR><LF>`` → the bytes they stand for."""
    return re.sub(
        r"<(STX|ETX|EOT|ENQ|ACK|NAK|ETB|CR|LF)>",
        lambda m: _NAMES[m.group(1)].decode("latin-1"),
        text,
    ).encode("latin-1")


def show(data: bytes) -> str:
    """The inverse of :func:`control_names`."""
    names = {v[0]: k for k, v in _NAMES.items()}
    return "".join(f"<{names[b]}>" if b in names else chr(b) for b in data)


class ScriptedPeer:
    """A :class:`drivers.astm.ByteTransport` that follows a script."""

    def __init__(self, script: Sequence[Step], name: str = "scripted") -> None:
        for who, data in script:
            if who not in ("host", "peer") or not isinstance(data, bytes):
                raise ValueError(f"bad script step {(who, data)!r}")
        self.name = name
        self.resource = f"scripted://{name}"
        self.lock = threading.Lock()
        self.written: list[bytes] = []
        self.failures: list[str] = []
        self._script = list(script)
        self._index = 0
        self._incoming = b""
        self._cond = threading.Condition()
        self._disconnect_at_end = False
        self.closed = False
        with self._cond:
            self._release()

    def _release(self) -> None:
        while self._index < len(self._script) and self._script[self._index][0] == "peer":
            self._incoming += self._script[self._index][1]
            self._index += 1
        self._cond.notify_all()

    def write(self, data: bytes) -> None:
        with self._cond:
            if self.closed:
                raise LinkLostError(f"{self.resource} is closed", resource=self.resource)
            self.written.append(data)
            if self._index >= len(self._script):
                self._fail(f"the host wrote {show(data)} after the end of the script")
            _who, expected = self._script[self._index]
            if data != expected:
                self._fail(
                    f"step {self._index + 1}: expected the host to write {show(expected)}, "
                    f"got {show(data)}"
                )
            self._index += 1
            self._release()

    def read(self, timeout: float) -> bytes:
        with self._cond:
            if self.closed:
                raise LinkLostError(f"{self.resource} is closed", resource=self.resource)
            if not self._incoming and timeout > 0:
                self._cond.wait_for(lambda: bool(self._incoming) or self.closed, timeout)
            data, self._incoming = self._incoming, b""
            if not data and self._disconnect_at_end and self._index >= len(self._script):
                raise LinkLostError(f"{self.resource}: peer disconnected", resource=self.resource)
            return data

    def disconnect_at_end(self) -> None:
        """Reads fail with LinkLostError once the script is used up and read."""
        self._disconnect_at_end = True

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _fail(self, message: str) -> None:
        self.failures.append(message)
        raise AssertionError(message)

    def assert_done(self) -> None:
        assert not self.failures, self.failures[0]
        assert self._index == len(self._script), (
            f"the host stopped at step {self._index + 1} of {len(self._script)}: next "
            f"{self._script[self._index][0]} {show(self._script[self._index][1])}"
        )
        assert not self._incoming, f"the host never read {show(self._incoming)}"
