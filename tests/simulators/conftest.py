"""Shared fixtures for the simulator tests: the packaged virtual lab and leak checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulators.physiology import VirtualLab
from tests.leaks import no_leaks as leak_check


@pytest.fixture(scope="session")
def lab() -> VirtualLab:
    return VirtualLab.load()


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves a thread running or a file descriptor (pty, socket) open."""
    with leak_check():
        yield
