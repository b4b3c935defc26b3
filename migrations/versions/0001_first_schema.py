"""The first schema: the tables create_schema() made before Alembic (schema_version 1).

Frozen: this file describes the store as the first release created it and never changes
(a database made by that release is stamped 0001 and upgraded from here).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "schema_version",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "request_record",
        sa.Column("workflow_id", sa.String(200), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("generation_class", sa.String(8)),
        sa.Column("installation_number", sa.String(32)),
        sa.Column("service_note", sa.String(16)),
        sa.Column("protocol", sa.String(32)),
        sa.Column("due_at", TS),
        sa.Column("due_rule", sa.String(64)),
        sa.Column("sla_breaches", sa.Integer(), nullable=False),
        sa.Column("technician", sa.String(64)),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    for column in ("request_id", "status", "installation_number", "service_note", "protocol",
                   "technician"):
        op.create_index(f"ix_request_record_{column}", "request_record", [column])
    op.create_table(
        "event_record",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("event_key", sa.String(200), nullable=False),
        sa.Column("process", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor_id", sa.String(64)),
        sa.Column("actor_role", sa.String(16)),
        sa.Column("reasons", _json(), nullable=False),
        sa.Column("documents", _json(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.UniqueConstraint("workflow_id", "event_key", name="uq_event_key"),
    )
    op.create_index("ix_event_record_at", "event_record", ["at"])
    op.create_table(
        "document_record",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("stored_at", TS, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("template", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(300)),
        sa.Column("detail", sa.String()),
        sa.Column("recipients_count", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
    )
    op.create_table(
        "technician_record",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "technician_secret",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("technician", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(512), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("used_at", TS),
        sa.UniqueConstraint("technician", "kind", name="uq_technician_secret"),
    )
    op.create_table(
        "beneficiary_allocation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("generator_installation", sa.String(32), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("units", _json(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("effective_from", sa.Date()),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_beneficiary_allocation_workflow_id", "beneficiary_allocation",
                    ["workflow_id"])
    op.create_index("ix_beneficiary_allocation_generator_installation",
                    "beneficiary_allocation", ["generator_installation"])
    op.create_index("uq_allocation_current", "beneficiary_allocation",
                    ["generator_installation"], unique=True,
                    sqlite_where=sa.text('"current"'), postgresql_where=sa.text('"current"'))
    op.create_table(
        "number_sequence",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "issued_number",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("service_note", sa.String(16), nullable=False, unique=True),
        sa.Column("protocol", sa.String(16), nullable=False, unique=True),
        sa.Column("issued_at", TS, nullable=False),
        sa.UniqueConstraint("workflow_id", "step", name="uq_issued_step"),
    )


def downgrade() -> None:
    for table in ("issued_number", "number_sequence", "beneficiary_allocation",
                  "technician_secret", "technician_record", "outbox", "document_record",
                  "event_record", "request_record", "schema_version"):
        op.drop_table(table)
