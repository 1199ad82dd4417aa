"""CLI commands of the compliance layer, added to the ``hemocompat`` group by instrument.cli.

login, logout, whoami; users …; audit verify|show; sign run|lot; signatures show; reanalyse;
protocol new-version.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from instrument.compliance.access import open_bench_actor, requires
from instrument.compliance.audit import acting_as, current_actor
from instrument.compliance.errors import AccessDeniedError, ComplianceError
from instrument.compliance.users import (
    ADMIN,
    METHOD_DEVELOPER,
    NEW_PASSWORD_ENV,
    PASSWORD_ENV,
    REVIEWER,
    ROLE_DUTIES,
    ROLES,
    TECHNICIAN,
)
from instrument.storage import Store

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

_db_option = click.option("--db", default=None, help="Database file or SQLAlchemy URL.")
_role_choice = click.Choice(ROLES)


def ask_password(prompt: str) -> str:
    """The password from HEMOCOMPAT_PASSWORD (scripts, tests) or typed at the terminal."""
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if sys.stdin is None or not sys.stdin.isatty():
        raise ComplianceError(f"no terminal to ask for the password: set {PASSWORD_ENV}")
    return getpass.getpass(f"{prompt}: ")


def ask_new_password(username: str) -> str:
    """A new password from HEMOCOMPAT_NEW_PASSWORD, or typed twice at the terminal."""
    from_env = os.environ.get(NEW_PASSWORD_ENV)
    if from_env:
        return from_env
    if sys.stdin is None or not sys.stdin.isatty():
        raise ComplianceError(f"no terminal to ask for the new password: set {NEW_PASSWORD_ENV}")
    first = getpass.getpass(f"new password for {username}: ")
    if getpass.getpass("repeat it: ") != first:
        raise ComplianceError("the two passwords differ; nothing was changed")
    return first


def _acting_name() -> str:
    actor = current_actor()
    return actor.name if actor is not None else open_bench_actor().name


# -- sessions ------------------------------------------------------------------------------------
@click.command()
@click.argument("username")
@_db_option
def login(username: str, db: str | None) -> None:
    """Log in as USERNAME (password asked, or HEMOCOMPAT_PASSWORD)."""
    from instrument.compliance.sessions import database_key
    from instrument.compliance.sessions import login as start_session
    from instrument.compliance.users import any_users

    store = Store(db)
    if not any_users(store):
        raise ComplianceError(
            f"no users are registered in {database_key(store.url)} (open bench mode: nothing "
            "to log in to); an administrator creates the first account with "
            "`hemocompat users init-admin USER`"
        )
    session = start_session(store, username, ask_password(f"password for {username}"))
    console.print(
        f"logged in as {session.user.username} ({session.user.roles_text}) on "
        f"{database_key(store.url)}; the session ends after "
        f"{_idle_hours(store):g} h without activity or at `hemocompat logout`"
    )


def _idle_hours(store: Store) -> float:
    from instrument.compliance.users import get_policy

    return get_policy(store).session_idle_hours


@click.command()
@_db_option
def logout(db: str | None) -> None:
    """End your session on the database."""
    from instrument.compliance.sessions import logout as end_session

    who = end_session(Store(db))
    console.print(f"{who} logged out" if who else "no session to end")


@click.command()
@_db_option
def whoami(db: str | None) -> None:
    """Who you are logged in as, with which roles, until when."""
    from instrument.compliance.sessions import current_session, database_key
    from instrument.compliance.users import any_users

    store = Store(db)
    if not any_users(store):
        console.print(
            f"open bench mode: no users are registered in {database_key(store.url)}; actions "
            f"are recorded as the OS user {open_bench_actor().name}. Before GxP use an "
            "administrator creates the first account with `hemocompat users init-admin USER`."
        )
        return
    session = current_session(store, touch=False)
    user = session.user
    console.print(
        f"{user.username} ({user.full_name}), roles: {user.roles_text}\n"
        f"  database: {database_key(store.url)}\n"
        f"  logged in at {session.created_at}; session expires {session.expires_at} unless used"
    )


# -- users ---------------------------------------------------------------------------------------
@click.group()
def users() -> None:
    """User accounts and roles (administrators)."""


@users.command("init-admin")
@click.argument("username")
@click.option("--full-name", required=True, help="The person's full name (shown on signatures).")
@_db_option
def users_init_admin(username: str, full_name: str, db: str | None) -> None:
    """Create the first administrator; from then on every action needs a logged-in user."""
    from instrument.compliance.users import init_admin

    store = Store(db)
    actor = open_bench_actor()
    with acting_as(actor):
        user = init_admin(
            store,
            username,
            full_name=full_name,
            password=ask_new_password(username),
            created_by=actor.name,
        )
    console.print(
        f"administrator {user.username} created. Open bench mode has ended: every command now "
        f"needs a logged-in user (`hemocompat login {user.username}`)."
    )


@users.command("add")
@click.argument("username")
@click.option("--full-name", required=True, help="The person's full name (shown on signatures).")
@click.option("--role", "roles", multiple=True, type=_role_choice, help="Repeat for several.")
@click.option("--valid-until", default=None, help="Last day the account is valid (YYYY-MM-DD).")
@_db_option
@requires(ADMIN, open_bench=False)
def users_add(
    username: str, full_name: str, roles: tuple[str, ...], valid_until: str | None, db: str | None
) -> None:
    """Register a user (new password asked, or HEMOCOMPAT_NEW_PASSWORD)."""
    from instrument.compliance.users import add_user, check_roles

    check_roles(roles)
    user = add_user(
        Store(db),
        username,
        full_name=full_name,
        roles=roles,
        password=ask_new_password(username),
        valid_until=valid_until,
        created_by=_acting_name(),
    )
    console.print(f"user {user.username} added with role(s) {user.roles_text}")


@users.command("disable")
@click.argument("username")
@click.option("--reason", default=None, help="Why (recorded in the audit trail).")
@_db_option
@requires(ADMIN, open_bench=False)
def users_disable(username: str, reason: str | None, db: str | None) -> None:
    """Disable an account (it stays on record; it can no longer log in or sign)."""
    from instrument.compliance.users import disable_user

    disable_user(Store(db), username, by=_acting_name(), reason=reason)
    console.print(f"user {username} disabled")


@users.command("enable")
@click.argument("username")
@click.option("--valid-until", default=None, help="New last valid day (YYYY-MM-DD).")
@click.option("--reason", default=None, help="Why (recorded in the audit trail).")
@_db_option
@requires(ADMIN, open_bench=False)
def users_enable(
    username: str, valid_until: str | None, reason: str | None, db: str | None
) -> None:
    """Enable (or unlock, or extend) an account."""
    from instrument.compliance.users import enable_user

    enable_user(Store(db), username, reason=reason, valid_until=valid_until)
    console.print(f"user {username} enabled")


@users.command("set-roles")
@click.argument("username")
@click.option("--role", "roles", multiple=True, type=_role_choice, help="Repeat for several.")
@click.option("--reason", default=None, help="Why (recorded in the audit trail).")
@_db_option
@requires(ADMIN, open_bench=False)
def users_set_roles(
    username: str, roles: tuple[str, ...], reason: str | None, db: str | None
) -> None:
    """Replace a user's roles."""
    from instrument.compliance.users import set_roles

    user = set_roles(Store(db), username, roles, reason=reason)
    console.print(f"user {user.username}: role(s) {user.roles_text}")


