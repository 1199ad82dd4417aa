"""Schema migrations (Alembic) on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

from instrument import migrations
from instrument.cli import cli
from instrument.errors import StorageError
from instrument.storage import Store, all_tables_metadata


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, future=True)


def _new_run(store: Store) -> int:
    return store.create_run(
        assay="tem",
        protocol_id="p",
        protocol_version=1,
        protocol_title="P",
        protocol_source="p.yaml",
        protocol_text="format: 1\n",
        protocol_sha256="0" * 64,
        style="rotem",
        operator="tester",
        simulated=True,
        duration_s=60.0,
    )


def test_migrated_schema_equals_the_table_definitions(db_url: str) -> None:
    store = Store(db_url)
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, all_tables_metadata())
            assert diff == [], f"the models and the migrations disagree: {diff}"
            assert migrations.current(conn) == migrations.head()
    finally:
        store.close()


def test_a_database_from_before_migrations_is_stamped_and_upgraded_with_its_data(
    db_url: str,
) -> None:
    engine = _engine(db_url)
    try:
        with engine.begin() as conn:  # the baseline schema, as create_all made it before
            command.upgrade(migrations.config(conn), migrations.BASELINE)
            conn.execute(sa.text("DROP TABLE alembic_version"))
            conn.execute(
                sa.text("INSERT INTO schema_info (key, value) VALUES ('schema_version', '1')")
            )
        store = Store(db_url)
        run_id = _new_run(store)
        store.close()
        with engine.connect() as conn:
            assert migrations.current(conn) == migrations.head()
            assert not sa.inspect(conn).has_table("schema_info")
        store = Store(db_url)
        assert store.get_run(run_id)["operator"] == "tester"
        store.close()
    finally:
        engine.dispose()


def test_every_revision_downgrades_and_upgrades_again(db_url: str) -> None:
    Store(db_url).close()
    engine = _engine(db_url)
    try:
        with engine.begin() as conn:
            command.downgrade(migrations.config(conn), "base")
        with engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
        store = Store(db_url)
        assert _new_run(store) >= 1
        store.close()
    finally:
        engine.dispose()


def test_the_audit_trail_stays_append_only_after_migration(db_url: str) -> None:
    store = Store(db_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO audit_trail (seq, time, actor, role, action, object_type, "
                    "object_id, prev_hash, hash) VALUES (1, 't', 'a', 'r', 'x', 'run', '1', "
                    "'0', '1')"
                )
            )
        for statement in ("UPDATE audit_trail SET actor = 'b'", "DELETE FROM audit_trail"):
            with (
                pytest.raises(sa.exc.DBAPIError, match="append-only"),
                store.engine.begin() as conn,
            ):
                conn.execute(sa.text(statement))
    finally:
        store.close()


def test_a_database_from_a_newer_version_is_refused_with_a_clear_message(db_url: str) -> None:
    Store(db_url).close()
    engine = _engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(StorageError) as refused:
        Store(db_url)
    text = str(refused.value)
    assert "newer hemocompat" in text and "9999" in text and "upgrade hemocompat" in text


def test_db_status_and_upgrade_commands(tmp_path: Path) -> None:
    path = tmp_path / "bench.db"
    runner = CliRunner()
    status = runner.invoke(cli, ["db", "status", "--db", str(path)])
    assert status.exit_code == 0 and "revision none" in status.output
    assert "needs `hemocompat db upgrade`" in status.output
    upgraded = runner.invoke(cli, ["db", "upgrade", "--db", str(path)])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"none → {migrations.head()}" in upgraded.output
    status = runner.invoke(cli, ["db", "status", "--db", str(path)])
    assert f"revision {migrations.head()} — up to date" in status.output
