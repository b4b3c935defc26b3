"""E-mail: pt-BR templates (``activities/mail_render.py``) sent once per key through SMTP.

``MailActivities`` adds to ``render`` the outbox that makes a retried activity deliver a
message once, and the technician's credentials, whose secrets exist only in this
process and in the e-mail that carries them (hashes: ``activities/mail_secrets.py``).

Exactly once per key
--------------------
Each message has a key (workflow id + step + cycle). Before talking to SMTP the activity
*claims* the key in the ``Outbox`` table (status ``sending``, attempts + 1) and commits;
right after the server's 250 it marks it ``sent``. A later call finds ``sent`` and
returns ``duplicate`` without sending, or finds ``refused`` and returns the recorded
refusal. A call that finds ``sending`` means the previous attempt failed somewhere
between the claim and the mark (connection refused, 4xx, timeout, crash) and sends again.

The one window left is a crash (or a failed DB commit) between the server's 250 and the
``sent`` commit: the retry then delivers a second copy. It is narrowed by doing every
slow or fallible step (rendering, reading attachments, the claim) *before* the SMTP
transaction and nothing but one small UPDATE after it; and the copy carries the same
``Message-ID`` (derived from the key) and ``X-GD-Key``, so mail stores that deduplicate
by Message-ID, and any reader, can tell it is the same message. (Two attempts of one
key running at the same time, which Temporal only does after a start-to-close timeout,
could also both send: keep that timeout above ``smtp_timeout_s`` × 2.)
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.charset import QP, Charset
from email.encoders import encode_base64
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any
from urllib.parse import urlencode

import aiosmtplib
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import events
from activities.blobs import BlobStore, attachment_name
from activities.documents import resolve
from activities.mail_render import (  # noqa: F401 - re-exported: callers import them from here
    CLASS_LABELS,
    COMMON_KEYS,
    LINK_SETTINGS,
    LOCAL_TZ,
    MODALITY_LABELS,
    STEP_LABELS,
    TEMPLATE_DIR,
    TEMPLATES,
    RenderedEmail,
    TemplateContextError,
    TemplateInfo,
    data,
    datahora,
    default_links,
    render,
    sample_context,
)
from activities.mail_secrets import (  # noqa: F401 - re-exported
    AGV_PASSWORD_TTL,
    APR_TOKEN_TTL,
    EMAIL_CODE_KIND,
    SecretRefused,
    hash_secret,
    redeem_secret,
    verify_secret,
)
from activities.store import Store
from activities.tables import Outbox, TechnicianRecord, TechnicianSecret
from models.activities import CredentialsRequest, EmailCodeRequest, EmailRequest, EmailResult
from models.technician import EMAIL_CODE_DIGITS
from models.common import DocumentRef
from models.settings import GdSettings

log = logging.getLogger(__name__)

MESSAGE_ID_DOMAIN = "gd.cemig.local"

# One e-mail carries each document once, and at most this many bytes of attachments
# (before base64): 15 MB, about 20 MB on the wire, under common relays' 25 MB limit.
MAX_ATTACHMENT_BYTES = 15 * 1024 * 1024
MAX_KEY_CHARS = 300  # the outbox's key column


# --- sending ---------------------------------------------------------------------------


def message_id_for(key: str) -> str:
    """The Message-ID of the message of ``key``: the same on every (re)send."""
    return f"<{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}@{MESSAGE_ID_DOMAIN}>"


_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>@]+>?")


def _scrub(text: str) -> str:
    """An SMTP reply without e-mail addresses (they are personal data)."""
    return " ".join(_ADDRESS.sub("<destinatário>", text).split())[:500]


def _reply(code: int, message: str) -> str:
    return _scrub(f"{code} {message}")


class SmtpTransientError(Exception):
    """The message did not leave; Temporal retries the activity (reply scrubbed)."""


@dataclass
class _Outgoing:
    key: str
    template: str
    sender: str
    to: list[str]
    cc: list[str]
    context: dict[str, Any]
    attachments: list[DocumentRef]
    # Runs inside the claim's transaction (e.g. to store a secret's hash), and on a
    # permanent refusal (to drop it again): the DB never holds a hash nobody received.
    on_claim: Callable[[Connection], None] | None = None
    on_refused: Callable[[Connection], None] | None = None

    @property
    def recipients(self) -> list[str]:
        return [*self.to, *self.cc]


# Recipients the workflows name by role; the addresses are configuration.
ROLE_RECIPIENTS = {"role:analysts": "analysts_email", "role:supervisor": "supervisor_email"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _non_retryable(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


class MailActivities:
    """``send_email`` and ``send_technician_credentials``: at most one delivery per key,
    except for the window described in this module's docstring."""

    def __init__(self, store: Store, blobs: BlobStore, settings: GdSettings):
        self.store = store
        self.blobs = blobs
        self.settings = settings
        self.smtp = SmtpPool(settings)

    # --- activities ---------------------------------------------------------------

    @activity.defn(name="send_email")
    async def send_email(self, req: EmailRequest) -> EmailResult:
        """Render ``req.template``, attach the blobs and send once per ``req.key``.

        Returns ``sent``, ``duplicate`` (the key was already sent: nothing is sent) or
        ``refused`` (a permanent 5xx, recorded and returned, never retried). Transient
        failures (connection, timeout, 4xx) raise and Temporal retries. A bad template
        or context, or a missing attachment, raises a non-retryable ApplicationError.
        """
        info = TEMPLATES.get(req.template)
        if info is None:
            raise _non_retryable(f"unknown e-mail template {req.template!r}", "UnknownTemplate")
        sender = req.sender or getattr(self.settings, info.sender_setting)
        return await self._deliver(_Outgoing(
            key=req.key, template=req.template, sender=sender, to=list(req.to),
            cc=list(req.cc), context=dict(req.context), attachments=list(req.attachments)))

    @activity.defn(name="send_technician_credentials")
    async def send_technician_credentials(self, req: CredentialsRequest) -> list[EmailResult]:
        """The three e-mails of an approved RT, each once (keys ``KEY:agv``, ``KEY:apr``,
        ``KEY:apr-password``), from agv@, part_apr@ and Partweb@.

        The AGV initial password and the APR password-setting token are created here with
        ``secrets``; only their scrypt hashes are stored (``TechnicianSecret``, one row per
        technician and kind). They never appear in the result, the logs or the DB in clear.

        Retries: a message whose key is ``sent`` is not sent again and its secret is not
        touched. A key found in ``sending`` (the previous attempt may or may not have
        delivered: the secret is gone with it) gets a **new** secret, whose hash replaces
        the old one, and the message is sent again: if two e-mails arrived, the later
        one holds the valid password/token. AGV login: the RT's CPF (Cemig Atende logs in
        by CPF); APR login: the council registration key (``CREA-MG-12345``).
        """
        s = self.settings
        base = {"recipient_name": req.name, "technician": req.technician}
        agv = await self._deliver_with_secret(
            req, key=f"{req.key}:agv", template="technician_agv_credentials",
            sender=s.sender_agv, kind="agv_password", ttl=AGV_PASSWORD_TTL,
            context=lambda secret, expires: {
                **base, "login": req.cpf, "password": secret, "expires_at": expires})
        approved = await self._deliver(_Outgoing(
            key=f"{req.key}:apr", template="technician_apr_approved", sender=s.sender_apr,
            to=[req.email], cc=[], context={**base, "login": req.technician}, attachments=[]))
        set_password = await self._deliver_with_secret(
            req, key=f"{req.key}:apr-password", template="technician_apr_set_password",
            sender=s.sender_partweb, kind="apr_password_token", ttl=APR_TOKEN_TTL,
            context=lambda secret, expires: {
                **base, "login": req.technician, "token": secret, "expires_at": expires,
                "set_password_url": self._set_password_url(secret)})
        return [agv, approved, set_password]

    @activity.defn(name="send_email_change_code")
    async def send_email_change_code(self, req: EmailCodeRequest) -> EmailResult:
        """The code that confirms an RT's new address, to that address, from Partweb@
        (account matters), once per ``req.key``. Created here; only its scrypt hash is
        stored (``TechnicianSecret`` kind ``email_change_code``, valid until
        ``req.expires_at``). A new code replaces the previous one; as with the
        credentials, an attempt found ``sending`` sends a new code."""
        with self.store.connection(write=False) as conn:
            settled = self._settled(conn, req.key)
        if settled is not None:
            return settled
        code = f"{secrets.randbelow(10 ** EMAIL_CODE_DIGITS):0{EMAIL_CODE_DIGITS}d}"
        code_hash = hash_secret(code)

        def store_hash(conn: Connection) -> None:
            self._put_secret(conn, req.technician, EMAIL_CODE_KIND, code_hash, req.expires_at)

        def drop_hash(conn: Connection) -> None:
            self._drop_secret(conn, req.technician, EMAIL_CODE_KIND, code_hash)

        return await self._deliver(_Outgoing(
            key=req.key, template="technician_email_change_code",
            sender=self.settings.sender_partweb, to=[req.email], cc=[],
            context={"technician": req.technician, "code": code,
                     "expires_at": req.expires_at.isoformat(),
                     "confirm_url": self._confirm_email_url(req.technician, code)},
            attachments=[], on_claim=store_hash, on_refused=drop_hash))

    # --- the outbox -----------------------------------------------------------------

    async def _deliver_with_secret(self, req: CredentialsRequest, *, key: str, template: str,
                                   sender: str, kind: str, ttl: timedelta,
                                   context: Callable[[str, str], dict[str, Any]]) -> EmailResult:
        with self.store.connection(write=False) as conn:
            settled = self._settled(conn, key)
        if settled is not None:
            return settled
        secret = secrets.token_urlsafe(12 if kind == "agv_password" else 32)
        expires = _now() + ttl
        secret_hash = hash_secret(secret)

        def store_hash(conn: Connection) -> None:
            self._put_secret(conn, req.technician, kind, secret_hash, expires)

        def drop_hash(conn: Connection) -> None:
            self._drop_secret(conn, req.technician, kind, secret_hash)

        out = _Outgoing(key=key, template=template, sender=sender, to=[req.email], cc=[],
                        context=context(secret, expires.isoformat()), attachments=[],
                        on_claim=store_hash, on_refused=drop_hash)
        return await self._deliver(out)

    async def _deliver(self, out: _Outgoing) -> EmailResult:
        """Deliver once per key. No input may make this retry forever: only SMTP (and the
        store's own connection) failures are retried, and at most the retry policy's
        ``maximum_attempts`` times; anything else is a permanent failure: raised as a
        non-retryable error before the outbox claim, recorded ``refused`` after it."""
        if len(out.key) > MAX_KEY_CHARS or not all(32 < ord(c) < 127 for c in out.key):
            raise _non_retryable(f"e-mail: chave inválida ({len(out.key)} caracteres; até "
                                 f"{MAX_KEY_CHARS} ASCII visíveis)", "InvalidKey")
        # One read: is the key settled already, and where do the RTs' e-mails go.
        with self.store.connection(write=False) as conn:
            settled = self._settled(conn, out.key)
            if settled is None:
                out.to, out.cc = self._addresses(conn, out.to), self._addresses(conn, out.cc)
        if settled is not None:
            self._log(out, settled.status)
            return settled
        if not out.recipients:
            raise _non_retryable(f"e-mail {out.key}: no recipients", "NoRecipients")
        try:  # everything fallible happens before the claim
            message = self._compose(out)
        except (ApplicationError, DBAPIError):
            raise  # already decided, or the store is down (retried)
        except Exception as error:  # noqa: BLE001 - a bad name or an unreadable blob
            raise _non_retryable(f"e-mail {out.key}: falha permanente ao preparar a "
                                 f"mensagem ({type(error).__name__})", "MailInternalError") from None
        settled = self._claim(out)
        if settled is not None:
            self._log(out, settled.status)
            return settled
        try:
            errors, _ = await self._smtp_send(message, out)
        except SmtpTransientError as error:
            attempts = _final_attempt()
            if attempts is not None:  # the last one the retry policy allows: give up
                result = self._refuse(out, f"desistência após {attempts} tentativa(s); "
                                      f"última falha: {error}")
                self._log(out, "refused")
                return result
            self._note(out.key, str(error))
            self._log(out, "retry")
            raise ApplicationError(f"e-mail {out.key}: SMTP temporariamente indisponível: "
                                   f"{error}", type="SmtpTransient") from None
        except _Refused as refusal:
            result = self._refuse(out, refusal.detail)
            self._log(out, "refused")
            return result
        except Exception as error:  # noqa: BLE001 - not SMTP: retrying cannot help
            result = self._refuse(out, f"falha permanente ao enviar ({type(error).__name__})")
            self._log(out, "refused")
            return result
        detail = None
        if errors:  # some recipients refused, the others got it
            replies = sorted({_reply(r.code, r.message) for r in errors.values()})
            detail = (f"{len(errors)} de {len(out.recipients)} destinatário(s) recusado(s): "
                      + "; ".join(replies))
        message_id = message["Message-ID"]
        self._mark_sent(out.key, message_id, detail)
        self._log(out, "sent")
        return EmailResult(key=out.key, template=out.template, status="sent",
                           message_id=message_id, detail=detail)

    # The outbox statements are SQLAlchemy Core, one short transaction each: they run
    # for every e-mail, and the ORM's unit of work cost more than the rest of the send.

    @staticmethod
    def _settled(conn: Connection, key: str) -> EmailResult | None:
        row = conn.execute(sa.select(*_OUTBOX_RESULT).where(_OUTBOX.c.key == key)).first()
        return _settled_result(row) if row is not None else None

    def _claim(self, out: _Outgoing) -> EmailResult | None:
        """Mark the key ``sending`` (attempts + 1) in one committed transaction, or return
        the settled result if another attempt finished it meanwhile."""
        with self.store.connection() as conn:
            row = conn.execute(sa.select(*_OUTBOX_RESULT).where(_OUTBOX.c.key == out.key)
                               .with_for_update()).first()
            if row is not None and (settled := _settled_result(row)) is not None:
                return settled
            values = dict(status="sending", template=out.template,
                          recipients_count=len(out.recipients))
            if row is None:
                conn.execute(_OUTBOX.insert().values(key=out.key, attempts=1,
                                                     created_at=_now(), **values))
            else:
                conn.execute(_OUTBOX.update().where(_OUTBOX.c.key == out.key)
                             .values(attempts=_OUTBOX.c.attempts + 1, **values))
            if out.on_claim is not None:
                out.on_claim(conn)
        return None

    def _update_claimed(self, conn: Connection, key: str, **values: Any) -> None:
        done = conn.execute(_OUTBOX.update().where(_OUTBOX.c.key == key).values(**values))
        assert done.rowcount == 1, "claimed row vanished"

    def _mark_sent(self, key: str, message_id: str, detail: str | None) -> None:
        # The server already accepted the message: only bookkeeping is left, so a lost
        # connection is retried here (a failed activity would send the message again).
        for attempt in range(5):
            try:
                with self.store.connection() as conn:
                    self._update_claimed(conn, key, status="sent", message_id=message_id,
                                         sent_at=_now(), detail=detail)
                return
            except OperationalError:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def _refuse(self, out: _Outgoing, detail: str) -> EmailResult:
        with self.store.connection() as conn:
            self._update_claimed(conn, out.key, status="refused", detail=detail)
            if out.on_refused is not None:
                out.on_refused(conn)
            # Other systems learn of it (br.gd.request.email_failed), in the same transaction.
            events.record_email_failed(conn, out.key.split(":", 1)[0], out.template, out.key)
        return EmailResult(key=out.key, template=out.template, status="refused", detail=detail)

    def _note(self, key: str, detail: str) -> None:
        """Keep the last transient failure on the row (best effort: the retry matters)."""
        try:
            with self.store.connection() as conn:
                conn.execute(_OUTBOX.update().where(_OUTBOX.c.key == key,
                                                    _OUTBOX.c.status == "sending")
                             .values(detail=detail))
        except Exception:  # noqa: BLE001 - the SMTP failure is what the caller must see
            log.warning("mail key=%s: could not record the transient failure", key)

    @staticmethod
    def _put_secret(conn: Connection, technician: str, kind: str, secret_hash: str,
                    expires: datetime) -> None:
        values = dict(secret_hash=secret_hash, created_at=_now(), expires_at=expires,
                      used_at=None)
        mine = (_SECRETS.c.technician == technician) & (_SECRETS.c.kind == kind)
        if not conn.execute(_SECRETS.update().where(mine).values(**values)).rowcount:
            conn.execute(_SECRETS.insert().values(technician=technician, kind=kind, **values))

    @staticmethod
    def _drop_secret(conn: Connection, technician: str, kind: str, secret_hash: str) -> None:
        conn.execute(_SECRETS.delete().where(
            _SECRETS.c.technician == technician, _SECRETS.c.kind == kind,
            _SECRETS.c.secret_hash == secret_hash))

    # --- message and SMTP -----------------------------------------------------------

    def _addresses(self, conn: Connection, recipients: list[str]) -> list[str]:
        """``role:analysts``/``role:supervisor`` → the configured address;
        ``technician:CREA-MG-12345`` → the RT's registered address (left out when the RT
        never registered here); others as given."""
        resolved: list[str] = []
        for recipient in recipients:
            if recipient.startswith("technician:"):
                address = conn.execute(sa.select(_TECHNICIANS.c.email).where(
                    _TECHNICIANS.c.key == recipient.split(":", 1)[1])).scalar()
                if address and address not in resolved:
                    resolved.append(address)
                continue
            setting = ROLE_RECIPIENTS.get(recipient)
            if setting is None and recipient.startswith("role:"):
                raise _non_retryable(f"unknown recipient role {recipient!r}", "UnknownRecipient")
            address = getattr(self.settings, setting) if setting else recipient
            if address not in resolved:
                resolved.append(address)
        return resolved

    def _set_password_url(self, token: str) -> str:
        return f"{self.settings.apr_url.rstrip('/')}/DefinirSenha.aspx?token={token}"

    def _confirm_email_url(self, technician: str, code: str) -> str:
        """The portal page that confirms a new address (api/routes_portal_email.py): like the
        set-password link, under ``GD_APR_URL`` (``https://<host>/portal`` in a deploy)."""
        query = urlencode({"rt": technician, "codigo": code})
        return f"{self.settings.apr_url.rstrip('/')}/rt/email/confirmar?{query}"

    def _compose(self, out: _Outgoing) -> Message:
        """The MIME message: text and HTML alternatives, then the attachments.

        Built with the ``compat32`` classes of ``email.mime``: the modern ``EmailMessage``
        API parses every header through its registry and cost three times as much per
        message (measured: 1.8 against 0.6 ms with flattening), the largest part of an
        e-mail's CPU after the store. Non-ASCII headers are RFC 2047 words, the bodies
        quoted-printable UTF-8."""
        files = self._attachments(out)
        context = {**out.context, "attachment_names": [name for name, _, _ in files]}
        try:
            rendered = render(out.template, context, links=default_links(self.settings))
        except TemplateContextError as error:
            raise _non_retryable(str(error), "TemplateContextError") from None
        message: Message = MIMEMultipart("alternative", _subparts=[
            MIMEText(rendered.text, "plain", _UTF8_QP), MIMEText(rendered.html, "html", _UTF8_QP)])
        if files:
            message = MIMEMultipart("mixed", _subparts=[message])
            for name, content_type, data in files:
                maintype, _, subtype = content_type.partition("/")
                part = MIMEBase(maintype, subtype)
                part.set_payload(data)
                encode_base64(part)
                part.add_header("Content-Disposition", "attachment",
                                filename=_header_param(name))
                message.attach(part)
        message["From"] = out.sender
        message["To"] = ", ".join(out.to)
        if out.cc:
            message["Cc"] = ", ".join(out.cc)
        message["Subject"] = _header(rendered.subject)
        message["Date"] = email.utils.format_datetime(datetime.now(LOCAL_TZ))
        message["Message-ID"] = message_id_for(out.key)
        message["X-GD-Key"] = out.key
        message["X-GD-Template"] = out.template
        message["Auto-Submitted"] = "auto-generated"
        message["Content-Language"] = "pt-BR"
        return message

    def _attachments(self, out: _Outgoing) -> list[tuple[str, str, bytes]]:
        """(name, content type, bytes) of each attachment, resolved from the store.

        Each document once (by hash); each must be stored and belong to the workflow
        that sends the e-mail (``activities/documents.py``), or nothing is sent; the
        type is the one sniffed at upload and the name carries its extension; all of
        them together at most ``MAX_ATTACHMENT_BYTES``."""
        unique: dict[str, DocumentRef] = {}
        for ref in out.attachments:
            unique.setdefault(ref.sha256, ref)
        if not unique:
            return []
        owner = _sending_workflow(out.key)
        files: list[tuple[str, str, bytes]] = []
        total = 0
        for resolved in resolve(self.store, owner, list(unique.values())):
            ref = resolved.ref
            if resolved.code == "document_unknown":
                raise _non_retryable(f"e-mail {out.key}: attachment {ref.sha256[:12]}… not in "
                                     f"the document store", "AttachmentMissing")
            if resolved.problem:
                raise _non_retryable(f"e-mail {out.key}: anexo recusado: {resolved.problem}",
                                     "AttachmentRefused")
            assert resolved.content_type is not None and resolved.size is not None
            total += resolved.size
            if total > MAX_ATTACHMENT_BYTES:
                raise _non_retryable(
                    f"e-mail {out.key}: anexos somam mais de {MAX_ATTACHMENT_BYTES // 2**20} MB "
                    "(limite por e-mail)", "AttachmentsTooLarge")
            data = self._attachment(out.key, ref)
            files.append((attachment_name(ref.filename, resolved.content_type),
                          resolved.content_type, data))
        return files

    def _attachment(self, key: str, ref: DocumentRef) -> bytes:
        try:
            data = self.blobs.get(ref.sha256)
        except (FileNotFoundError, ValueError):
            raise _non_retryable(f"e-mail {key}: attachment {ref.sha256[:12]}… not in the "
                                 f"blob store", "AttachmentMissing") from None
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise _non_retryable(f"e-mail {key}: attachment {ref.sha256[:12]}… does not match "
                                 f"its hash", "AttachmentCorrupt")
        return data

    async def _smtp_send(self, message: Message, out: _Outgoing) -> tuple[dict, str]:
        try:
            return await self.smtp.send(message, sender=out.sender, recipients=out.recipients)
        except aiosmtplib.SMTPRecipientsRefused as error:  # nobody accepted
            replies = [(r.code, _reply(r.code, r.message)) for r in error.recipients]
            detail = "; ".join(sorted({text for _, text in replies}))
            if replies and all(500 <= code < 600 for code, _ in replies):
                raise _Refused(detail) from None
            raise SmtpTransientError(detail) from None
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as error:
            detail = _reply(error.code, error.message)
            if 500 <= error.code < 600:
                raise _Refused(detail) from None
            raise SmtpTransientError(detail) from None
        except aiosmtplib.SMTPResponseException as error:  # sender, auth: our configuration
            raise SmtpTransientError(_reply(error.code, error.message)) from None
        except (aiosmtplib.SMTPException, OSError) as error:  # connection, timeout
            raise SmtpTransientError(_scrub(f"{type(error).__name__}: {error}")) from None

    @staticmethod
    def _log(out: _Outgoing, status: str) -> None:
        log.info("mail key=%s template=%s status=%s", out.key, out.template, status)


