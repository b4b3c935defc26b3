"""The store's tables (SQLModel), portable to SQLite and PostgreSQL.

Little personal data lives here: requests and the event log are keyed by workflow id,
request id, council registration and installation number, and keep actor ids, reason
codes and document references. Two exceptions, both the distributor's own records: an
RT's e-mail (``TechnicianRecord.email``, where the e-mails of the requests it signs go)
and the holders' CPF/CNPJ inside an allocation's units. Names and phones never reach
these tables; none of it goes to logs or search attributes.

Portability notes:

* timestamps use :class:`UtcDateTime`: timezone-aware in, timezone-aware (UTC) out, on
  both back-ends (SQLite has no time zones; PostgreSQL gets ``timestamptz``);
* JSON columns use SQLAlchemy's ``JSON`` (``JSONB`` on PostgreSQL);
* ``BeneficiaryAllocation`` has a partial unique index: at most one ``current`` row per
  generating installation (SQLite ≥ 3.8 and PostgreSQL both support partial indexes).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# The legacy marker kept in ``schema_version`` (stays 1): schema changes are Alembic
# revisions in migrations/versions/ (see migrations/README.md, one file per change).
SCHEMA_VERSION = 1


class UtcDateTime(TypeDecorator):
    """An aware datetime stored as UTC; naive values are taken as UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UtcDateTime expects a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _ts(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(
        default=None if nullable else ...,
        sa_column=sa.Column(UtcDateTime(), nullable=nullable, index=index),
    )


def _json_field(default_factory: Any) -> Any:
    return Field(default_factory=default_factory, sa_column=sa.Column(_json(), nullable=False))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SchemaVersion(SQLModel, table=True):
    """One row (id 1): the schema version the database is at."""

    __tablename__ = "schema_version"

    id: int = Field(default=1, primary_key=True)
    version: int
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UtcDateTime(), nullable=False)
    )


class RequestRecord(SQLModel, table=True):
    """Projection of an AccessRequest (the fields of ``models.activities.RequestRow``)."""

    __tablename__ = "request_record"

    workflow_id: str = Field(primary_key=True, max_length=200)
    request_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=16)
    status: str = Field(index=True, max_length=32)
    generation_class: Optional[str] = Field(default=None, max_length=8)
    installation_number: Optional[str] = Field(default=None, index=True, max_length=32)
    service_note: Optional[str] = Field(default=None, index=True, max_length=16)
    protocol: Optional[str] = Field(default=None, index=True, max_length=32)
    due_at: Optional[datetime] = _ts(nullable=True)
    due_rule: Optional[str] = Field(default=None, max_length=64)
    sla_breaches: int = 0
    technician: Optional[str] = Field(default=None, index=True, max_length=64)
    cycle: int = 0
    # The deadline's clock is paused (pause_clock): the queue shows "prazo suspenso".
    clock_paused: bool = Field(default=False, sa_column=sa.Column(sa.Boolean(), nullable=False, server_default=sa.false()))
    # HMAC-SHA256 of the customer's CPF/CNPJ (activities/digests.py; never the clear
    # document): the portal's "Meus pedidos" finds a customer's requests by it.
    customer_digest: Optional[str] = Field(default=None, index=True, max_length=64)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class RequestStatus(SQLModel, table=True):
    """The latest ``status`` query answer of an AccessRequest (``AccessStatus`` as JSON)
    and its ``sequence``: the API's status GET reads it instead of replaying the workflow.
    Written with the step's event in one transaction, only by a newer ``sequence`` (or the
    same one with fewer ``pending_effects``); the
    workflow stays the source of truth. Holds what the query shows: no customer name,
    e-mail, phone or CPF/CNPJ (the status has none; decisions keep the actor without its
    document)."""

    __tablename__ = "request_status"

    workflow_id: str = Field(primary_key=True, max_length=200)
    sequence: int
    # Effects still queued once the step is recorded: at one sequence, a later write has
    # fewer (e-mails sent since), so it replaces an earlier one.
    pending_effects: int
    status: dict[str, Any] = _json_field(dict)
    recorded_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UtcDateTime(), nullable=False)
    )


class EventRecord(SQLModel, table=True):
    """Append-only log of every step and decision; one row per (workflow, event key)."""

    __tablename__ = "event_record"
    __table_args__ = (sa.UniqueConstraint("workflow_id", "event_key", name="uq_event_key"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    workflow_id: str = Field(max_length=200)
    event_key: str = Field(max_length=200)
    process: str = Field(max_length=16)
    action: str = Field(max_length=64)
    status: str = Field(max_length=32)
    at: datetime = _ts(index=True)
    actor_id: Optional[str] = Field(default=None, max_length=64)
    actor_role: Optional[str] = Field(default=None, max_length=16)
    reasons: list[dict[str, Any]] = _json_field(list)
    documents: list[dict[str, Any]] = _json_field(list)  # DocumentRef dicts, never content
    data: dict[str, Any] = _json_field(dict)
    recorded_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UtcDateTime(), nullable=False)
    )


