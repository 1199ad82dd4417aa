"""Shared fixtures of the robustness tests: no test may leave a thread or descriptor open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.leaks import no_leaks as leak_check


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves a thread running or a file descriptor (pty, socket) open."""
    with leak_check():
        yield