def _sending_workflow(key: str) -> str:
    """The workflow an e-mail is sent for: the one that scheduled this activity (the
    server says so), else (called directly) the key's first part."""
    if activity.in_activity():
        workflow_id = activity.info().workflow_id
        if workflow_id:
            return workflow_id
    return key.split(":", 1)[0]


def _final_attempt() -> int | None:
    """The attempt number when this run is the last the retry policy allows, else None."""
    if not activity.in_activity():
        return None
    info = activity.info()
    limit = info.retry_policy.maximum_attempts if info.retry_policy else 0
    return info.attempt if limit and info.attempt >= limit else None


# --- SMTP connections ------------------------------------------------------------------

# A connection is reused for at most this many messages (relays limit messages per
# session: Exchange's default is 20 per connection), kept idle at most this long (relays
# drop idle sessions after 60–300 s), and at most this many are kept idle.
SMTP_MESSAGES_PER_CONNECTION = 20
SMTP_IDLE_S = 30.0
SMTP_IDLE_CONNECTIONS = 4
# A session idle longer than this is checked with NOOP before use (one more command; on
# this machine each command costs about as much CPU as opening the connection saves).
SMTP_CHECK_AFTER_S = 1.0


@dataclass
class _Session:
    client: aiosmtplib.SMTP
    messages: int = 0
    idle_since: float = 0.0


