"""The audit trail: append-only, hash-chained, written in the same transaction as the change.

Every entry holds who (actor and role), when (UTC), what (action, object, old and new value as
canonical JSON) and why (reason), plus the hash of the entry before it. An entry's hash is
SHA-256 over the canonical JSON of all its fields including ``prev_hash``, so editing,
deleting, inserting or reordering entries breaks the chain at a point ``verify`` names.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from instrument.compliance import schema  # a module: storage imports this one at its end
from instrument.compliance.errors import ReasonRequiredError
from instrument.storage import Store, utcnow

GENESIS_HASH = "0" * 64
OPEN_BENCH_ROLE = "open-bench"
NO_SESSION_ROLE = "no-session"
_PG_CHAIN_LOCK = 7249114  # serialises chain appends across connections on PostgreSQL

HASHED_FIELDS = (
    "seq",
    "time",
    "actor",
    "role",
    "action",
    "object_type",
    "object_id",
    "run_id",
    "lot_id",
    "old_value",
    "new_value",
    "reason",
    "prev_hash",
)


@dataclass(frozen=True)
class Actor:
    """Who performs the actions of this process: a logged-in user, or the OS login."""

    name: str
    role: str


_actor_lock = threading.Lock()
_actor: Actor | None = None


def current_actor() -> Actor | None:
    with _actor_lock:
        return _actor


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    """Attribute every audit entry written meanwhile (any thread of the process) to ``actor``."""
    global _actor  # noqa: PLW0603 - one acting user per process, read by engine threads
    with _actor_lock:
        previous, _actor = _actor, actor
    try:
        yield actor
    finally:
        with _actor_lock:
            _actor = previous


def os_login() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text: the same value always gives the same string."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_hash(entry: Mapping[str, Any]) -> str:
    return sha256_text(canonical_json({k: entry[k] for k in HASHED_FIELDS}))


def require_reason(reason: str | None, what: str) -> str:
    """The reason for a change to an existing record, or a refusal saying how to give one."""
    if reason is None or not reason.strip():
        raise ReasonRequiredError(
            f"{what}; a change to an existing record needs a reason: add --reason TEXT "
            "(nothing was changed)"
        )
    return reason.strip()


def _fallback_actor(conn: sa.Connection) -> Actor:
    """No user acts in this process: the OS login, in open bench mode or outside the CLI."""
    has_users = conn.execute(sa.select(schema.users.c.id).limit(1)).first() is not None
    return Actor(os_login(), NO_SESSION_ROLE if has_users else OPEN_BENCH_ROLE)


def record(
    conn: sa.Connection,
    action: str,
    object_type: str,
    object_id: Any,
    *,
    old: Any = None,
    new: Any = None,
    reason: str | None = None,
    run_id: int | None = None,
    lot_id: str | None = None,
    actor: Actor | None = None,
) -> int:
    """Append one entry in the caller's transaction; returns its sequence number."""
    who = actor or current_actor() or _fallback_actor(conn)
    trail = schema.audit_trail
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_CHAIN_LOCK})
    else:  # take the write lock before reading the head, so two writers cannot fork the chain
        conn.execute(trail.update().where(sa.false()).values(seq=trail.c.seq))
    head = conn.execute(
        sa.select(trail.c.seq, trail.c.hash).order_by(trail.c.seq.desc()).limit(1)
    ).first()
    entry: dict[str, Any] = {
        "seq": 1 if head is None else int(head[0]) + 1,
        "time": utcnow(),
        "actor": who.name,
        "role": who.role,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "run_id": run_id,
        "lot_id": lot_id,
        "old_value": None if old is None else canonical_json(old),
        "new_value": None if new is None else canonical_json(new),
        "reason": reason,
        "prev_hash": GENESIS_HASH if head is None else str(head[1]),
    }
    entry["hash"] = entry_hash(entry)
    conn.execute(trail.insert().values(**entry))
    return int(entry["seq"])


