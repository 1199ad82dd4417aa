"""Fixtures shared by every test package."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import PostgresUnavailableError, fresh_database, postgres_server

_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A PostgreSQL server on loopback for the whole session, or a skip saying why not."""
    try:
        with postgres_server() as url:
            yield url
    except PostgresUnavailableError as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL: a SQLite file, and an empty database on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lab.db'}"
    server = request.getfixturevalue("postgres_server_url")
    return fresh_database(server, f"t{next(_counter)}")
