"""A one-connection MLLP listener playing the LIS in tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import hl7  # type: ignore[import-untyped]


@contextmanager
def lis_listener(answer: str | None) -> Iterator[tuple[int, list[bytes]]]:
    """A one-connection MLLP listener that answers each message with ``answer`` (AA, AE, …,
    or None to say nothing), filling in the received control ID."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            data = b""
            while b"\x1c\r" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            received.append(data)
            if answer is None:
                conn.recv(1)  # wait for the client to give up
                return
            message = hl7.parse(data[1:-2].decode())
            ack = message.create_ack(ack_code=answer, message_id="ACK1")
            if answer != "AA":
                ack.segment("MSA").assign_field("rejected for test", 3)
            conn.sendall(b"\x0b" + str(ack).encode() + b"\x1c\r")

    thread = threading.Thread(target=serve, name="mllp-test-server")
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        thread.join(timeout=5)
        server.close()