class DocumentRecord(SQLModel, table=True):
    """A file in the blob store, by content hash (first upload's kind and name kept)."""

    __tablename__ = "document_record"

    sha256: str = Field(primary_key=True, min_length=64, max_length=64)
    kind: str = Field(max_length=32)
    filename: str = Field(max_length=255)
    size: int
    content_type: str = Field(max_length=64)
    stored_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UtcDateTime(), nullable=False)
    )


class DocumentBlob(SQLModel, table=True):
    """The bytes of a document, once per SHA-256, when documents live in the database
    (``GD_BLOB_URL=database``, the default with PostgreSQL; see ``activities/blobs.py``)."""

    __tablename__ = "document_blob"

    sha256: str = Field(primary_key=True, min_length=64, max_length=64)
    size: int
    content: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    stored_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UtcDateTime(), nullable=False)
    )


class DocumentLink(SQLModel, table=True):
    """Which workflows a stored document belongs to (see ``activities/documents.py``).

    ``source``: ``upload`` (uploaded for that workflow: many may hold the same bytes) or
    ``claimed`` (first cited by that workflow while nobody held it: at most one, by a
    partial unique index, so two concurrent first citations cannot both win)."""

    __tablename__ = "document_link"
    __table_args__ = (
        sa.UniqueConstraint("sha256", "workflow_id", name="uq_document_link"),
        sa.Index(
            "uq_document_claimed",
            "sha256",
            unique=True,
            sqlite_where=sa.text("source = 'claimed'"),
            postgresql_where=sa.text("source = 'claimed'"),
        ),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    sha256: str = Field(index=True, min_length=64, max_length=64)
    workflow_id: str = Field(max_length=200)
    source: str = Field(max_length=16)
    linked_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UtcDateTime(), nullable=False)
    )


class Outbox(SQLModel, table=True):
    """One e-mail per idempotency key (used by activities/mail.py)."""

    __tablename__ = "outbox"

    key: str = Field(primary_key=True, max_length=300)
    template: str = Field(max_length=100)
    status: str = Field(max_length=16, index=True)  # "sending" | "sent" | "refused"
    attempts: int = 0
    message_id: Optional[str] = Field(default=None, max_length=300)
    detail: Optional[str] = Field(default=None)
    recipients_count: int = 0
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UtcDateTime(), nullable=False)
    )
    sent_at: Optional[datetime] = _ts(nullable=True)


class TechnicianRecord(SQLModel, table=True):
    """Projection of a TechnicianRegistration (``CREA-MG-12345`` → status)."""

    __tablename__ = "technician_record"

    key: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(max_length=200)
    status: str = Field(max_length=32)
    updated_at: datetime = _ts()
    email: str | None = Field(default=None, max_length=254)


class TechnicianSecret(SQLModel, table=True):
    """Hash of a secret sent to an RT (never the secret itself); used by mail.py."""

    __tablename__ = "technician_secret"
    __table_args__ = (sa.UniqueConstraint("technician", "kind", name="uq_technician_secret"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    technician: str = Field(max_length=64)
    kind: str = Field(max_length=32)  # "agv_password" | "apr_password_token"
    secret_hash: str = Field(max_length=512)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UtcDateTime(), nullable=False)
    )
    expires_at: Optional[datetime] = _ts(nullable=True)
    used_at: Optional[datetime] = _ts(nullable=True)


class BeneficiaryAllocation(SQLModel, table=True):
    """One allocation of credits (cadastramento de UC recebedora), kept forever.

    A REGISTERED allocation becomes ``current`` and every earlier one of the same
    generating installation stops being current; none is ever deleted.
    """

    __tablename__ = "beneficiary_allocation"
    __table_args__ = (
        sa.Index(
            "uq_allocation_current",
            "generator_installation",
            unique=True,
            sqlite_where=sa.text('"current"'),
            postgresql_where=sa.text('"current"'),
        ),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    workflow_id: str = Field(index=True, max_length=200)
    request_id: str = Field(max_length=64)
    generator_installation: str = Field(index=True, max_length=32)
    modality: str = Field(max_length=16)
    mode: str = Field(max_length=16)
    units: list[dict[str, Any]] = _json_field(list)
    status: str = Field(max_length=32)
    effective_from: Optional[date] = Field(default=None, sa_column=sa.Column(sa.Date()))
    recorded_at: datetime = _ts()
    current: bool = False


class NumberSequence(SQLModel, table=True):
    """Named counters (``service_note``, ``protocol-2026``), advanced atomically."""

    __tablename__ = "number_sequence"

    name: str = Field(primary_key=True, max_length=64)
    value: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))


