"""Alembic environment: migrations run on the connection that ``upgrade()`` passes in.

For developers making a new revision against a scratch database:

    alembic -c instrument/migrations/alembic.ini revision --autogenerate -m "what changed"

with ``HEMOCOMPAT_MIGRATE_URL`` set to that database's URL (default: sqlite:///migrate.db).
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from instrument.storage import all_tables_metadata

target_metadata = all_tables_metadata()
connection = context.config.attributes.get("connection")


def _run(conn: sa.Connection) -> None:
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        render_as_batch=conn.dialect.name == "sqlite",  # SQLite alters tables by copying
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    url = os.environ.get("HEMOCOMPAT_MIGRATE_URL", "sqlite:///migrate.db")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
