"""Password controls: argon2 hashes, lockout after wrong passwords, disabled and expired users."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from instrument.compliance.audit import entries
from instrument.compliance.schema import users
from tests.compliance.conftest import PASSWORDS, Cli, Lab, count_rows, counts

WRITES = ("user_sessions", "runs", "results", "signatures", "lots")


def test_passwords_are_stored_as_argon2id_hashes_only(lab: Lab, db: object) -> None:
    with lab.store.engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(sa.select(users.c.password_hash))]
    assert len(hashes) == 4 and all(h.startswith("$argon2id$") for h in hashes)
    raw = Path(str(db)).read_bytes()
    assert all(p.encode() not in raw for p in PASSWORDS.values())
    assert all("password" not in str(e["new_value"]) for e in entries(lab.store, limit=None))


def test_five_wrong_passwords_lock_the_account(cli: Cli, lab: Lab) -> None:
    before = counts(lab.store, *WRITES)
    for attempt in range(1, 5):
        code, out = cli("login", "tom", password="wrong-password")
        assert code == 2 and f"{5 - attempt} attempt" in out and "left" in out
    code, out = cli("login", "tom", password="wrong-password")
    assert code == 2 and "now locked for 15 min after 5 wrong passwords" in out
    code, out = cli("login", "tom", password=PASSWORDS["tom"])
    assert code == 2 and "is locked after too many wrong passwords" in out
    assert counts(lab.store, *WRITES) == before
    failed = [e for e in entries(lab.store, limit=None) if e["action"] == "login.failed"]
    assert len(failed) == 5 and all(e["object_id"] == "tom" for e in failed)
    assert entries(lab.store, limit=1)[0]["action"] == "user.lock"
    # the lock ends by itself after the lockout time
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="milliseconds")
    with lab.store.engine.begin() as conn:
        conn.execute(users.update().where(users.c.username == "tom").values(locked_until=past))
    cli.login("tom")


def test_lockout_limit_is_an_admin_setting(cli: Cli, lab: Lab) -> None:
    cli.login("root")
    code, out = cli("users", "policy", "--max-failed-logins", "2")
    assert code == 2 and "needs a reason" in out
    code, out = cli(
        "users",
        "policy",
        "--max-failed-logins",
        "2",
        "--lockout-minutes",
        "30",
        "--reason",
        "site SOP 12",
    )
    assert code == 0 and "max_failed_logins: 2" in out
    assert cli("login", "ann", password="nope-nope")[0] == 2
    code, out = cli("login", "ann", password="nope-nope")
    assert "locked for 30 min after 2 wrong passwords" in out


def test_disabled_account_is_refused(cli: Cli, lab: Lab) -> None:
    cli.login("root")
    code, out = cli("users", "disable", "tom")
    assert code == 2 and "needs a reason" in out
    assert cli("users", "disable", "tom", "--reason", "left the lab")[0] == 0
    before = counts(lab.store, *WRITES)
    code, out = cli("login", "tom", password=PASSWORDS["tom"])
    assert code == 2 and "the account tom is disabled" in out and "users enable tom" in out
    assert counts(lab.store, *WRITES) == before
    cli.login("root")
    assert cli("users", "enable", "tom", "--reason", "back")[0] == 0
    cli.login("tom")


def test_a_disabled_users_session_stops_working(cli: Cli, lab: Lab) -> None:
    cli.login("tom")
    with lab.store.engine.begin() as conn:
        conn.execute(users.update().where(users.c.username == "tom").values(active=False))
    code, out = cli("runs", "list")
    assert code == 2 and "disabled" in out


def test_expired_account_is_refused(cli: Cli, lab: Lab) -> None:
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    cli.login("root")
    code, _ = cli("users", "enable", "ann", "--valid-until", yesterday, "--reason", "contract")
    assert code == 0
    before = counts(lab.store, *WRITES)
    code, out = cli("login", "ann", password=PASSWORDS["ann"])
    assert code == 2 and f"the account ann expired on {yesterday}" in out
    assert counts(lab.store, *WRITES) == before


def test_unknown_user_and_weak_passwords(cli: Cli, lab: Lab) -> None:
    code, out = cli("login", "mallory", password="guess-guess")
    assert code == 2 and "wrong user name or password" in out
    cli.login("root")
    code, out = cli(
        "users", "add", "bob", "--full-name", "Bob B", "--role", "technician", new_password="short"
    )
    assert code == 2 and "too short" in out
    code, out = cli(
        "users",
        "add",
        "bob",
        "--full-name",
        "Bob B",
        "--role",
        "technician",
        new_password="bob-is-my-name",
    )
    assert code == 2 and "must not contain the user name" in out
    assert count_rows(lab.store, "users") == 4


def test_users_change_their_own_password(cli: Cli, lab: Lab) -> None:
    cli.login("tom")
    code, out = cli(
        "users", "set-password", password=PASSWORDS["tom"], new_password="a-new-secret-9"
    )
    assert code == 0, out
    code, out = cli(
        "users", "set-password", "ann", password=PASSWORDS["tom"], new_password="a-new-secret-9"
    )
    assert code == 2 and "needs the admin role" in out
    assert cli("login", "tom", password=PASSWORDS["tom"])[0] == 2
    assert cli("login", "tom", password="a-new-secret-9")[0] == 0
    assert cli("users", "list")[0] == 2  # listing accounts is for administrators
