"""The portal's accounts (``portal_account``): passwords hashed with argon2id
(argon2-cffi), a lockout after repeated failures, single-use password-setting links, and
a small in-process rate limiter.

How an account comes to exist:

* an **RT**: the third e-mail of an approved registration ("registre a sua senha") carries
  the APR password-setting token (``activities/mail_secrets.py``, single use, 72 h); the
  portal's set-password page redeems it (``redeem_secret``) with the council key and
  creates the account with the chosen password;
* a **customer**: "Primeiro acesso" asks for the CPF/CNPJ and the e-mail of a request
  filed in that document; when they match, the portal e-mails a link of its own
  (32 random bytes, only its SHA-256 kept, single use, 72 h) to that e-mail;
* a forgotten password is the same link, sent to the RT's registered e-mail or to the
  customer's e-mail on their request.

Nothing here logs a login (a CPF/CNPJ is personal data): only account ids.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from activities.store import Store
from activities.tables import PortalAccount

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
LINK_TTL = timedelta(hours=72)
PASSWORD_MIN, PASSWORD_MAX = 10, 128
_T: sa.Table = PortalAccount.__table__  # type: ignore[attr-defined]
_hasher = PasswordHasher()  # argon2id, the library's defaults (RFC 9106 low-memory profile)
# A hash to verify against when the login does not exist, so both cost the same time.
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def password_problem(password: str, login: str) -> str | None:
    """pt-BR rule a new password breaks, or None."""
    if len(password) < PASSWORD_MIN:
        return f"A senha deve ter ao menos {PASSWORD_MIN} caracteres"
    if len(password) > PASSWORD_MAX:
        return f"A senha deve ter no máximo {PASSWORD_MAX} caracteres"
    if password.isdigit() or password.isalpha():
        return "A senha deve misturar letras e números (ou símbolos)"
    plain = "".join(c for c in login if c.isalnum()).lower()
    if plain and plain in "".join(c for c in password if c.isalnum()).lower():
        return "A senha não pode conter o seu login"
    return None


@dataclass
class LoginResult:
    ok: bool
    account_id: int | None = None
    locked: bool = False
    message: str = ""


def check_login(store: Store, role: str, login: str, password: str, *, now: datetime | None = None) -> LoginResult:
    """Verify a password; count failures; lock for ``LOCKOUT`` after ``MAX_FAILURES``."""
    now = now or _now()
    wrong = LoginResult(False, message="Login ou senha incorretos")
    with store.connection() as conn:
        row = conn.execute(sa.select(_T).where(_T.c.role == role, _T.c.login == login).with_for_update()).first()
        if row is None or not row.password_hash:
            try:
                _hasher.verify(_DUMMY, password)
            except VerificationError:
                pass
            return wrong
        locked_until = _aware(row.locked_until)
        if locked_until is not None and now < locked_until:
            minutes = max(1, int((locked_until - now).total_seconds() // 60) + 1)
            return LoginResult(False, row.id, locked=True,
                               message=f"Conta bloqueada por excesso de tentativas; tente de novo em {minutes} min "
                                       "ou use \"Esqueci a senha\"")
        try:
            _hasher.verify(row.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            failures = row.failed_logins + 1
            values: dict = {"failed_logins": failures, "updated_at": now}
            if failures >= MAX_FAILURES:
                values.update(failed_logins=0, locked_until=now + LOCKOUT)
            conn.execute(_T.update().where(_T.c.id == row.id).values(**values))
            if failures >= MAX_FAILURES:
                return LoginResult(False, row.id, locked=True,
                                   message=f"Conta bloqueada por {int(LOCKOUT.total_seconds() // 60)} min após "
                                           f"{MAX_FAILURES} tentativas erradas; use \"Esqueci a senha\" se precisar")
            left = MAX_FAILURES - failures
            return LoginResult(False, row.id, message=f"Login ou senha incorretos ({left} "
                                                      f"{'tentativa restante' if left == 1 else 'tentativas restantes'} "
                                                      "antes do bloqueio)")
        values = {"failed_logins": 0, "locked_until": None, "last_login_at": now, "updated_at": now}
        if _hasher.check_needs_rehash(row.password_hash):
            values["password_hash"] = _hasher.hash(password)
        conn.execute(_T.update().where(_T.c.id == row.id).values(**values))
        return LoginResult(True, row.id)


def set_password(store: Store, role: str, login: str, password: str, *, now: datetime | None = None) -> int:
    """Create the account or replace its password (and end any lockout and open link)."""
    now = now or _now()
    digest = _hasher.hash(password)
    with store.connection() as conn:
        row = conn.execute(sa.select(_T.c.id).where(_T.c.role == role, _T.c.login == login).with_for_update()).first()
        values = {"password_hash": digest, "failed_logins": 0, "locked_until": None,
                  "reset_token_hash": None, "reset_expires_at": None, "updated_at": now}
        if row is None:
            return int(conn.execute(_T.insert().values(role=role, login=login, created_at=now, **values)).inserted_primary_key[0])
        conn.execute(_T.update().where(_T.c.id == row.id).values(**values))
        return int(row.id)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_link(store: Store, role: str, login: str, *, now: datetime | None = None) -> str:
    """A new single-use password-setting token for this login (the account is created,
    without a password, when it does not exist); an older link stops working."""
    now = now or _now()
    token = secrets.token_urlsafe(32)
    values = {"reset_token_hash": _token_hash(token), "reset_expires_at": now + LINK_TTL, "updated_at": now}
    with store.connection() as conn:
        row = conn.execute(sa.select(_T.c.id).where(_T.c.role == role, _T.c.login == login).with_for_update()).first()
        if row is None:
            conn.execute(_T.insert().values(role=role, login=login, failed_logins=0, created_at=now, **values))
        else:
            conn.execute(_T.update().where(_T.c.id == row.id).values(**values))
    return token


@dataclass
class LinkOwner:
    role: str
    login: str


def redeem_link(store: Store, token: str, password: str, *, now: datetime | None = None) -> LinkOwner | None:
    """Set the password of the account the token was issued for; None when the token is
    unknown, used or expired. Single use: the hash is cleared in the same transaction."""
    now = now or _now()
    if not token or len(token) > 200:
        return None
    digest = _token_hash(token)
    with store.connection() as conn:
        row = conn.execute(sa.select(_T).where(_T.c.reset_token_hash == digest).with_for_update()).first()
        if row is None:
            return None
        expires = _aware(row.reset_expires_at)
        if expires is None or now >= expires:
            conn.execute(_T.update().where(_T.c.id == row.id).values(reset_token_hash=None, reset_expires_at=None))
            return None
        done = conn.execute(_T.update().where(_T.c.id == row.id, _T.c.reset_token_hash == digest).values(
            password_hash=_hasher.hash(password), failed_logins=0, locked_until=None,
            reset_token_hash=None, reset_expires_at=None, updated_at=now))
        if done.rowcount != 1:
            return None
        return LinkOwner(row.role, row.login)


def link_is_open(store: Store, token: str, *, now: datetime | None = None) -> bool:
    now = now or _now()
    if not token or len(token) > 200:
        return False
    with store.connection(write=False) as conn:
        row = conn.execute(sa.select(_T.c.reset_expires_at).where(_T.c.reset_token_hash == _token_hash(token))).first()
    return row is not None and (_aware(row.reset_expires_at) or now) > now


# --- rate limits ----------------------------------------------------------------------------


class RateLimiter:
    """At most ``limit`` events per ``window_s`` per key (a client address, a login's
    digest), in this process. Behind several API replicas each counts its own."""

    def __init__(self, limit: int, window_s: float):
        self.limit, self.window_s = limit, window_s
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        hits = self._hits[key]
        while hits and now - hits[0] > self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        if len(self._hits) > 50_000:
            self._hits.clear()
        return True

    def retry_after(self, key: str) -> int:
        hits = self._hits.get(key)
        if not hits:
            return 0
        return max(1, int(self.window_s - (time.monotonic() - hits[0])) + 1)


def key_of(*parts: str) -> str:
    """A limiter key that keeps no login in clear."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]
