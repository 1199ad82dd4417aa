"""Schema migrations of the results database (Alembic), for SQLite and PostgreSQL alike.

``upgrade(connection)`` brings a database to the newest schema this version of hemocompat
knows; :class:`instrument.storage.Store` calls it whenever it opens a database, so nobody
has to remember a separate step. See docs/decisions/0005-schema-migrations.md and
docs/database.md.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from instrument.errors import StorageError

HERE = Path(__file__).resolve().parent

#: The revision whose schema equals what ``metadata.create_all`` made before migrations
#: existed; such databases are stamped with it, then upgraded like any other.
BASELINE = "0001"


def config(connection: sa.Connection | None = None) -> Config:
    """An Alembic configuration for this package's scripts, optionally bound to a connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision of the schema."""
    heads = _scripts().get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migration scripts have {len(heads)} heads: {heads}")
    return heads[0]


def current(connection: sa.Connection) -> str | None:
    """The revision a database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: sa.Connection, *, url: str = "") -> str | None:
    """Migrate the database to the newest schema; return the revision it was at before.

    Runs inside the caller's transaction, so a failing migration changes nothing. A
    database from before migrations existed is stamped at the baseline first; one written
    by a newer hemocompat (a revision this version does not know) is refused.
    """
    before = current(connection)
    if before == head():
        return before
    if before is not None and _unknown(before):
        raise StorageError(
            f"the database {url} was written by a newer hemocompat (schema revision "
            f"{before}, this version knows up to {head()}); upgrade hemocompat to use it."
        )
    cfg = config(connection)
    if before is None and sa.inspect(connection).has_table("runs"):
        command.stamp(cfg, BASELINE)
    command.upgrade(cfg, "head")
    return before


def _unknown(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is None
    except Exception:  # alembic raises its own errors for unknown revisions
        return True
