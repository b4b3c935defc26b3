"""The customer base (installation: each UC, its holder, class and whether a GD plant is
connected) and who holds each accepted request's plant (request_holder) (issue 17).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "installation",
        sa.Column("number", sa.String(10), primary_key=True),
        sa.Column("holder_document", sa.String(14), nullable=False),
        sa.Column("holder_key", sa.String(11), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("customer_class", sa.String(32), nullable=False),
        sa.Column("gd_connected", sa.Boolean(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_installation_holder_key", "installation", ["holder_key"])
    op.create_table(
        "request_holder",
        sa.Column("workflow_id", sa.String(200), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("holder_key", sa.String(11), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_request_holder_request_id", "request_holder", ["request_id"])


def downgrade() -> None:
    op.drop_table("request_holder")
    op.drop_table("installation")