@users.command("list")
@_db_option
@requires(ADMIN, open_bench=False)
def users_list(db: str | None) -> None:
    """List the accounts, their roles and state."""
    from instrument.compliance.users import list_users

    table = Table(title="Users")
    for col in ("user", "full name", "roles", "state", "valid until", "password set"):
        table.add_column(col)
    for u in list_users(Store(db)):
        state = "disabled" if not u.active else "expired" if u.expired() else "active"
        if u.locked_until and state == "active":
            state = f"locked until {u.locked_until[:16]}"
        table.add_row(
            u.username,
            u.full_name,
            u.roles_text,
            state,
            u.valid_until or "—",
            u.password_changed_at[:10],
        )
    console.print(table)
    console.print(
        "roles: " + "; ".join(f"{role}: {duty}" for role, duty in ROLE_DUTIES.items()),
        markup=False,
    )


@users.command("set-password")
@click.argument("username", required=False)
@click.option("--reason", default=None, help="Why (recorded in the audit trail).")
@_db_option
@requires(open_bench=False)
def users_set_password(username: str | None, reason: str | None, db: str | None) -> None:
    """Change your password (current one asked), or, as an administrator, anybody's."""
    from instrument.compliance.users import authenticate, set_password

    actor = current_actor()
    assert actor is not None
    target = username or actor.name
    store = Store(db)
    if target != actor.name:
        if ADMIN not in actor.role.split(","):
            raise AccessDeniedError(
                "`hemocompat users set-password` for another user needs the admin role; you "
                f"are logged in as {actor.name} ({actor.role})"
            )
    else:
        authenticate(store, actor.name, ask_password("current password"), purpose="password")
    set_password(store, target, ask_new_password(target), reason=reason)
    console.print(f"password of {target} changed")


