"""The APR password an approved RT sets with the token of its third e-mail (seed: "Um
e-mail solicitando o registro da senha para acesso ao APR").

``set_apr_password`` redeems the token once (``activities.mail.redeem_secret``: it must
match the stored scrypt hash, not be expired — 72 h — nor used) and stores only the
password's scrypt hash (``TechnicianSecret`` kind ``apr_password``). Neither the token nor
the password is ever logged or stored in clear. Used by ``gd technician set-password``
and ``POST /api/v1/technicians/{council_key}/password``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import sqlalchemy as sa

from activities.mail import SecretRefused, hash_secret, redeem_secret, verify_secret
from activities.store import Store
from activities.tables import TechnicianSecret

TOKEN_KIND = "apr_password_token"
PASSWORD_KIND = "apr_password"
MIN_LENGTH, MAX_LENGTH = 10, 128
_SECRETS: sa.Table = TechnicianSecret.__table__  # type: ignore[attr-defined]
_KEY = re.compile(r"^(CREA|CAU)-[A-Z]{2}-[A-Z0-9]{3,15}$")


class PasswordRefused(ValueError):
    """One pt-BR line naming the field and the rule; nothing changed."""


def check_password(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise PasswordRefused(f"password: a senha deve ter de {MIN_LENGTH} a {MAX_LENGTH} caracteres")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise PasswordRefused("password: a senha não pode conter caracteres de controle")
    if len(set(password)) < 4 or not (re.search(r"[A-Za-z]", password) and re.search(r"\d", password)):
        raise PasswordRefused("password: use letras e números, com ao menos 4 caracteres diferentes")


def set_apr_password(store: Store, technician: str, token: str, password: str, *,
                     now: datetime | None = None) -> None:
    """Redeem ``token`` (one use, expiry) and store the password's hash; raises
    ``PasswordRefused`` (bad key or password: nothing used) or ``SecretRefused``."""
    if not _KEY.fullmatch(technician):
        raise PasswordRefused("council_key: esperado CONSELHO-UF-REGISTRO (ex.: CREA-MG-123456)")
    if not token or len(token) > 200:
        raise PasswordRefused("token: informe o código do e-mail de registro da senha")
    check_password(password)  # before the token is used: a weak password spends nothing
    redeem_secret(store, technician, TOKEN_KIND, token, now=now)
    secret_hash = hash_secret(password)
    stamp = now or datetime.now(timezone.utc)
    mine = (_SECRETS.c.technician == technician) & (_SECRETS.c.kind == PASSWORD_KIND)
    values = dict(secret_hash=secret_hash, created_at=stamp, expires_at=None, used_at=None)
    with store.connection() as conn:
        if not conn.execute(_SECRETS.update().where(mine).values(**values)).rowcount:
            conn.execute(_SECRETS.insert().values(technician=technician, kind=PASSWORD_KIND, **values))


def check_apr_login(store: Store, technician: str, password: str) -> bool:
    """Whether ``password`` is the RT's APR password (for the portal's login)."""
    with store.connection(write=False) as conn:
        stored = conn.execute(sa.select(_SECRETS.c.secret_hash).where(
            _SECRETS.c.technician == technician, _SECRETS.c.kind == PASSWORD_KIND)).scalar()
    return bool(stored) and verify_secret(password, stored)


__all__ = ["PasswordRefused", "SecretRefused", "check_apr_login", "set_apr_password"]
