"""The queue's "prazo suspenso": request_record.clock_paused (issue 18).

The store's read model of an AccessRequest gets the workflow's paused-clock flag, so the
web inbox shows "prazo suspenso" and its "vencidas" / "vence em" filters leave a paused
deadline out. Additive: existing rows read false until their next recorded step.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("request_record")}
    if "clock_paused" not in columns:
        op.add_column("request_record", sa.Column("clock_paused", sa.Boolean(), nullable=False,
                                                  server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("request_record") as batch:
        batch.drop_column("clock_paused")
