"""Fixtures for the protocol tests."""

from __future__ import annotations

import pytest

from tests.protocols.texts import VALID


@pytest.fixture
def valid_text() -> str:
    """A small valid protocol with a per-channel lot and a per-channel donor."""
    return VALID
