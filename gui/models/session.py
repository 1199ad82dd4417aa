"""Who uses the app: a logged-in user of the database, or open bench mode (no Qt here).

A database without registered users runs in open bench mode, as on the command line
(docs/compliance.md): no login, the OS login is recorded as the actor. Once users exist the
app asks for a login before its window opens, attributes every audit entry to that user and
refuses actions the user's roles do not allow, naming the role needed.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from instrument.compliance import sessions
from instrument.compliance.access import open_bench_actor
from instrument.compliance.audit import OPEN_BENCH_ROLE, Actor, acting_as
from instrument.compliance.users import any_users
from instrument.storage import Store


@dataclass(frozen=True)
class AppUser:
    """The person at the bench, and what their roles allow."""

    username: str
    full_name: str = ""
    roles: tuple[str, ...] = ()
    open_bench: bool = False

    @property
    def label(self) -> str:
        if self.open_bench:
            return f"{self.username} (open bench mode)"
        return f"{self.full_name or self.username} ({', '.join(self.roles)})"

    def refusal(self, action: str, *roles: str) -> str | None:
        """None if the user may do ``action`` (holds one of ``roles``); else why not."""
        if self.open_bench or any(role in self.roles for role in roles):
            return None
        return (
            f"{action} needs the {' or '.join(roles)} role; you are logged in as "
            f"{self.username} ({', '.join(self.roles) or 'no roles'})"
        )

    def actor(self) -> Actor:
        if self.open_bench:
            return open_bench_actor()
        return Actor(self.username, ",".join(self.roles))

    def acting(self) -> AbstractContextManager[Actor]:
        """Attribute the audit entries written meanwhile (any thread) to this user."""
        return acting_as(self.actor())


def login_required(db: str | Path | None) -> bool:
    """True once the database has registered users (runs on a worker: it opens the DB)."""
    store = Store(db)
    try:
        return any_users(store)
    finally:
        store.close()


def open_bench_user() -> AppUser:
    return AppUser(username=open_bench_actor().name, roles=(OPEN_BENCH_ROLE,), open_bench=True)


def log_in(db: str | Path | None, username: str, password: str) -> AppUser:
    """Check the password (the lockout counts wrong ones) and start a session (audited)."""
    store = Store(db)
    try:
        session = sessions.login(store, username, password)
    finally:
        store.close()
    user = session.user
    return AppUser(username=user.username, full_name=user.full_name, roles=user.roles)


def log_out(db: str | Path | None) -> None:
    store = Store(db)
    try:
        sessions.logout(store)
    finally:
        store.close()
