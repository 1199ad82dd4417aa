"""Tables of the compliance layer, registered on ``instrument.storage.metadata``.

They live in the results database, so a record, its audit entries and its signatures are
written in one transaction. The audit trail and the signatures are append-only: besides the
hash chain that makes any edit detectable, the database itself refuses UPDATE and DELETE on
them (triggers on SQLite and PostgreSQL).
"""

from __future__ import annotations

import sqlalchemy as sa

from instrument.storage import metadata

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("full_name", sa.String(200), nullable=False),
    sa.Column("roles", sa.String(200), nullable=False),  # comma-separated, sorted
    sa.Column("password_hash", sa.Text, nullable=False),  # argon2id, never the password
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("valid_until", sa.String(10), nullable=True),  # YYYY-MM-DD, last valid day (UTC)
    sa.Column("failed_logins", sa.Integer, nullable=False, default=0),
    sa.Column("locked_until", sa.String(32), nullable=True),
    sa.Column("password_changed_at", sa.String(32), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
)

sessions = sa.Table(
    "user_sessions",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),  # the token stays client-side
    sa.Column("username", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("last_seen_at", sa.String(32), nullable=False),
    sa.Column("ended_at", sa.String(32), nullable=True),
)

settings = sa.Table(
    "compliance_settings",
    metadata,
    sa.Column("key", sa.String(60), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

audit_trail = sa.Table(
    "audit_trail",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("time", sa.String(32), nullable=False),  # UTC, ISO 8601
    sa.Column("actor", sa.String(120), nullable=False),
    sa.Column("role", sa.String(60), nullable=False),
    sa.Column("action", sa.String(60), nullable=False),
    sa.Column("object_type", sa.String(40), nullable=False),
    sa.Column("object_id", sa.String(120), nullable=False),
    sa.Column("run_id", sa.Integer, nullable=True, index=True),
    sa.Column("lot_id", sa.String(64), nullable=True, index=True),
    sa.Column("old_value", sa.Text, nullable=True),  # canonical JSON
    sa.Column("new_value", sa.Text, nullable=True),  # canonical JSON
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

signatures = sa.Table(
    "signatures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("object_type", sa.String(20), nullable=False),  # run | lot
    sa.Column("object_id", sa.String(64), nullable=False),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("full_name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(40), nullable=False),
    sa.Column("meaning", sa.String(20), nullable=False),
    sa.Column("comment", sa.Text, nullable=False, default=""),
    sa.Column("signed_at", sa.String(32), nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("content", sa.Text, nullable=False),  # the canonical JSON that was signed
)
sa.Index("ix_signatures_object", signatures.c.object_type, signatures.c.object_id)

protocol_versions = sa.Table(
    "protocol_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),  # protocol | method
    sa.Column("protocol_id", sa.String(120), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("derived_from_sha256", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.UniqueConstraint("kind", "protocol_id", "version"),
)

reanalyses = sa.Table(
    "reanalyses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("protocol_id", sa.String(120), nullable=False),
    sa.Column("protocol_version", sa.Integer, nullable=False),
    sa.Column("protocol_sha256", sa.String(64), nullable=False),
    sa.Column("protocol_text", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("versions", sa.Text, nullable=False),  # JSON: channel → [old, new] result version
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)

# The audit trail and the signatures are append-only in the database itself: triggers made
# by the baseline migration (instrument/migrations/versions/0001_baseline.py) refuse any
# UPDATE or DELETE, on SQLite and PostgreSQL alike.
