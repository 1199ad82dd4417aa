"""Who may do what: one decorator on each CLI command, checked before the command runs.

A database with no registered users is in **open bench mode**: every command runs and the
audit trail records the OS login as the actor (role ``open-bench``). Once the first
administrator exists, every command needs a logged-in user, and a command that creates or
changes data needs the role named in its decorator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa

from instrument.compliance.audit import OPEN_BENCH_ROLE, Actor, acting_as, os_login
from instrument.compliance.errors import AccessDeniedError
from instrument.storage import Store, default_db_path

F = TypeVar("F", bound=Callable[..., Any])


def _missing_sqlite_file(db: str | Path | None) -> bool:
    """A SQLite database that does not exist yet has no users (and is not created here)."""
    text = str(default_db_path() if db is None else db)
    if "://" not in text:
        return not Path(text).expanduser().exists()
    url = sa.engine.make_url(text)
    if url.get_backend_name() != "sqlite":
        return False
    return url.database in (None, "", ":memory:") or not Path(url.database).expanduser().exists()


def open_bench_actor() -> Actor:
    return Actor(os_login(), OPEN_BENCH_ROLE)


def authorize(
    db: str | Path | None, roles: tuple[str, ...], command: str, *, open_bench: bool = True
) -> Actor:
    """The actor for ``command`` on ``db``, or a refusal naming the role it needs."""
    from instrument.compliance.sessions import current_session
    from instrument.compliance.users import any_users

    needs = " or ".join(roles)
    store = None if _missing_sqlite_file(db) else Store(db)
    try:
        if store is None or not any_users(store):
            if open_bench:
                return open_bench_actor()
            where = str(default_db_path() if db is None else db) if store is None else store.url
            raise AccessDeniedError(
                f"`{command}` needs a registered user"
                + (f" with the {needs} role" if roles else "")
                + f"; no users are registered in {where} (open bench mode). An administrator "
                "creates the first account with `hemocompat users init-admin USER`"
            )
        try:
            session = current_session(store, touch=False)
        except AccessDeniedError as exc:
            role_text = f" with the {needs} role" if roles else ""
            raise AccessDeniedError(
                f"`{command}` needs a logged-in user{role_text}: {exc}"
            ) from None
        user = session.user
        if roles:
            held = [r for r in roles if r in user.roles]
            if not held:
                raise AccessDeniedError(
                    f"`{command}` needs the {needs} role; you are logged in as "
                    f"{user.username} ({user.roles_text})"
                )
            role = held[0]
        else:
            role = ",".join(user.roles)
        current_session(store)  # the session stays alive while it is used
        return Actor(user.username, role)
    finally:
        if store is not None:
            store.close()


def requires(*roles: str, open_bench: bool = True) -> Callable[[F], F]:
    """Decorate a click command: refuse it unless the user holds one of ``roles``.

    No roles: any logged-in user (read-only commands). ``open_bench=False``: refused even in
    open bench mode (electronic signatures and user management need registered users).
    Every audit entry the command writes is attributed to the authorised user.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = click.get_current_context(silent=True)
            command = ctx.command_path if ctx is not None else func.__name__
            actor = authorize(kwargs.get("db"), roles, command, open_bench=open_bench)
            with acting_as(actor):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
