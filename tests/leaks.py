"""The leak check of the instrument-level test packages: no thread or descriptor left open."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


def _open_fds() -> set[str]:
    if not sys.platform.startswith("linux"):
        return set()
    return set(os.listdir("/proc/self/fd"))


def _describe_fds(fds: set[str]) -> list[str]:
    """``fd -> target`` (socket, pipe, file) for a readable failure message."""
    described = []
    for fd in sorted(fds, key=int):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = "?"
        described.append(f"{fd} -> {target}")
    return described


@contextmanager
def no_leaks(settle_s: float = 3.0) -> Iterator[None]:
    """Fail if the block leaves a thread running or a file descriptor (pty, socket) open
    ``settle_s`` after it ended."""
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()
    yield
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        extra_threads = [t for t in threading.enumerate() if t not in threads_before]
        extra_fds = _open_fds() - fds_before
        if not extra_threads and not extra_fds:
            return
        time.sleep(0.02)
    assert not extra_threads, f"test left threads running: {extra_threads}"
    assert not extra_fds, f"test left file descriptors open: {_describe_fds(extra_fds)}"
