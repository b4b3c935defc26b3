"""Documents owned per workflow (document_link) and the RT's e-mail (technician_record.email).

Both came with later releases through create_all, which adds a missing table but never a
column: a database made by the first release has no ``technician_record.email``. Each step
checks what is there, so a database that create_all already gave document_link upgrades
too.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "document_link" not in inspector.get_table_names():
        op.create_table(
            "document_link",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("workflow_id", sa.String(200), nullable=False),
            sa.Column("source", sa.String(16), nullable=False),
            sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
            sa.UniqueConstraint("sha256", "workflow_id", name="uq_document_link"),
        )
        op.create_index("ix_document_link_sha256", "document_link", ["sha256"])
        op.create_index("uq_document_claimed", "document_link", ["sha256"], unique=True,
                        sqlite_where=sa.text("source = 'claimed'"),
                        postgresql_where=sa.text("source = 'claimed'"))
    columns = {c["name"] for c in inspector.get_columns("technician_record")}
    if "email" not in columns:
        op.add_column("technician_record", sa.Column("email", sa.String(254), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("technician_record") as batch:
        batch.drop_column("email")
    op.drop_table("document_link")
