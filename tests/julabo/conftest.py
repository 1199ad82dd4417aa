"""Fixtures of the bath tests: no test may leave a thread, a pty or a socket open."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_FD_DIR = Path("/proc/self/fd")


def _open_endpoints() -> set[tuple[str, str]]:
    """Open file descriptors that are sockets or pseudo-terminals (Linux only, else empty)."""
    if not _FD_DIR.is_dir():
        return set()
    found = set()
    for fd in os.listdir(_FD_DIR):
        try:
            target = os.readlink(_FD_DIR / fd)
        except OSError:
            continue
        if target.startswith(("socket:", "/dev/pts/", "/dev/ptmx")):
            found.add((fd, target))
    return found


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """Fail a test that leaves behind a thread, pty or socket it opened."""
    threads_before = set(threading.enumerate())
    fds_before = _open_endpoints()
    yield
    deadline = time.monotonic() + 2.0
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        fds = _open_endpoints() - fds_before
        if not (threads or fds) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not threads, f"threads left running: {[t.name for t in threads]}"
    assert not fds, f"ptys or sockets left open: {sorted(fds)}"