def record_now(store: Store, action: str, object_type: str, object_id: Any, **kw: Any) -> int:
    """Append one entry in a transaction of its own (events that change no other table)."""
    with store.engine.begin() as conn:
        return record(conn, action, object_type, object_id, **kw)


# -- reading and verifying ----------------------------------------------------------------------
@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    problem: str = ""
    bad_seq: int | None = None


def _describe(row: Mapping[str, Any]) -> str:
    return (
        f"{row['time']} {row['actor']} ({row['role']}) {row['action']} "
        f"{row['object_type']} {row['object_id']}"
    )


def verify(store: Store, expect_hash: str | None = None) -> VerifyResult:
    """Recompute the chain; the result names the first entry that is wrong and why."""
    prev_hash, expected_seq, seen_expected = GENESIS_HASH, 1, expect_hash is None
    with store.engine.connect() as conn:
        trail = schema.audit_trail
        rows = conn.execute(sa.select(trail).order_by(trail.c.seq))
        for raw in rows:
            row = dict(raw._mapping)
            seq = int(row["seq"])
            if seq != expected_seq:
                return VerifyResult(
                    False,
                    expected_seq - 1,
                    expected_seq - 1,
                    prev_hash,
                    f"entry {expected_seq} is missing: the next stored entry is {seq} "
                    "(entries were deleted or renumbered)",
                    expected_seq,
                )
            if row["prev_hash"] != prev_hash:
                return VerifyResult(
                    False,
                    seq - 1,
                    seq - 1,
                    prev_hash,
                    f"entry {seq} ({_describe(row)}) does not follow entry {seq - 1}: its "
                    f"prev_hash is not the hash of entry {seq - 1} (entries were deleted, "
                    f"inserted or reordered, or entry {seq - 1} was altered and re-hashed)",
                    seq,
                )
            if entry_hash(row) != row["hash"]:
                return VerifyResult(
                    False,
                    seq - 1,
                    seq - 1,
                    prev_hash,
                    f"entry {seq} ({_describe(row)}) does not match its hash: it was edited "
                    "after it was written",
                    seq,
                )
            seen_expected = seen_expected or row["hash"] == expect_hash
            prev_hash, expected_seq = row["hash"], seq + 1
    count = expected_seq - 1
    if not seen_expected:
        return VerifyResult(
            False,
            count,
            count,
            prev_hash,
            f"no entry has the hash {expect_hash}: entries recorded up to that point were "
            "removed (the trail was truncated or replaced)",
        )
    return VerifyResult(True, count, count, prev_hash)


def entries(
    store: Store,
    *,
    run_id: int | None = None,
    lot_id: str | None = None,
    limit: int | None = 50,
) -> list[dict[str, Any]]:
    """The newest entries (oldest first), optionally only those of one run or one lot."""
    trail = schema.audit_trail
    query = sa.select(trail).order_by(trail.c.seq.desc())
    if run_id is not None:
        query = query.where(trail.c.run_id == run_id)
    if lot_id is not None:
        query = query.where(trail.c.lot_id == lot_id)
    if limit is not None:
        query = query.limit(limit)
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        for key in ("old_value", "new_value"):
            row[key] = None if row[key] is None else json.loads(row[key])
    return rows[::-1]


def count(store: Store) -> int:
    with store.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(schema.audit_trail)
        return int(conn.execute(query).scalar_one())


def require_correction_reason(
    store: Store, tube_id: str, analyte: str, reason: str | None
) -> str | None:
    """A value typed over an existing one corrects it: refuse that without a reason."""
    old = store.latest_sample_value(tube_id, analyte)
    if old is None:
        return reason
    shown = "no value" if old["value"] is None else f"{old['value']:g} {old['unit']}"
    return require_reason(
        reason,
        f"{tube_id} already has {analyte} = {shown} ({old['origin']}, "
        f"{old['entered_at'][:19]} UTC); entering another value corrects it",
    )
