"""CLI sessions: ``hemocompat login`` leaves a random token in a file only the user can read.

The database keeps only the token's SHA-256, who it belongs to and when it was last used; a
session ends at logout or after the policy's idle time. One session per database and OS user.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from platformdirs import user_config_dir

from instrument.compliance.audit import Actor, record
from instrument.compliance.errors import AccessDeniedError
from instrument.compliance.schema import sessions
from instrument.compliance.users import (
    User,
    authenticate,
    get_policy,
    get_user,
    refuse_unusable,
)
from instrument.errors import HemocompatError
from instrument.storage import Store, utcnow

#: Overrides the folder of the session file (tests, kiosk set-ups).
CONFIG_DIR_ENV = "HEMOCOMPAT_CONFIG_DIR"


def session_file() -> Path:
    base = os.environ.get(CONFIG_DIR_ENV) or user_config_dir("hemocompat", appauthor=False)
    return Path(base) / "sessions.json"


def database_key(url: str) -> str:
    """One name per database, whatever relative path or URL spelling reached it."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return f"sqlite:///{Path(str(parsed.database)).expanduser().resolve()}"
    return parsed.render_as_string(hide_password=True)


def _read_file() -> dict[str, Any]:
    path = session_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise HemocompatError(
            f"cannot read the session file {path}: {exc}; delete it and log in again"
        ) from None
    return data if isinstance(data, dict) else {}


def _write_file(data: dict[str, Any]) -> None:
    path = session_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".sessions-", dir=path.parent)
    try:
        os.chmod(tmp, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _token_sha(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Session:
    user: User
    token_sha256: str
    created_at: str
    last_seen_at: str
    expires_at: str


def login(store: Store, username: str, password: str) -> Session:
    """Check the password, end any earlier session of this OS user, start a new one."""
    user = authenticate(store, username, password)
    key = database_key(store.url)
    data = _read_file()
    earlier = data.get(key)
    if isinstance(earlier, dict) and isinstance(earlier.get("token"), str):
        _end(store, _token_sha(earlier["token"]), "logout", "a new login replaced the session")
    token = secrets.token_urlsafe(32)
    token_sha = _token_sha(token)
    now = utcnow()
    actor = Actor(user.username, ",".join(user.roles))
    with store.engine.begin() as conn:
        conn.execute(
            sessions.insert().values(
                token_sha256=token_sha,
                username=user.username,
                created_at=now,
                last_seen_at=now,
                ended_at=None,
            )
        )
        record(conn, "login", "user", user.username, new={"session": token_sha[:12]}, actor=actor)
    data[key] = {"username": user.username, "token": token, "created_at": now}
    _write_file(data)
    return _session(store, user, token_sha, now, now)


def _end(store: Store, token_sha: str, action: str, reason: str | None) -> str | None:
    with store.engine.begin() as conn:
        row = conn.execute(
            sa.select(sessions.c.username).where(
                sessions.c.token_sha256 == token_sha, sessions.c.ended_at.is_(None)
            )
        ).first()
        if row is None:
            return None
        conn.execute(
            sessions.update().where(sessions.c.token_sha256 == token_sha).values(ended_at=utcnow())
        )
        username = str(row[0])
        record(
            conn,
            action,
            "user",
            username,
            new={"session": token_sha[:12]},
            reason=reason,
            actor=Actor(username, "-"),
        )
    return username


def logout(store: Store) -> str | None:
    """End this OS user's session on the database; returns who was logged in, if anybody."""
    key = database_key(store.url)
    data = _read_file()
    entry = data.pop(key, None)
    _write_file(data)
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
        return None
    return _end(store, _token_sha(entry["token"]), "logout", None) or entry.get("username")


def _session(store: Store, user: User, token_sha: str, created: str, seen: str) -> Session:
    idle = timedelta(hours=get_policy(store).session_idle_hours)
    expires = datetime.fromisoformat(seen) + idle
    return Session(user, token_sha, created, seen, expires.isoformat(timespec="seconds"))


def not_logged_in(store: Store) -> AccessDeniedError:
    return AccessDeniedError(
        f"you are not logged in to {database_key(store.url)}; log in with `hemocompat login USER`"
    )


def current_session(store: Store, *, touch: bool = True) -> Session:
    """The live session of this OS user on this database, or a refusal saying why not."""
    entry = _read_file().get(database_key(store.url))
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
        raise not_logged_in(store)
    token_sha = _token_sha(entry["token"])
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(sessions).where(sessions.c.token_sha256 == token_sha)).first()
    if row is None or row._mapping["ended_at"] is not None:
        raise AccessDeniedError(
            "your session has ended (logged out elsewhere); log in again with "
            "`hemocompat login USER`"
        )
    m = row._mapping
    policy = get_policy(store)
    seen = datetime.fromisoformat(m["last_seen_at"])
    if datetime.now(UTC) - seen > timedelta(hours=policy.session_idle_hours):
        raise AccessDeniedError(
            f"your session expired after {policy.session_idle_hours:g} h without activity; "
            f"log in again with `hemocompat login {m['username']}`"
        )
    user = get_user(store, m["username"])
    refuse_unusable(user)
    now = m["last_seen_at"]
    if touch:
        now = utcnow()
        with store.engine.begin() as conn:
            conn.execute(
                sessions.update()
                .where(sessions.c.token_sha256 == token_sha)
                .values(last_seen_at=now)
            )
    return _session(store, user, token_sha, m["created_at"], now)
