"""Open bench mode, logging in, and the role each command needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from instrument.compliance.audit import entries, os_login
from instrument.compliance.schema import sessions
from instrument.storage import Store
from tests.compliance.conftest import NATEM, Cli, Lab, count_rows, counts, make_tem_run

DATA = ("runs", "results", "signatures", "protocol_versions", "audit_trail", "lots")


def test_open_bench_mode_runs_everything_and_records_the_os_login(cli: Cli, store: Store) -> None:
    make_tem_run(store)
    code, out = cli("runs", "list")
    assert code == 0 and "completed" in out
    code, out = cli("whoami")
    assert code == 0 and "open bench mode" in out and "init-admin" in out
    code, out = cli("lots", "add", "L-9", "--tissue-source", "bone-marrow")
    assert code == 0, out
    lot_entry = entries(store, lot_id="L-9")[-1]
    assert (lot_entry["actor"], lot_entry["role"]) == (os_login(), "open-bench")
    assert {e["role"] for e in entries(store, limit=None)} == {"open-bench"}


def test_a_missing_database_is_not_created_by_a_read_only_command(
    cli: Cli, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEMOCOMPAT_DB", str(db))
    code, out = cli("protocol", "check", str(NATEM), with_db=False)
    assert code == 0 and "OK" in out
    assert not db.exists()


def test_first_admin_ends_open_bench_mode(cli: Cli, store: Store) -> None:
    code, out = cli(
        "users", "init-admin", "root", "--full-name", "Rita Root", new_password="hunter-42-admin"
    )
    assert code == 0 and "Open bench mode has ended" in out
    code, out = cli("runs", "list")
    assert code == 2 and "needs a logged-in user" in out and "hemocompat login USER" in out
    code, out = cli("users", "init-admin", "eve", "--full-name", "Eve", new_password="x" * 12)
    assert code == 2 and "already registered" in out
    cli.login("root")
    code, out = cli("runs", "list")
    assert code == 0


def test_signing_needs_registered_users(cli: Cli, store: Store) -> None:
    run_id = make_tem_run(store)
    before = counts(store, *DATA)
    code, out = cli("sign", "run", str(run_id), "--meaning", "review", password="whatever")
    assert code == 2 and "needs a registered user with the reviewer role" in out
    assert "open bench mode" in out and counts(store, *DATA) == before


def test_technician_cannot_create_a_protocol_version(cli: Cli, lab: Lab, tmp_path: Path) -> None:
    draft = tmp_path / "natem.yaml"
    draft.write_bytes(NATEM.read_bytes())
    cli.login("tom")
    before = counts(lab.store, *DATA)
    code, out = cli("protocol", "new-version", str(draft))
    assert code == 2
    assert (
        "`hemocompat protocol new-version` needs the method-developer role; you are logged in "
        "as tom (technician)" in out
    )
    assert counts(lab.store, *DATA) == before
    assert sorted(p.name for p in tmp_path.glob("natem*")) == ["natem.yaml"]


def test_method_developer_saves_a_new_version(cli: Cli, lab: Lab, tmp_path: Path) -> None:
    draft = tmp_path / "natem.yaml"
    draft.write_bytes(NATEM.read_bytes().replace(b"ct_threshold_mm: 2.0", b"ct_threshold_mm: 2.5"))
    cli.login("meg")
    code, out = cli("protocol", "new-version", str(draft), "--reason", "CT at 2.5 mm")
    assert code == 0, out
    new = tmp_path / "natem-v2.yaml"
    text = new.read_text()
    assert "\nversion: 2\n" in text and "ct_threshold_mm: 2.5" in text
    with lab.store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM protocol_versions")).one()._mapping
    assert (row["protocol_id"], row["version"], row["text"]) == ("natem-msc-dose-series", 2, text)
    assert row["created_by"] == "meg" and row["reason"] == "CT at 2.5 mm"
    audit = entries(lab.store, limit=1)[0]
    assert (audit["action"], audit["actor"], audit["role"]) == (
        "protocol.new-version",
        "meg",
        "method-developer",
    )
    assert audit["new_value"]["sha256"] == row["sha256"]
    # the same version cannot be recorded twice, even into another file
    code, out = cli("protocol", "new-version", str(draft), "--out", str(tmp_path / "other.yaml"))
    assert code == 2 and "version 2 is already recorded" in out
    assert not (tmp_path / "other.yaml").exists()


def test_technician_cannot_sign_reviewer_can(cli: Cli, lab: Lab) -> None:
    cli.login("tom")
    before = counts(lab.store, *DATA)
    code, out = cli("sign", "run", str(lab.run_id), "--meaning", "review", password="blue-ocean-17")
    assert code == 2
    assert "`hemocompat sign run` needs the reviewer role; you are logged in as tom" in out
    assert counts(lab.store, *DATA) == before
    cli.login("ann")
    code, out = cli(
        "sign", "run", str(lab.run_id), "--meaning", "review", password="green-field-29"
    )
    assert code == 0 and "signed by ann" in out
    assert count_rows(lab.store, "signatures") == 1


def test_reviewer_cannot_run_an_assay_or_manage_users(cli: Cli, lab: Lab) -> None:
    cli.login("ann")
    code, out = cli("run", str(NATEM), "--simulate", "--speed", "max")
    assert code == 2
    assert "`hemocompat run` needs the technician role; you are logged in as ann (reviewer)" in out
    code, out = cli(
        "users",
        "add",
        "bob",
        "--full-name",
        "Bob",
        "--role",
        "technician",
        new_password="bob-secret-1",
    )
    assert code == 2 and "needs the admin role" in out
    assert count_rows(lab.store, "runs") == 1 and count_rows(lab.store, "users") == 4


def test_read_only_commands_need_a_login_but_no_role(cli: Cli, lab: Lab) -> None:
    code, out = cli("runs", "show", str(lab.run_id))
    assert code == 2 and "not logged in" in out
    cli.login("ann")
    assert cli("runs", "show", str(lab.run_id))[0] == 0
    assert cli("audit", "verify")[0] == 0


def test_logout_and_idle_expiry_end_the_session(cli: Cli, lab: Lab) -> None:
    cli.login("tom")
    assert cli("whoami")[1].startswith("tom (Tom Example), roles: technician")
    code, out = cli("logout")
    assert code == 0 and "tom logged out" in out
    assert cli("runs", "list")[0] == 2
    cli.login("tom")
    stale = (datetime.now(UTC) - timedelta(hours=9)).isoformat(timespec="milliseconds")
    with lab.store.engine.begin() as conn:
        conn.execute(sessions.update().values(last_seen_at=stale))
    code, out = cli("runs", "list")
    assert code == 2 and "expired after 8 h without activity" in out


def test_the_session_file_holds_a_token_the_database_only_knows_hashed(
    cli: Cli, lab: Lab, tmp_path: Path
) -> None:
    cli.login("tom")
    session_file = tmp_path / "config" / "sessions.json"
    assert session_file.stat().st_mode & 0o077 == 0
    text = session_file.read_text()
    with lab.store.engine.connect() as conn:
        stored = conn.execute(sa.select(sessions.c.token_sha256)).scalar_one()
    assert stored not in text
