"""Webhook subscriptions and their deliveries (Standard Webhooks signatures).

Secrets
-------
A subscription's secret is ``whsec_`` + base64 of 32 random bytes, shown once when the
subscription is created (or rotated). The store keeps it *sealed*: AES-256-GCM with the
payload codec's current key (``GD_CODEC_KEYS``), so a copy of the database does not sign
anything; with no codec key, only under ``GD_ENV=dev``, it is kept ``plain:``. The worker
unseals it inside the delivery activity: no secret is ever an activity argument or
result, so none reaches workflow history, and none is logged.

Rotation keeps the old secret for an overlap: during it every delivery carries both
signatures (``webhook-signature: v1,<new> v1,<old>``, as the spec allows), so a receiver
can switch keys at any moment of the overlap.

Signature (Standard Webhooks): ``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))
where ``key`` is the base64-decoded part of the secret after ``whsec_``.

Deliveries
----------
``deliver_webhook`` posts one event (CloudEvents JSON, structured mode) and records the
attempt; it never raises for an HTTP answer: 2xx → ``delivered``, 410 → ``gone`` (the
subscription is closed), anything else or no answer → ``failed``; the workflow decides
the backoff and the dead letter. Logs carry subscription id, event id, attempt and status
code only (never the URL, which may hold a token, nor the body).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlmodel import select
from temporalio import activity
from temporalio.api.common.v1 import Payload

from activities import events
from activities.store import Store
from activities.tables import OutboundEvent, WebhookDelivery, WebhookSubscription
from models.names import EVENT_TYPES, WebhookNames
from models.webhooks import (
    AwaitEvents,
    DeadLetter,
    DeliveryRequest,
    DeliveryResult,
    FoundEvents,
)

log = logging.getLogger("gd.webhooks")

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MAX_URL = 2000
MAX_OVERLAP_H = 168
DEFAULT_OVERLAP_H = 24
HTTP_TIMEOUT_S = 15.0
USER_AGENT = "gd-orchestrator-webhooks/1"
POLL_EVERY_S = 0.5
_SEALED_AES = "aesgcm:"
_SEALED_PLAIN = "plain:"


class SubscriptionRefused(ValueError):
    """Bad subscription input: ``field`` and a pt-BR ``message`` (nothing is written)."""

    def __init__(self, field: str, code: str, message: str):
        self.field, self.code, self.message = field, code, message
        super().__init__(f"{field}: {message}")


class SecretsUnavailable(RuntimeError):
    """No codec key to seal a secret with, outside GD_ENV=dev."""


# --- secrets and signatures -----------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _codec():
    from codec import codec_from_env

    return codec_from_env()


def seal(secret: str, *, dev: bool) -> str:
    codec = _codec()
    if codec is None:
        if not dev:
            raise SecretsUnavailable(
                "GD_CODEC_KEYS não definida: o segredo da assinatura não pode ser guardado "
                "cifrado (fora de GD_ENV=dev é obrigatório)")
        return _SEALED_PLAIN + secret
    sealed = codec.encrypt(Payload(metadata={"encoding": b"binary/plain"}, data=secret.encode()))
    return _SEALED_AES + base64.b64encode(sealed.SerializeToString()).decode()


def unseal(sealed: str) -> str:
    if sealed.startswith(_SEALED_PLAIN):
        return sealed[len(_SEALED_PLAIN):]
    if not sealed.startswith(_SEALED_AES):
        raise ValueError("segredo guardado em formato desconhecido")
    codec = _codec()
    if codec is None:
        raise SecretsUnavailable("segredo cifrado e GD_CODEC_KEYS não definida neste processo")
    payload = Payload()
    payload.ParseFromString(base64.b64decode(sealed[len(_SEALED_AES):]))
    return codec.decrypt(payload).data.decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One Standard Webhooks signature: ``v1,<base64 HMAC-SHA256>``."""
    key = base64.b64decode(secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret)
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(secrets_: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(s, message_id, timestamp, body) for s in secrets_)