@users.command("policy")
@click.option("--max-failed-logins", type=int, default=None, help="Wrong passwords before lock.")
@click.option("--lockout-minutes", type=int, default=None, help="How long an account is locked.")
@click.option("--idle-hours", type=float, default=None, help="Session ends after this idle time.")
@click.option("--min-password-length", type=int, default=None)
@click.option("--reason", default=None, help="Why (recorded in the audit trail).")
@_db_option
@requires(ADMIN, open_bench=False)
def users_policy(
    max_failed_logins: int | None,
    lockout_minutes: int | None,
    idle_hours: float | None,
    min_password_length: int | None,
    reason: str | None,
    db: str | None,
) -> None:
    """Show or change the lockout, session and password rules."""
    from instrument.compliance.users import set_policy

    policy = set_policy(
        Store(db),
        reason,
        max_failed_logins=max_failed_logins,
        lockout_minutes=lockout_minutes,
        session_idle_hours=idle_hours,
        min_password_length=min_password_length,
    )
    for key, value in policy.to_dict().items():
        console.print(f"  {key}: {value}")


# -- audit trail ---------------------------------------------------------------------------------
@click.group()
def audit() -> None:
    """The audit trail: who changed what, when and why."""


@audit.command("verify")
@click.option("--head", "head_hash", default=None, help="A head hash noted earlier: must exist.")
@_db_option
@requires()
def audit_verify(head_hash: str | None, db: str | None) -> None:
    """Recompute the hash chain; name the first entry edited, deleted or out of order."""
    from instrument.compliance.audit import verify

    result = verify(Store(db), head_hash)
    if not result.ok:
        err_console.print(f"[bold red]audit trail FAILED verification:[/] {result.problem}")
        err_console.print(f"entries 1–{result.entries} before it verify")
        raise SystemExit(1)
    console.print(
        f"audit trail OK: {result.entries} entries, head {result.head_seq} hash {result.head_hash}"
    )


def _value_text(value: Any) -> str:
    from instrument.compliance.audit import canonical_json

    if value is None:
        return ""
    text = canonical_json(value)
    return text if len(text) <= 120 else text[:117] + "…"


@audit.command("show")
@click.option("--run", "run_id", type=int, default=None, help="Only entries of this run.")
@click.option("--lot", "lot_id", default=None, help="Only entries of this lot.")
@click.option("--limit", default=50, show_default=True, help="The newest N entries.")
@_db_option
@requires()
def audit_show(run_id: int | None, lot_id: str | None, limit: int, db: str | None) -> None:
    """List audit entries (oldest first of the newest N)."""
    from instrument.compliance.audit import entries

    if run_id is not None and lot_id is not None:
        raise ComplianceError("choose --run ID or --lot ID, not both")
    rows = entries(Store(db), run_id=run_id, lot_id=lot_id, limit=limit)
    if not rows:
        console.print("no audit entries")
        return
    for e in rows:
        console.print(
            f"#{e['seq']} {e['time'][:23]} {e['actor']} ({e['role']}) {e['action']} "
            f"{e['object_type']} {e['object_id']}",
            markup=False,
        )
        if e["old_value"] is not None:
            console.print(f"    old: {_value_text(e['old_value'])}", markup=False)
        if e["new_value"] is not None:
            console.print(f"    new: {_value_text(e['new_value'])}", markup=False)
        if e["reason"]:
            console.print(f"    reason: {e['reason']}", markup=False)


# -- signatures ----------------------------------------------------------------------------------
@click.group()
def sign() -> None:
    """Sign a run or a lot electronically (reviewers; password re-entered)."""


def _sign(
    object_type: str, object_id: str, meaning: str | None, comment: str, db: str | None
) -> None:
    from instrument.compliance.signatures import MEANINGS, check_meaning
    from instrument.compliance.signatures import sign as give_signature

    meaning = check_meaning(meaning)
    store = Store(db)
    actor = current_actor()
    assert actor is not None
    signature_id = give_signature(
        store,
        object_type,
        object_id,
        meaning=meaning,
        password=ask_password(f"{actor.name}, re-enter your password to sign"),
        comment=comment,
    )
    console.print(
        f"signature {signature_id}: {object_type} {object_id} signed by {actor.name} — "
        f"{meaning} ({MEANINGS[meaning]})"
    )


