"""Baseline: the schema as first released (what ``metadata.create_all`` made before).

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Includes the triggers that keep the audit trail and the signatures append-only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_trail",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("time", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("role", sa.String(length=60), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("object_type", sa.String(length=40), nullable=False),
        sa.Column("object_id", sa.String(length=120), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("lot_id", sa.String(length=64), nullable=True),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("audit_trail", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_trail_lot_id"), ["lot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_trail_run_id"), ["run_id"], unique=False)

    op.create_table(
        "compliance_settings",
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "donors",
        sa.Column("donor_id", sa.String(length=64), nullable=False),
        sa.Column("draw_time", sa.String(length=32), nullable=True),
        sa.Column("anticoagulant", sa.String(length=40), nullable=False),
        sa.Column("anticoagulant_dose", sa.String(length=40), nullable=False),
        sa.Column("coagulability", sa.String(length=40), nullable=False),
        sa.Column("patient_group", sa.String(length=80), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("donor_id"),
    )
    op.create_table(
        "lot_assessments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lot_id", sa.String(length=64), nullable=False),
        sa.Column("method_id", sa.String(length=120), nullable=False),
        sa.Column("method_version", sa.Integer(), nullable=False),
        sa.Column("method_sha256", sa.String(length=64), nullable=False),
        sa.Column("method_text", sa.Text(), nullable=False),
        sa.Column("run_ids", sa.Text(), nullable=False),
        sa.Column("class_id", sa.String(length=80), nullable=True),
        sa.Column("assessment", sa.Text(), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("software_version", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lot_assessments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lot_assessments_lot_id"), ["lot_id"], unique=False)

    op.create_table(
        "lots",
        sa.Column("lot_id", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=200), nullable=False),
        sa.Column("tissue_source", sa.String(length=40), nullable=False),
        sa.Column("cell_donor", sa.String(length=64), nullable=True),
        sa.Column("passage", sa.Integer(), nullable=True),
        sa.Column("manufactured_on", sa.String(length=10), nullable=True),
        sa.Column("viability_pct", sa.Float(), nullable=True),
        sa.Column("cd142_pct", sa.Float(), nullable=True),
        sa.Column("cd142_mfi", sa.Float(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("lot_id"),
    )
    op.create_table(
        "protocol_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("protocol_id", sa.String(length=120), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("derived_from_sha256", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "protocol_id", "version"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("assay", sa.String(length=40), nullable=False),
        sa.Column("protocol_id", sa.String(length=120), nullable=False),
        sa.Column("protocol_version", sa.Integer(), nullable=False),
        sa.Column("protocol_title", sa.Text(), nullable=False),
        sa.Column("protocol_source", sa.Text(), nullable=False),
        sa.Column("protocol_text", sa.Text(), nullable=False),
        sa.Column("protocol_sha256", sa.String(length=64), nullable=False),
        sa.Column("style", sa.String(length=16), nullable=False),
        sa.Column("operator", sa.String(length=120), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_detail", sa.Text(), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("speed", sa.Float(), nullable=True),
        sa.Column("software_version", sa.String(length=40), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.String(length=32), nullable=True),
        sa.Column("ended_at", sa.String(length=32), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uid"),
    )
    op.create_table(
        "schema_info",
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "signatures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("object_type", sa.String(length=20), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("meaning", sa.String(length=20), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.String(length=32), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("signatures", schema=None) as batch_op:
        batch_op.create_index("ix_signatures_object", ["object_type", "object_id"], unique=False)

    op.create_table(
        "user_sessions",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("last_seen_at", sa.String(length=32), nullable=False),
        sa.Column("ended_at", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_sessions_username"), ["username"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("roles", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("valid_until", sa.String(length=10), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.String(length=32), nullable=True),
        sa.Column("password_changed_at", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("wall_time", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=True),
        sa.Column("t_ms", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_run_id"), ["run_id"], unique=False)

    op.create_table(
        "plate_reads",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("wavelength_nm", sa.Integer(), nullable=False),
        sa.Column("well", sa.String(length=3), nullable=False),
        sa.Column("od", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "wavelength_nm", "well"),
    )
    op.create_table(
        "prompts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("tube_id", sa.String(length=20), nullable=True),
        sa.Column("due_t_s", sa.Float(), nullable=False),
        sa.Column("raised_at", sa.String(length=32), nullable=False),
        sa.Column("raised_t_s", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("answered_at", sa.String(length=32), nullable=True),
        sa.Column("answered_t_s", sa.Float(), nullable=True),
        sa.Column("answered_by", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prompts_run_id"), ["run_id"], unique=False)

    op.create_table(
        "reanalyses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("protocol_id", sa.String(length=120), nullable=False),
        sa.Column("protocol_version", sa.Integer(), nullable=False),
        sa.Column("protocol_sha256", sa.String(length=64), nullable=False),
        sa.Column("protocol_text", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("versions", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reanalyses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reanalyses_run_id"), ["run_id"], unique=False)

    op.create_table(
        "results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("software_version", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_results_run_id"), ["run_id"], unique=False)

    op.create_table(
        "run_channels",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("contents", sa.String(length=20), nullable=False),
        sa.Column("lot_id", sa.String(length=120), nullable=True),
        sa.Column("dose_cells_per_ml", sa.Float(), nullable=False),
        sa.Column("donor_id", sa.String(length=120), nullable=True),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("quantity", sa.String(length=40), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "source", "channel"),
    )
    op.create_table(
        "run_instruments",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("manufacturer", sa.String(length=120), nullable=False),
        sa.Column("model", sa.String(length=120), nullable=False),
        sa.Column("serial", sa.String(length=120), nullable=False),
        sa.Column("firmware", sa.String(length=120), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "role"),
    )
    op.create_table(
        "samples",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("t_ms", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "source", "seq"),
    )
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.create_index(
            "ix_samples_channel_time", ["run_id", "channel", "t_ms"], unique=False
        )

    op.create_table(
        "tubes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tube_id", sa.String(length=20), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("time_point_s", sa.Float(), nullable=False),
        sa.Column("tube_type", sa.String(length=20), nullable=False),
        sa.Column("volume_ml", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("drawn_t_s", sa.Float(), nullable=True),
        sa.Column("drawn_at", sa.String(length=32), nullable=True),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tube_id"),
    )
    with op.batch_alter_table("tubes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tubes_run_id"), ["run_id"], unique=False)

    op.create_table(
        "sample_values",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tube_id", sa.String(length=20), nullable=False),
        sa.Column("analyte", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("flag", sa.String(length=40), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("entered_by", sa.String(length=120), nullable=False),
        sa.Column("entered_at", sa.String(length=32), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tube_id"],
            ["tubes.tube_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sample_values", schema=None) as batch_op:
        batch_op.create_index("ix_sample_values_tube", ["tube_id", "analyte"], unique=False)
    _append_only_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS hemocompat_append_only() CASCADE")
    with op.batch_alter_table("sample_values", schema=None) as batch_op:
        batch_op.drop_index("ix_sample_values_tube")

    op.drop_table("sample_values")
    with op.batch_alter_table("tubes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tubes_run_id"))

    op.drop_table("tubes")
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.drop_index("ix_samples_channel_time")

    op.drop_table("samples")
    op.drop_table("run_instruments")
    op.drop_table("run_channels")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_results_run_id"))

    op.drop_table("results")
    with op.batch_alter_table("reanalyses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reanalyses_run_id"))

    op.drop_table("reanalyses")
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prompts_run_id"))

    op.drop_table("prompts")
    op.drop_table("plate_reads")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_run_id"))

    op.drop_table("events")
    op.drop_table("users")
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_sessions_username"))

    op.drop_table("user_sessions")
    with op.batch_alter_table("signatures", schema=None) as batch_op:
        batch_op.drop_index("ix_signatures_object")

    op.drop_table("signatures")
    op.drop_table("schema_info")
    op.drop_table("runs")
    op.drop_table("protocol_versions")
    op.drop_table("lots")
    with op.batch_alter_table("lot_assessments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lot_assessments_lot_id"))

    op.drop_table("lot_assessments")
    op.drop_table("donors")
    op.drop_table("compliance_settings")
    with op.batch_alter_table("audit_trail", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_trail_run_id"))
        batch_op.drop_index(batch_op.f("ix_audit_trail_lot_id"))

    op.drop_table("audit_trail")


_APPEND_ONLY = ("audit_trail", "signatures")


def _append_only_triggers() -> None:
    """Refuse UPDATE and DELETE on the append-only tables, in the database itself."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in _APPEND_ONLY:
            for when in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {name}_no_{when.lower()} BEFORE {when} ON {name} "
                    f"BEGIN SELECT RAISE(ABORT, '{name} is append-only'); END"
                )
    elif dialect == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION hemocompat_append_only() RETURNS trigger AS $body$\n"
            "BEGIN\n  RAISE EXCEPTION 'table % is append-only', TG_TABLE_NAME;\nEND;\n"
            "$body$ LANGUAGE plpgsql"
        )
        for name in _APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {name}_append_only BEFORE UPDATE OR DELETE ON {name} "
                "FOR EACH ROW EXECUTE FUNCTION hemocompat_append_only()"
            )
