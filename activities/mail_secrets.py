"""The technician's one-time secrets (AGV password, APR set-password token): only their
scrypt hashes are stored (``TechnicianSecret``); ``redeem_secret`` uses one once."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from activities.store import Store
from activities.tables import TechnicianSecret

# Lifetimes of the technician's secrets (the guide gives none; the AGV asks for a new
# password at first login, the APR link is meant to be used at once).
AGV_PASSWORD_TTL = timedelta(days=30)
APR_TOKEN_TTL = timedelta(hours=72)
# The code that confirms a new e-mail address (TechnicianEmailChange); its lifetime is the
# workflow's (models.technician.EMAIL_CODE_TTL).
EMAIL_CODE_KIND = "email_change_code"
_SECRETS: sa.Table = TechnicianSecret.__table__  # type: ignore[attr-defined]


def _now() -> datetime:
    return datetime.now(timezone.utc)


SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_secret(secret: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64), with a fresh 16-byte salt per secret."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                            p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_secret(secret: str, stored: str) -> bool:
    scheme, n, r, p, salt, digest = stored.split("$")
    if scheme != "scrypt":
        return False
    actual = hashlib.scrypt(secret.encode("utf-8"), salt=base64.b64decode(salt), n=int(n),
                            r=int(r), p=int(p), dklen=32)
    return secrets.compare_digest(actual, base64.b64decode(digest))



class SecretRefused(ValueError):
    """A secret sent to an RT that cannot be used (pt-BR message)."""


def redeem_secret(store: Store, technician: str, kind: str, secret: str, *,
                  now: datetime | None = None,
                  then: Callable[[Connection], None] | None = None) -> None:
    """Use a secret once: the APR set-password token (72 h) or the AGV password (30 days).

    Raises ``SecretRefused`` when none was issued, it does not match, it expired, or it
    was used already; on success marks it used in the same transaction, so a second
    use (even a concurrent one) is refused. ``then`` runs in that transaction too (what
    the secret unlocks: the new e-mail address)."""
    now = now or _now()
    mine = (_SECRETS.c.technician == technician) & (_SECRETS.c.kind == kind)
    with store.connection() as conn:
        row = conn.execute(sa.select(_SECRETS.c.id, _SECRETS.c.secret_hash,
                                     _SECRETS.c.expires_at, _SECRETS.c.used_at)
                           .where(mine).with_for_update()).first()
        if row is None or not verify_secret(secret, row.secret_hash):
            raise SecretRefused("código inválido: peça um novo cadastro de senha")
        if row.used_at is not None:
            raise SecretRefused("código já utilizado: cada código vale uma única vez")
        expires = row.expires_at
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
        if expires is not None and now >= expires:
            raise SecretRefused("código expirado: o prazo de validade terminou; peça um novo")
        done = conn.execute(_SECRETS.update().where(_SECRETS.c.id == row.id,
                                                    _SECRETS.c.used_at.is_(None))
                            .values(used_at=now))
        if done.rowcount != 1:
            raise SecretRefused("código já utilizado: cada código vale uma única vez")
        if then is not None:
            then(conn)

