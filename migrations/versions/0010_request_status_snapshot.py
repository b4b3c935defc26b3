"""The latest ``status`` of each access request (the JSON its ``status`` query answers,
with its ``sequence`` and ``pending_effects``), written by ``record_transition`` in the step's own transaction:
``GET /api/v1/requests/{id}`` answers from it without replaying the workflow (issue 21).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_status",
        sa.Column("workflow_id", sa.String(200), primary_key=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("pending_effects", sa.Integer(), nullable=False),
        sa.Column("status", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("request_status")