# --- subscriptions in the store -------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def check_url(raw: Any, *, dev: bool) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise SubscriptionRefused("url", "url_missing", "informe a URL que recebe os eventos")
    url = raw.strip()
    if len(url) > MAX_URL:
        raise SubscriptionRefused("url", "url_too_long", f"URL com mais de {MAX_URL} caracteres")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise SubscriptionRefused("url", "url_invalid", "URL com espaços ou caracteres de controle")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise SubscriptionRefused("url", "url_invalid", "URL inválida") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SubscriptionRefused("url", "url_invalid", "use uma URL absoluta http(s)://host/caminho")
    if parts.username or parts.password:
        raise SubscriptionRefused("url", "url_credentials",
                                  "URL com usuário/senha não é aceita: a assinatura autentica os eventos")
    if parts.fragment:
        raise SubscriptionRefused("url", "url_fragment", "URL com fragmento (#) não é aceita")
    del port
    if parts.scheme == "http" and not dev and not _loopback(parts.hostname):
        raise SubscriptionRefused("url", "url_not_https", "use https (http só para este computador)")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_types(raw: Any) -> list[str]:
    if raw is None:
        return list(EVENT_TYPES)
    if not isinstance(raw, list) or not raw or len(raw) > len(EVENT_TYPES):
        raise SubscriptionRefused("types", "types_invalid",
                                  f"lista de 1 a {len(EVENT_TYPES)} tipos de evento")
    unknown = [t for t in raw if t not in EVENT_TYPES]
    if unknown:
        shown = str(unknown[0])[:80]
        raise SubscriptionRefused("types", "type_unknown",
                                  f"tipo de evento desconhecido: {shown!r}; aceitos: {', '.join(EVENT_TYPES)}")
    return sorted(set(raw), key=EVENT_TYPES.index)


def create_subscription(store: Store, owner: str, url: Any, types: Any, *,
                        dev: bool) -> tuple[WebhookSubscription, str]:
    """A new active subscription (events from now on) and its secret, shown once."""
    url = check_url(url, dev=dev)
    kinds = check_types(types)
    secret = new_secret()
    sealed = seal(secret, dev=dev)
    now = _now()
    with store.session() as s:
        top = s.exec(select(sa.func.max(OutboundEvent.position))).first()
        row = WebhookSubscription(
            id="sub_" + uuid.uuid4().hex[:24], owner=owner, url=url, types=kinds,
            secret_sealed=sealed, status="active", start_after=int(top or 0),
            delivered_through=int(top or 0), created_at=now, updated_at=now)
        s.add(row)
        s.flush()
        s.expunge(row)
    log.info("subscription created: id=%s owner=%s types=%d", row.id, owner, len(kinds))
    return row, secret


def get_subscription(store: Store, subscription_id: str) -> WebhookSubscription | None:
    with store.session(write=False) as s:
        row = s.get(WebhookSubscription, subscription_id)
        if row is not None:
            s.expunge(row)
        return row


def list_subscriptions(store: Store, owner: str) -> list[WebhookSubscription]:
    with store.session(write=False) as s:
        rows = list(s.exec(select(WebhookSubscription).where(
            WebhookSubscription.owner == owner).order_by(WebhookSubscription.created_at)).all())  # type: ignore[arg-type]
        for row in rows:
            s.expunge(row)
        return rows


def delete_subscription(store: Store, subscription_id: str) -> bool:
    with store.session() as s:
        row = s.get(WebhookSubscription, subscription_id)
        if row is None or row.status == "deleted":
            return False
        row.status = "deleted"
        row.updated_at = _now()
    log.info("subscription deleted: id=%s", subscription_id)
    return True


