"""The portal's "Meus pedidos" by an index: request_record.customer_digest (issue 22).

The store's read model of an AccessRequest gets the keyed hash (HMAC-SHA256 with
GD_DOCUMENT_KEY, activities/digests.py) of the customer's CPF/CNPJ, indexed, so a
customer's requests are one lookup instead of a scan of the newest requests' start
inputs. Never the clear document.

Backfill: what the store can tell. A solicitação's holder (request_holder, written by the
intake) is the customer's whole CPF when the customer is a person: those rows get their
digest now (run the upgrade with the same GD_DOCUMENT_KEY as the worker and the API). A
CNPJ holder keeps only its root there, and consultas have no holder row: those get the
digest at their next recorded step (every step rewrites the row) — until then they are
missing from the customer's list.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    columns = {c["name"] for c in inspector.get_columns("request_record")}
    if "customer_digest" not in columns:
        op.add_column("request_record", sa.Column("customer_digest", sa.String(64), nullable=True))
    indexes = {i["name"] for i in inspector.get_indexes("request_record")}
    if "ix_request_record_customer_digest" not in indexes:
        op.create_index("ix_request_record_customer_digest", "request_record", ["customer_digest"])
    from activities.digests import document_digest

    holders = sa.table("request_holder", sa.column("workflow_id"), sa.column("holder_key"))
    requests = sa.table("request_record", sa.column("workflow_id"), sa.column("customer_digest"))
    for workflow_id, key in bind.execute(sa.select(holders.c.workflow_id, holders.c.holder_key)).all():
        if key and len(key) == 11 and key.isdigit():  # a whole CPF (a CNPJ keeps its 8-character root)
            bind.execute(requests.update()
                         .where(requests.c.workflow_id == workflow_id, requests.c.customer_digest.is_(None))
                         .values(customer_digest=document_digest(key)))


def downgrade() -> None:
    op.drop_index("ix_request_record_customer_digest", table_name="request_record")
    with op.batch_alter_table("request_record") as batch:
        batch.drop_column("customer_digest")