@sign.command("run")
@click.argument("run_id")
@click.option("--meaning", default=None, help="review or approval (required).")
@click.option("--comment", default="", help="Optional comment stored with the signature.")
@_db_option
@requires(REVIEWER, open_bench=False)
def sign_run(run_id: str, meaning: str | None, comment: str, db: str | None) -> None:
    """Sign RUN_ID: its protocol hash, latest results, sample values and raw data digest."""
    _sign("run", run_id, meaning, comment, db)


@sign.command("lot")
@click.argument("lot_id")
@click.option("--meaning", default=None, help="review or approval (required).")
@click.option("--comment", default="", help="Optional comment stored with the signature.")
@_db_option
@requires(REVIEWER, open_bench=False)
def sign_lot(lot_id: str, meaning: str | None, comment: str, db: str | None) -> None:
    """Sign LOT_ID: its record, latest assessment and the runs behind it."""
    _sign("lot", lot_id, meaning, comment, db)


@click.group()
def signatures() -> None:
    """Electronic signatures and whether they still match what was signed."""


@signatures.command("show")
@click.argument("object_type", type=click.Choice(["run", "lot"]))
@click.argument("object_id")
@_db_option
@requires()
def signatures_show(object_type: str, object_id: str, db: str | None) -> None:
    """List the signatures of a run or lot as VALID or INVALID."""
    from instrument.compliance.signatures import signature_statuses

    rows = signature_statuses(Store(db), object_type, object_id)
    if not rows:
        console.print(f"{object_type} {object_id} has no signatures")
        return
    console.print(f"signatures of {object_type} {object_id}:")
    for sig in rows:
        status = "[green]VALID[/]" if sig.valid else "[bold red]INVALID[/]"
        console.print(
            f"  #{sig.id} {status} {sig.meaning} by {sig.full_name} ({sig.username}, {sig.role}) "
            f"at {sig.signed_at[:19]} UTC, content sha256 {sig.content_sha256}"
        )
        if sig.comment:
            console.print(f"      comment: {sig.comment}", markup=False)
        if sig.changed:
            console.print(f"      changed since signing: {', '.join(sig.changed)}", markup=False)


# -- re-analysis and protocol versions --------------------------------------------------------
@click.command()
@click.argument("run_id", type=int)
@click.option(
    "--protocol",
    "protocol_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="Alternative thresholds: a protocol file of the same assay.",
)
@click.option("--reason", default=None, help="Why the results are recomputed (required).")
@_db_option
@requires(TECHNICIAN, METHOD_DEVELOPER)
def reanalyse(run_id: int, protocol_file: str | None, reason: str | None, db: str | None) -> None:
    """Recompute a TEM or loop run from its stored raw samples as a new result version."""
    from instrument.compliance.reanalysis import reanalyse as recompute

    done = recompute(
        Store(db),
        run_id,
        reason=reason,
        protocol_file=Path(protocol_file) if protocol_file else None,
    )
    p = done.protocol
    console.print(
        f"run {run_id} re-analysed with {p['id']} v{p['version']} ({p['source']}, sha256 "
        f"{p['sha256'][:12]}…)"
    )
    for channel, (old, new) in sorted(done.versions.items()):
        shown = ", ".join(f"{k}={v}" for k, v in done.parameters[channel].items())
        console.print(f"  ch{channel}: result v{old} → v{new}: {shown}", markup=False)


@click.command("new-version")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="The new file.  [default: NAME-vN.yaml next to FILE]",
)
@click.option("--reason", default="", help="What changed (recorded with the version).")
@_db_option
@requires(METHOD_DEVELOPER)
def protocol_new_version(file: str, out_file: str | None, reason: str, db: str | None) -> None:
    """Save a protocol or method FILE as a new file with version + 1, and record it."""
    from instrument.compliance.protocol_versions import new_version

    done = new_version(
        Store(db), Path(file), out=Path(out_file) if out_file else None, reason=reason
    )
    console.print(
        f"{done.kind} {done.protocol_id} version {done.version} written to {done.path} "
        f"(sha256 {done.sha256})"
    )


def register(cli: click.Group, protocol: click.Group) -> None:
    """Add the compliance commands to the ``hemocompat`` group and its ``protocol`` group."""
    for command in (login, logout, whoami, users, audit, sign, signatures, reanalyse):
        cli.add_command(command)
    protocol.add_command(protocol_new_version)
