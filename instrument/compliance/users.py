"""User accounts, roles and password controls (argon2id hashes, lockout, expiry).

A database with no users runs in open bench mode (see ``instrument.compliance.access``); the
first administrator, created with ``init_admin``, ends it for good.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from instrument.compliance.audit import Actor, os_login, record, require_reason
from instrument.compliance.errors import ComplianceError, LoginError
from instrument.compliance.schema import settings, users
from instrument.storage import Store, utcnow

TECHNICIAN = "technician"
METHOD_DEVELOPER = "method-developer"
REVIEWER = "reviewer"
ADMIN = "admin"
ROLES = (TECHNICIAN, METHOD_DEVELOPER, REVIEWER, ADMIN)
ROLE_DUTIES = {
    TECHNICIAN: "runs assays, answers prompts, enters sample values",
    METHOD_DEVELOPER: "creates and versions protocol and method files",
    REVIEWER: "reviews, approves and signs results",
    ADMIN: "manages user accounts",
}

#: Environment variables for scripts and tests (an interactive user is asked instead).
PASSWORD_ENV = "HEMOCOMPAT_PASSWORD"
NEW_PASSWORD_ENV = "HEMOCOMPAT_NEW_PASSWORD"

#: The role recorded for failed logins: the OS login at the keyboard, not yet anybody.
UNAUTHENTICATED = "unauthenticated"

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Policy:
    """Password and session rules; an administrator changes them with ``users policy``."""

    max_failed_logins: int = 5
    lockout_minutes: int = 15
    session_idle_hours: float = 8.0
    min_password_length: int = 8

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def get_policy(store: Store) -> Policy:
    with store.engine.connect() as conn:
        stored = {r[0]: r[1] for r in conn.execute(sa.select(settings.c.key, settings.c.value))}
    default = Policy()
    values: dict[str, Any] = {}
    for key, value in default.to_dict().items():
        text = stored.get(f"policy.{key}")
        values[key] = value if text is None else type(value)(text)
    return Policy(**values)


def set_policy(store: Store, reason: str | None = None, **changes: Any) -> Policy:
    old = get_policy(store)
    new = Policy(**{**old.to_dict(), **{k: v for k, v in changes.items() if v is not None}})
    if new.max_failed_logins < 1 or new.lockout_minutes < 1 or new.session_idle_hours <= 0:
        raise ComplianceError(
            "policy: max failed logins and lockout minutes must be at least 1, idle hours > 0"
        )
    if new.min_password_length < 8:
        raise ComplianceError("policy: passwords must be at least 8 characters long")
    if new == old:
        return old
    require_reason(reason, "changing the password and session policy")
    with store.engine.begin() as conn:
        for key, value in new.to_dict().items():
            conn.execute(settings.delete().where(settings.c.key == f"policy.{key}"))
            conn.execute(settings.insert().values(key=f"policy.{key}", value=str(value)))
        record(
            conn,
            "policy.change",
            "policy",
            "login",
            old=old.to_dict(),
            new=new.to_dict(),
            reason=reason,
        )
    return new


@dataclass(frozen=True)
class User:
    username: str
    full_name: str
    roles: tuple[str, ...]
    active: bool
    valid_until: str | None
    failed_logins: int
    locked_until: str | None
    password_changed_at: str
    created_at: str
    created_by: str

    @property
    def roles_text(self) -> str:
        return ", ".join(self.roles)

    def public(self) -> dict[str, Any]:
        """The account as recorded in the audit trail (never the password hash)."""
        return {
            "username": self.username,
            "full_name": self.full_name,
            "roles": list(self.roles),
            "active": self.active,
            "valid_until": self.valid_until,
        }

    def expired(self, today: date | None = None) -> bool:
        if self.valid_until is None:
            return False
        return (today or datetime.now(UTC).date()) > date.fromisoformat(self.valid_until)


def _user(row: Any) -> User:
    m = row._mapping
    return User(
        username=m["username"],
        full_name=m["full_name"],
        roles=tuple(r for r in m["roles"].split(",") if r),
        active=bool(m["active"]),
        valid_until=m["valid_until"],
        failed_logins=int(m["failed_logins"] or 0),
        locked_until=m["locked_until"],
        password_changed_at=m["password_changed_at"],
        created_at=m["created_at"],
        created_by=m["created_by"],
    )


def any_users(store: Store) -> bool:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(users.c.id).limit(1)).first() is not None


def list_users(store: Store) -> list[User]:
    with store.engine.connect() as conn:
        return [_user(r) for r in conn.execute(sa.select(users).order_by(users.c.username))]


def get_user(store: Store, username: str) -> User:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    if row is None:
        raise ComplianceError(f"no user {username!r}; `hemocompat users list` shows the accounts")
    return _user(row)


def check_roles(roles: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(sorted(set(roles)))
    if not chosen:
        raise ComplianceError(f"give at least one --role; roles: {', '.join(ROLES)}")
    unknown = [r for r in chosen if r not in ROLES]
    if unknown:
        raise ComplianceError(f"unknown role {unknown[0]!r}; roles: {', '.join(ROLES)}")
    return chosen


def check_password(policy: Policy, username: str, password: str) -> None:
    """Refuse passwords that are short, or contain the user name (21 CFR 11.300)."""
    if len(password) < policy.min_password_length:
        raise ComplianceError(
            f"the password is too short: at least {policy.min_password_length} characters"
        )
    if username.lower() in password.lower():
        raise ComplianceError("the password must not contain the user name")


def _check_valid_until(valid_until: str | None) -> str | None:
    if valid_until is None:
        return None
    try:
        return date.fromisoformat(valid_until).isoformat()
    except ValueError:
        raise ComplianceError(f"--valid-until {valid_until!r}: expected YYYY-MM-DD") from None


def _check_username(username: str) -> str:
    name = username.strip()
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise ComplianceError(f"user name {username!r}: 1–64 characters without spaces")
    return name


def add_user(
    store: Store,
    username: str,
    *,
    full_name: str,
    roles: Iterable[str],
    password: str,
    valid_until: str | None = None,
    created_by: str,
) -> User:
    """Register an account; the password is stored only as an argon2id hash."""
    name = _check_username(username)
    chosen = check_roles(roles)
    if not full_name.strip():
        raise ComplianceError("give the person's full name (--full-name): signatures show it")
    check_password(get_policy(store), name, password)
    now = utcnow()
    row = {
        "username": name,
        "full_name": full_name.strip(),
        "roles": ",".join(chosen),
        "password_hash": _hasher.hash(password),
        "active": True,
        "valid_until": _check_valid_until(valid_until),
        "failed_logins": 0,
        "locked_until": None,
        "password_changed_at": now,
        "created_at": now,
        "created_by": created_by,
    }
    with store.engine.begin() as conn:
        if conn.execute(sa.select(users.c.id).where(users.c.username == name)).first():
            raise ComplianceError(f"user {name} already exists; `hemocompat users list`")
        conn.execute(users.insert().values(**row))
        user = _user(conn.execute(sa.select(users).where(users.c.username == name)).one())
        record(conn, "user.create", "user", name, new=user.public())
    return user


def init_admin(
    store: Store, username: str, *, full_name: str, password: str, created_by: str
) -> User:
    """The first administrator; from then on every action needs a logged-in user."""
    if any_users(store):
        raise ComplianceError(
            "users are already registered: an administrator adds accounts with "
            "`hemocompat users add`"
        )
    return add_user(
        store,
        username,
        full_name=full_name,
        roles=(ADMIN,),
        password=password,
        created_by=created_by,
    )


def _change(store: Store, username: str, action: str, reason: str | None, **values: Any) -> User:
    old = get_user(store, username)
    with store.engine.begin() as conn:
        conn.execute(users.update().where(users.c.username == username).values(**values))
        new = _user(conn.execute(sa.select(users).where(users.c.username == username)).one())
        record(conn, action, "user", username, old=old.public(), new=new.public(), reason=reason)
    return new


def disable_user(store: Store, username: str, *, by: str, reason: str | None) -> User:
    user = get_user(store, username)
    if username == by:
        raise ComplianceError("you cannot disable your own account; ask another administrator")
    if not user.active:
        raise ComplianceError(f"user {username} is already disabled")
    return _change(
        store,
        username,
        "user.disable",
        require_reason(reason, f"disabling {username}"),
        active=False,
    )


def enable_user(
    store: Store, username: str, *, reason: str | None, valid_until: str | None = None
) -> User:
    user = get_user(store, username)
    values: dict[str, Any] = {"active": True, "failed_logins": 0, "locked_until": None}
    if valid_until is not None:
        values["valid_until"] = _check_valid_until(valid_until)
    if user.active and valid_until is None and user.locked_until is None:
        raise ComplianceError(f"user {username} is already enabled")
    return _change(
        store, username, "user.enable", require_reason(reason, f"enabling {username}"), **values
    )


def set_roles(store: Store, username: str, roles: Iterable[str], *, reason: str | None) -> User:
    chosen = check_roles(roles)
    return _change(
        store,
        username,
        "user.roles",
        require_reason(reason, f"changing the roles of {username}"),
        roles=",".join(chosen),
    )


def set_password(store: Store, username: str, password: str, *, reason: str | None = None) -> None:
    check_password(get_policy(store), username, password)
    _change(
        store,
        username,
        "user.set-password",
        reason,
        password_hash=_hasher.hash(password),
        password_changed_at=utcnow(),
        failed_logins=0,
        locked_until=None,
    )


# -- authentication -----------------------------------------------------------------------------
def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def refuse_unusable(user: User) -> None:
    """Refuse a disabled, expired or locked account with what to do about it."""
    if not user.active:
        raise LoginError(
            f"the account {user.username} is disabled; an administrator can enable it "
            f"(`hemocompat users enable {user.username}`)"
        )
    if user.expired():
        raise LoginError(
            f"the account {user.username} expired on {user.valid_until}; an administrator can "
            f"extend it (`hemocompat users enable {user.username} --valid-until YYYY-MM-DD`)"
        )
    if user.locked_until is not None:
        until = _parse_time(user.locked_until)
        now = datetime.now(UTC)
        if until > now:
            minutes = max(1, round((until - now).total_seconds() / 60))
            raise LoginError(
                f"the account {user.username} is locked after too many wrong passwords until "
                f"{user.locked_until[11:16]} UTC (about {minutes} min); try again later or ask "
                "an administrator to unlock it"
            )


def authenticate(store: Store, username: str, password: str, *, purpose: str = "login") -> User:
    """Check a password; wrong ones count towards the lockout, which is recorded."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.username == username)).first()
    if row is None:
        with store.engine.begin() as conn:
            record(
                conn,
                f"{purpose}.failed",
                "user",
                username,
                new={"cause": "unknown user"},
                actor=Actor(os_login(), UNAUTHENTICATED),
            )
        raise LoginError("wrong user name or password")
    user = _user(row)
    refuse_unusable(user)
    ok: bool
    try:
        ok = _hasher.verify(row._mapping["password_hash"], password)
    except (VerificationError, InvalidHashError):
        ok = False
    actor = Actor(os_login(), UNAUTHENTICATED)
    if not ok:
        policy = get_policy(store)
        failed = user.failed_logins + 1
        locked = failed >= policy.max_failed_logins
        values: dict[str, Any] = {"failed_logins": 0 if locked else failed}
        if locked:
            until = datetime.now(UTC) + timedelta(minutes=policy.lockout_minutes)
            values["locked_until"] = until.isoformat(timespec="milliseconds")
        with store.engine.begin() as conn:
            conn.execute(users.update().where(users.c.username == username).values(**values))
            record(
                conn,
                f"{purpose}.failed",
                "user",
                username,
                new={"cause": "wrong password", "failed_logins": failed},
                actor=actor,
            )
            if locked:
                record(
                    conn,
                    "user.lock",
                    "user",
                    username,
                    new={"locked_until": values["locked_until"]},
                    reason=f"{failed} wrong passwords in a row",
                    actor=actor,
                )
        if locked:
            raise LoginError(
                f"wrong password; the account {username} is now locked for "
                f"{policy.lockout_minutes} min after {failed} wrong passwords"
            )
        left = policy.max_failed_logins - failed
        what = "user name or password" if purpose == "login" else "password"
        raise LoginError(
            f"wrong {what} ({left} attempt{'s' if left != 1 else ''} left before the account "
            "is locked); nothing was changed"
        )
    values = {"failed_logins": 0, "locked_until": None}
    if _hasher.check_needs_rehash(row._mapping["password_hash"]):
        values["password_hash"] = _hasher.hash(password)
    if user.failed_logins or user.locked_until or "password_hash" in values:
        with store.engine.begin() as conn:
            conn.execute(users.update().where(users.c.username == username).values(**values))
    return get_user(store, username)


def password_from_env(name: str = PASSWORD_ENV) -> str | None:
    value = os.environ.get(name)
    return value if value else None
