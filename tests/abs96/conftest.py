"""Fixtures of the plate-reader tests: no test may leave a thread or a socket open."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.abs96 import ElisaKit

_FD_DIR = Path("/proc/self/fd")


def _open_sockets() -> set[tuple[str, str]]:
    """Open file descriptors that are sockets (Linux only, else empty)."""
    if not _FD_DIR.is_dir():
        return set()
    found = set()
    for fd in os.listdir(_FD_DIR):
        try:
            target = os.readlink(_FD_DIR / fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add((fd, target))
    return found


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """Fail a test that leaves behind a thread or socket it opened."""
    threads_before = set(threading.enumerate())
    sockets_before = _open_sockets()
    yield
    deadline = time.monotonic() + 2.0
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        sockets = _open_sockets() - sockets_before
        if not (threads or sockets) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not threads, f"threads left running: {[t.name for t in threads]}"
    assert not sockets, f"sockets left open: {sorted(sockets)}"


@pytest.fixture(scope="session")
def kit() -> ElisaKit:
    return ElisaKit.load()
