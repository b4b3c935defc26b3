"""An index on outbox.status: the API's /metrics counts the e-mails not yet sent at every
scrape (gd_outbox_pending, gd_outbox_oldest_pending_seconds), which without it read the
whole outbox (one row per e-mail ever sent).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    indexes = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("outbox")}
    if "ix_outbox_status" not in indexes:
        op.create_index("ix_outbox_status", "outbox", ["status"])


def downgrade() -> None:
    op.drop_index("ix_outbox_status", table_name="outbox")