class SmtpPool:
    """SMTP sessions reused across e-mails: the connection, TLS and EHLO once per
    session instead of once per message (``python -m bench.mail``: bench/README).

    Each message still is one whole SMTP transaction on a session used by nobody else
    meanwhile, and the outbox around it (``MailActivities._deliver``) is unchanged: a
    failed transaction raises as before and its session is closed, never reused.
    Before a session is reused the loop reads what the server sent meanwhile: a session
    the server closed (idle timeout, restart, message limit) is dropped and a new one is
    opened; one idle for more than ``check_after_s`` is first checked with ``NOOP`` (the
    same on any answer but 250). Nothing of the message is sent on a dead session, so
    this is not a resend. What is left is a close still in flight when the next message
    starts: that transaction fails like any lost connection (transient; the activity is
    retried, the outbox counts the attempt). Sessions belong to the event loop that
    opened them; on another loop (tests) the old ones are dropped."""

    def __init__(self, settings: GdSettings, *,
                 messages_per_connection: int = SMTP_MESSAGES_PER_CONNECTION,
                 idle_s: float = SMTP_IDLE_S, idle_connections: int = SMTP_IDLE_CONNECTIONS,
                 check_after_s: float = SMTP_CHECK_AFTER_S):
        s = settings
        password = getattr(s, "smtp_password", None)
        if hasattr(password, "get_secret_value"):
            password = password.get_secret_value()
        self._options = dict(
            hostname=s.smtp_host, port=s.smtp_port, timeout=s.smtp_timeout_s,
            use_tls=bool(getattr(s, "smtp_ssl", False)),
            start_tls=bool(getattr(s, "smtp_starttls", False)),
            username=getattr(s, "smtp_username", None) or None,
            password=password or None,
            local_hostname=getattr(s, "smtp_local_hostname", None) or MESSAGE_ID_DOMAIN)
        self.messages_per_connection = messages_per_connection
        self.idle_s = idle_s
        self.idle_connections = idle_connections
        self.check_after_s = check_after_s
        self._idle: list[_Session] = []
        self._loop: Any = None
        self.opened = 0  # sessions opened since start (bench, tests)

    async def send(self, message: Message, *, sender: str,
                   recipients: list[str]) -> tuple[dict, str]:
        """One transaction; aiosmtplib's errors propagate as from ``aiosmtplib.send``."""
        session = await self._take()
        try:
            result = await session.client.send_message(
                message, sender=sender, recipients=recipients)
        except BaseException:
            _close(session)
            raise
        session.messages += 1
        await self._give_back(session)
        return result

    def close(self) -> None:
        """Close the idle sessions (without QUIT: the server sees the connection end)."""
        while self._idle:
            _close(self._idle.pop())

    async def _take(self) -> _Session:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self.close()
            self._loop = loop
        if self._idle:
            await asyncio.sleep(0)  # let the loop read a close the server already sent
        while self._idle:
            session = self._idle.pop()  # the most recently used first
            idle = time.monotonic() - session.idle_since
            if not session.client.is_connected or idle > self.idle_s:
                _close(session)
                continue
            if idle > self.check_after_s:
                try:
                    await session.client.noop()
                except (aiosmtplib.SMTPException, OSError):  # dropped meanwhile: a new one
                    _close(session)
                    continue
            return session
        client = aiosmtplib.SMTP(**self._options)
        await client.connect()
        self.opened += 1
        return _Session(client)

    async def _give_back(self, session: _Session) -> None:
        """Never raises: the message has been accepted already."""
        if not session.client.is_connected:
            _close(session)
            return
        if (session.messages >= self.messages_per_connection
                or len(self._idle) >= self.idle_connections):
            try:
                await session.client.quit()
            except Exception:  # noqa: BLE001 - a failed goodbye changes nothing sent
                _close(session)
            return
        session.idle_since = time.monotonic()
        self._idle.append(session)