def rotate_secret(store: Store, subscription_id: str, overlap_hours: Any, *,
                  dev: bool) -> tuple[WebhookSubscription, str]:
    """A new secret; the current one still signs (beside it) for ``overlap_hours``."""
    if overlap_hours is None:
        overlap_hours = DEFAULT_OVERLAP_H
    if (isinstance(overlap_hours, bool) or not isinstance(overlap_hours, int)
            or not 0 <= overlap_hours <= MAX_OVERLAP_H):
        raise SubscriptionRefused("overlap_hours", "overlap_invalid",
                                  f"número inteiro de horas entre 0 e {MAX_OVERLAP_H}")
    secret = new_secret()
    sealed = seal(secret, dev=dev)
    now = _now()
    with store.session() as s:
        row = s.get(WebhookSubscription, subscription_id)
        if row is None:
            raise KeyError(subscription_id)
        row.previous_secret_sealed = row.secret_sealed if overlap_hours else None
        row.previous_expires_at = now + timedelta(hours=overlap_hours) if overlap_hours else None
        row.secret_sealed = sealed
        row.updated_at = now
        s.flush()
        s.expunge(row)
    log.info("subscription secret rotated: id=%s overlap_h=%d", subscription_id, overlap_hours)
    return row, secret


def signing_secrets(row: WebhookSubscription, now: datetime | None = None) -> list[str]:
    now = now or _now()
    found = [unseal(row.secret_sealed)]
    expires = _aware(row.previous_expires_at)
    if row.previous_secret_sealed and expires is not None and expires > now:
        found.append(unseal(row.previous_secret_sealed))
    return found


def deliveries(store: Store, subscription_id: str, after: int = 0,
               limit: int = 100) -> list[WebhookDelivery]:
    with store.session(write=False) as s:
        rows = list(s.exec(
            select(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == subscription_id,
                   WebhookDelivery.id > after)  # type: ignore[operator]
            .order_by(WebhookDelivery.id).limit(limit)).all())  # type: ignore[arg-type]
        for row in rows:
            s.expunge(row)
        return rows


def public_view(row: WebhookSubscription) -> dict[str, Any]:
    """What GET shows of a subscription: never a secret."""
    expires = _aware(row.previous_expires_at)
    return {
        "id": row.id,
        "url": row.url,
        "types": list(row.types),
        "status": row.status,
        "created_at": events._iso(row.created_at),
        "updated_at": events._iso(row.updated_at),
        "delivered_through": str(row.delivered_through),
        "previous_secret_expires_at": events._iso(expires) if expires and expires > _now() else None,
    }


def delivery_view(row: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "position": str(row.position),
        "attempt": row.attempt,
        "outcome": row.outcome,
        "status_code": row.status_code,
        "error": row.error,
        "duration_ms": row.duration_ms,
        "at": events._iso(row.at),
    }


# --- activities -----------------------------------------------------------------------