class IssuedNumber(SQLModel, table=True):
    """NS and Protocolo issued for one step of one workflow (issued once, kept)."""

    __tablename__ = "issued_number"
    __table_args__ = (sa.UniqueConstraint("workflow_id", "step", name="uq_issued_step"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    workflow_id: str = Field(max_length=200)
    step: str = Field(max_length=64)
    service_note: str = Field(unique=True, max_length=16)
    protocol: str = Field(unique=True, max_length=16)
    issued_at: datetime = _ts()


class OutboundEvent(SQLModel, table=True):
    """One CloudEvent for other systems (activities/events.py): written in the same
    transaction as the ``EventRecord`` it comes from, never changed. ``position`` is the
    pull feed's cursor and the webhooks' delivery order; ``event_id`` is derived from the
    workflow id, the event key and the type, so a retried activity writes the same id."""

    __tablename__ = "outbound_event"

    position: Optional[int] = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, max_length=64)
    type: str = Field(index=True, max_length=64)
    source: str = Field(max_length=100)
    subject: str = Field(index=True, max_length=200)
    workflow_id: str = Field(max_length=200)
    time: datetime = _ts()
    data: dict[str, Any] = _json_field(dict)
    recorded_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UtcDateTime(), nullable=False)
    )


class WebhookSubscription(SQLModel, table=True):
    """A system's webhook endpoint (activities/webhooks.py). The signing secrets are kept
    sealed (AES-GCM with the codec key; ``plain:`` only under GD_ENV=dev without keys):
    the worker unseals them to sign, they never travel through workflow history."""

    __tablename__ = "webhook_subscription"

    id: str = Field(primary_key=True, max_length=40)
    owner: str = Field(index=True, max_length=64)  # the token's ``sub`` that created it
    url: str = Field(max_length=2000)
    types: list[str] = _json_field(list)
    secret_sealed: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    previous_secret_sealed: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text()))
    previous_expires_at: Optional[datetime] = _ts(nullable=True)
    status: str = Field(max_length=16)  # "active" | "deleted" | "gone" (answered 410)
    start_after: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    delivered_through: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class WebhookDelivery(SQLModel, table=True):
    """One delivery attempt (or the dead-letter mark) of one event to one subscription."""

    __tablename__ = "webhook_delivery"

    id: Optional[int] = Field(default=None, primary_key=True)
    subscription_id: str = Field(index=True, max_length=40)
    event_id: str = Field(max_length=64)
    position: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    attempt: int
    outcome: str = Field(max_length=16)  # delivered | failed | gone | dead_letter
    status_code: Optional[int] = None
    error: Optional[str] = Field(default=None, max_length=200)
    duration_ms: int = 0
    at: datetime = _ts()


class Installation(SQLModel, table=True):
    """The customer base: one installation (UC) per row, imported from the distributor's
    export (``gd installations import``; activities/installations.py). The seed's AGV
    lists the installations tied to a CPF; intake checks a request's installation here.
    The holder's CPF/CNPJ is the distributor's own record (never logged)."""

    __tablename__ = "installation"

    number: str = Field(primary_key=True, min_length=10, max_length=10)
    holder_document: str = Field(max_length=14)
    # CPF whole, CNPJ by its 8-character root (models.common.holder_key).
    holder_key: str = Field(index=True, max_length=11)
    address: str = Field(max_length=300)
    customer_class: str = Field(max_length=32)
    gd_connected: bool = False
    imported_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UtcDateTime(), nullable=False)
    )


class RequestHolder(SQLModel, table=True):
    """Who holds an accepted access request's plant: its customer's holder key (CPF, or
    CNPJ root), written by the intake. A BeneficiaryRegistration is the holder's act."""

    __tablename__ = "request_holder"

    workflow_id: str = Field(primary_key=True, max_length=200)
    request_id: str = Field(index=True, max_length=64)
    holder_key: str = Field(max_length=11)
    recorded_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UtcDateTime(), nullable=False)
    )


class PortalAccount(SQLModel, table=True):
    """A login of the self-service portal (``/portal``, issue 22): an RT (login = council
    key, ``CREA-MG-123456``) or a customer (login = CPF/CNPJ digits). Only an argon2 hash
    of the password is kept; ``failed_logins``/``locked_until`` are the lockout; a
    password-setting link of the portal (first access, forgotten password) is kept as the
    SHA-256 of its 32-byte token, single use, with its expiry."""

    __tablename__ = "portal_account"
    __table_args__ = (sa.UniqueConstraint("role", "login", name="uq_portal_account_login"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    role: str = Field(max_length=16)  # "technician" | "customer"
    login: str = Field(max_length=64)
    password_hash: Optional[str] = Field(default=None, max_length=256)
    failed_logins: int = 0
    locked_until: Optional[datetime] = _ts(nullable=True)
    reset_token_hash: Optional[str] = Field(default=None, index=True, max_length=64)
    reset_expires_at: Optional[datetime] = _ts(nullable=True)
    last_login_at: Optional[datetime] = _ts(nullable=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


TABLES: tuple[type[SQLModel], ...] = (
    SchemaVersion,
    RequestRecord,
    RequestStatus,
    EventRecord,
    DocumentRecord,
    DocumentBlob,
    DocumentLink,
    Outbox,
    TechnicianRecord,
    TechnicianSecret,
    BeneficiaryAllocation,
    NumberSequence,
    IssuedNumber,
    OutboundEvent,
    WebhookSubscription,
    WebhookDelivery,
    Installation,
    RequestHolder,
    PortalAccount,
)