def _close(session: _Session) -> None:
    try:
        session.client.close()
    except RuntimeError:  # its event loop is closed already
        pass


class _Refused(Exception):
    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


_OUTBOX: sa.Table = Outbox.__table__  # type: ignore[attr-defined]
_OUTBOX_RESULT = (_OUTBOX.c.key, _OUTBOX.c.template, _OUTBOX.c.status, _OUTBOX.c.message_id,
                  _OUTBOX.c.detail)
_SECRETS: sa.Table = TechnicianSecret.__table__  # type: ignore[attr-defined]
_TECHNICIANS: sa.Table = TechnicianRecord.__table__  # type: ignore[attr-defined]


_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


def _header(value: str) -> str | Header:
    """A header value: as is when ASCII, else RFC 2047 encoded words (UTF-8)."""
    return value if value.isascii() else Header(value, "utf-8")


def _header_param(value: str) -> str | tuple[str, str, str]:
    """A MIME parameter (a file name): as is when ASCII, else RFC 2231 (UTF-8)."""
    return value if value.isascii() else ("utf-8", "", value)


def _settled_result(row: Any) -> EmailResult | None:
    if row.status == "sent":
        return EmailResult(key=row.key, template=row.template, status="duplicate",
                           message_id=row.message_id, detail=row.detail)
    if row.status == "refused":
        return EmailResult(key=row.key, template=row.template, status="refused",
                           detail=row.detail)
    return None