class WebhookActivities:
    """``await_webhook_events``, ``deliver_webhook`` and ``dead_letter_webhook``."""

    def __init__(self, store: Store, *, timeout_s: float = HTTP_TIMEOUT_S):
        self.store = store
        self.timeout_s = timeout_s

    @activity.defn(name=WebhookNames.AWAIT_EVENTS)
    async def await_events(self, req: AwaitEvents) -> FoundEvents:
        """Positions of the subscription's next events (waits up to ``wait_s`` for one)."""
        give_up = time.monotonic() + max(0.0, req.wait_s)
        while True:
            found = await asyncio.to_thread(self._scan, req)
            if not found.active or found.positions or time.monotonic() >= give_up:
                return found
            activity.heartbeat()
            await asyncio.sleep(POLL_EVERY_S)

    def _scan(self, req: AwaitEvents) -> FoundEvents:
        row = get_subscription(self.store, req.subscription_id)
        if row is None or row.status != "active":
            return FoundEvents(active=False, through=req.after)
        rows, through = events.read_after(self.store, req.after, req.limit, row.types)
        return FoundEvents(active=True, positions=[int(r.position or 0) for r in rows], through=through)

    @activity.defn(name=WebhookNames.DELIVER)
    async def deliver(self, req: DeliveryRequest) -> DeliveryResult:
        """POST one event, signed; record the attempt. Never raises for an HTTP answer."""
        sub, event = await asyncio.to_thread(self._load, req)
        if sub is None or sub.status != "active" or event is None:
            return DeliveryResult(outcome="inactive")
        body = json.dumps(events.cloudevent(event), ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/cloudevents+json; charset=utf-8",
            "user-agent": USER_AGENT,
            "webhook-id": event.event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(signing_secrets(sub), event.event_id, timestamp, body),
        }
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as http:
            post = asyncio.ensure_future(http.post(sub.url, content=body, headers=headers))
            try:
                while True:  # heartbeat while a slow receiver answers: a dead worker shows fast
                    done, _ = await asyncio.wait({post}, timeout=1.0)
                    if done:
                        break
                    activity.heartbeat()
                status_code = post.result().status_code
            except httpx.HTTPError as failure:
                error = type(failure).__name__
            finally:
                if not post.done():
                    post.cancel()
        if status_code is not None and 200 <= status_code < 300:
            outcome = "delivered"
        elif status_code == 410:
            outcome = "gone"
        else:
            outcome = "failed"
            error = error or f"HTTP {status_code}"
        duration_ms = int((time.monotonic() - started) * 1000)
        await asyncio.to_thread(self._record, req, event, outcome, status_code, error, duration_ms)
        log.info("webhook attempt: subscription=%s event=%s attempt=%d outcome=%s status=%s ms=%d",
                 req.subscription_id, event.event_id, req.attempt, outcome, status_code, duration_ms)
        return DeliveryResult(outcome=outcome, status_code=status_code, error=error)  # type: ignore[arg-type]

    def _load(self, req: DeliveryRequest) -> tuple[WebhookSubscription | None, OutboundEvent | None]:
        with self.store.session(write=False) as s:
            sub = s.get(WebhookSubscription, req.subscription_id)
            event = s.get(OutboundEvent, req.position)
            for row in (sub, event):
                if row is not None:
                    s.expunge(row)
            return sub, event

    def _record(self, req: DeliveryRequest, event: OutboundEvent, outcome: str,
                status_code: int | None, error: str | None, duration_ms: int) -> None:
        with self.store.session() as s:
            s.add(WebhookDelivery(
                subscription_id=req.subscription_id, event_id=event.event_id,
                position=req.position, attempt=req.attempt, outcome=outcome,
                status_code=status_code, error=(error or None) and error[:200],
                duration_ms=duration_ms, at=_now()))
            sub = s.get(WebhookSubscription, req.subscription_id)
            if sub is not None:
                if outcome == "delivered":
                    sub.delivered_through = max(sub.delivered_through, req.position)
                elif outcome == "gone" and sub.status == "active":
                    sub.status = "gone"
                    sub.updated_at = _now()

    @activity.defn(name=WebhookNames.DEAD_LETTER)
    def dead_letter(self, req: DeadLetter) -> None:
        """Give an event up after three days of failures: recorded, then the next one."""
        with self.store.session() as s:
            event = s.get(OutboundEvent, req.position)
            s.add(WebhookDelivery(
                subscription_id=req.subscription_id,
                event_id=event.event_id if event else "-", position=req.position,
                attempt=req.attempts, outcome="dead_letter", at=_now()))
            sub = s.get(WebhookSubscription, req.subscription_id)
            if sub is not None:
                sub.delivered_through = max(sub.delivered_through, req.position)
        log.warning("webhook dead letter: subscription=%s position=%d attempts=%d",
                    req.subscription_id, req.position, req.attempts)


# --- the subscription's workflow ------------------------------------------------------


def workflow_id(subscription_id: str) -> str:
    return f"gd-webhook-{subscription_id}"


async def start_delivery(client: Any, row: WebhookSubscription, task_queue: str, **run: Any) -> Any:
    """Start (or find) the subscription's delivery workflow, from its start position."""
    from temporalio.common import WorkflowIDConflictPolicy

    from models.webhooks import SubscriptionRun

    payload = SubscriptionRun(subscription_id=row.id, cursor=row.start_after,
                              through=row.start_after, **run).model_dump(mode="json")
    return await client.start_workflow(
        WebhookNames.WORKFLOW, payload, id=workflow_id(row.id), task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)


async def stop_delivery(client: Any, subscription_id: str) -> None:
    from temporalio.service import RPCError

    try:
        await client.get_workflow_handle(workflow_id(subscription_id)).signal(WebhookNames.STOP_SIGNAL)
    except RPCError:
        pass  # already closed: the store's status stops it anyway
