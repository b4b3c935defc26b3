"""Bearer JWTs: verification (PyJWT, JWKS fetched and cached) and the dev issuer.

``oidc`` mode: keys come from ``GD_AUTH_JWKS_URL`` through ``PyJWKClient``; the set is
cached and fetched again when a token names a ``kid`` the cache does not hold (at most
once per ``GD_AUTH_JWKS_MIN_REFETCH_S``). ``dev`` mode: the API is its own issuer, with
an ES256 key kept under ``var/`` (created on first use); ``gd dev token`` signs with it.

Every token is checked for signature (RS256 or ES256 only), ``iss``, ``aud``, ``exp``
and ``nbf``. The actor comes from ``sub`` and the roles claim, never from a body.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient
from jwt.exceptions import PyJWKClientError

from api.config import DEV_ISSUER, ApiSettings
from models.names import SYSTEM_ACTOR_ID

ALGORITHMS = ["RS256", "ES256"]
API_ROLES = ("customer", "technician", "analyst", "supervisor", "inspector", "auditor", "system")
LEEWAY_S = 30
VERIFIED_TTL_S = 60.0  # how long an accepted token is taken on trust (Verifier.verify)
VERIFIED_MAX = 10_000  # tokens remembered at once; the memory is emptied when full
_ACTOR_ID = re.compile(r"[A-Za-z0-9._@:-]{1,64}")


class AuthError(Exception):
    """401: the token is missing or fails a check. ``code`` is logged; message is pt-BR."""

    def __init__(self, code: str, message: str, status: int = 401):
        self.code = code
        self.message = message
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class Principal:
    """Who calls: from the token only."""

    id: str
    roles: tuple[str, ...]
    council_key: str | None = None
    document: str | None = None

    def first_role(self, allowed: tuple[str, ...] | list[str]) -> str | None:
        for role in self.roles:
            if role in allowed:
                return role
        return None

    @property
    def main_role(self) -> str:
        return self.roles[0] if self.roles else "-"


def _council_key(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    from gd_client import GdRefused, parse_technician_key

    try:
        return parse_technician_key(value).key
    except GdRefused:
        raise AuthError("bad_claim", "token: gd_council_key inválido (esperado CREA-MG-123456)")


def _document(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    from pydantic_core import PydanticCustomError

    from models.common import normalize_tax_id

    try:
        return normalize_tax_id(value.strip())
    except PydanticCustomError:
        raise AuthError("bad_claim", "token: gd_document inválido (CPF ou CNPJ)")


def principal_from(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not _ACTOR_ID.fullmatch(sub):
        raise AuthError("bad_sub", "token: sub ausente ou inválido (1 a 64 de A-Z a-z 0-9 . _ @ : -)")
    if sub == SYSTEM_ACTOR_ID:
        raise AuthError(
            "system_actor_forged",
            f"token: o id '{SYSTEM_ACTOR_ID}' é reservado aos passos automáticos dos processos",
            status=403,
        )
    raw_roles = claims.get("roles") or []
    if isinstance(raw_roles, str):
        raw_roles = raw_roles.split()
    roles = tuple(r for r in raw_roles if isinstance(r, str) and r in API_ROLES) if isinstance(raw_roles, list) else ()
    return Principal(
        id=sub,
        roles=roles,
        council_key=_council_key(claims.get("gd_council_key")),
        document=_document(claims.get("gd_document")),
    )


class Verifier:
    """Checks bearer tokens against the configured issuer."""

    def __init__(self, settings: ApiSettings):
        self.settings = settings
        self.issuer = settings.issuer
        self.audience = settings.auth_audience
        self._lock = threading.Lock()
        self._keys: dict[str, PyJWK] = {}
        self._last_fetch = 0.0
        self._jwks: PyJWKClient | None = None
        # Tokens already verified: token → (principal, monotonic deadline). See verify().
        self._verified: dict[str, tuple[Principal, float]] = {}
        if settings.auth_mode == "dev":
            key = DevIssuer(settings).public_jwk()
            self._keys[key.key_id] = key  # type: ignore[index]
        else:
            self._jwks = PyJWKClient(
                str(settings.auth_jwks_url), cache_keys=False, cache_jwk_set=True, lifespan=300,
                timeout=5,
            )

    def _key(self, kid: str) -> PyJWK | None:
        """The key for ``kid``: from the cache, else (oidc) from a fresh JWKS fetch."""
        key = self._keys.get(kid)
        if key is not None or self._jwks is None:
            return key
        with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                return key
            if time.monotonic() - self._last_fetch < self.settings.auth_jwks_min_refetch_s:
                return None
            self._last_fetch = time.monotonic()
            try:
                keys = self._jwks.get_signing_keys(refresh=True)
            except PyJWKClientError as error:
                raise AuthError("jwks_unavailable", f"token: chaves do emissor indisponíveis ({type(error).__name__})", status=503)
            self._keys = {k.key_id: k for k in keys if k.key_id}
            self._verified = {}  # a key may have left the set: check every token again
            return self._keys.get(kid)

    def needs_fetch(self, token: str) -> bool:
        """True when checking this token may fetch the JWKS (run it off the event loop)."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return False
        return self._jwks is not None and isinstance(kid, str) and kid not in self._keys

    def remembered(self, token: str) -> Principal | None:
        """The principal of a token this verifier accepted less than VERIFIED_TTL_S ago and
        whose ``exp`` has not passed; None otherwise."""
        found = self._verified.get(token)
        if found is None:
            return None
        if time.monotonic() >= found[1]:
            self._verified.pop(token, None)
            return None
        return found[0]

    def verify(self, authorization: str | None) -> Principal:
        """Check the token (signature, ``alg``, ``kid``, ``iss``, ``aud``, ``exp``, ``nbf``).

        A client sends the same token with every call until it expires, and checking its
        signature is most of what the API spends on a read (ES256: ~0.2 ms, RS256 ~0.1 ms,
        plus the decoding; py-spy, ``bench.api``), so an accepted token is remembered, by
        its exact text, for at most VERIFIED_TTL_S and never past its ``exp``. Refused
        tokens are not remembered; a JWKS refetch forgets every token."""
        token = self.bearer(authorization)
        known = self.remembered(token)
        if known is not None:
            return known
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed_token", "token malformado")
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise AuthError("bad_algorithm", f"token: algoritmo {alg!r} não aceito (aceitos: RS256, ES256)")
        if not isinstance(kid, str) or not kid:
            raise AuthError("no_kid", "token sem kid no cabeçalho")
        key = self._key(kid)
        if key is None:
            raise AuthError("unknown_kid", "token assinado por chave desconhecida do emissor")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("expired", "token expirado")
        except jwt.ImmatureSignatureError:
            raise AuthError("not_yet_valid", "token ainda não é válido (nbf)")
        except jwt.InvalidAudienceError:
            raise AuthError("bad_audience", f"token: aud não é {self.audience}")
        except jwt.InvalidIssuerError:
            raise AuthError("bad_issuer", "token: iss não é o emissor configurado")
        except jwt.MissingRequiredClaimError as error:
            raise AuthError("missing_claim", f"token sem a claim obrigatória {error.claim}")
        except jwt.InvalidSignatureError:
            raise AuthError("bad_signature", "token: assinatura inválida")
        except (jwt.PyJWTError, ValueError, TypeError):
            raise AuthError("invalid_token", "token inválido")
        principal = principal_from(claims)
        self._remember(token, principal, claims.get("exp"))
        return principal

    def _remember(self, token: str, principal: Principal, exp: Any) -> None:
        if not isinstance(exp, (int, float)):
            return
        left = min(float(exp) - time.time(), VERIFIED_TTL_S)
        if left <= 0:
            return
        if len(self._verified) >= VERIFIED_MAX:
            self._verified = {}
        self._verified[token] = (principal, time.monotonic() + left)

    @staticmethod
    def bearer(authorization: str | None) -> str:
        if not authorization:
            raise AuthError("no_token", "falta o cabeçalho Authorization: Bearer <token>")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 8192:
            raise AuthError("no_token", "Authorization deve ser 'Bearer <token>'")
        return token


class DevIssuer:
    """The dev-mode issuer: an ES256 key under ``var/`` (created once, mode 0600)."""

    def __init__(self, settings: ApiSettings):
        self.settings = settings
        self.path = Path(settings.auth_dev_key)

    def _private(self):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            tmp = self.path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(pem)
            tmp.chmod(0o600)
            try:
                os.link(tmp, self.path)  # first writer wins; a concurrent one reads it
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return serialization.load_pem_private_key(self.path.read_bytes(), password=None)

    def kid(self) -> str:
        import hashlib

        from cryptography.hazmat.primitives import serialization

        der = self._private().public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "dev-" + hashlib.sha256(der).hexdigest()[:16]

    def public_jwk(self) -> PyJWK:
        import json

        from jwt.algorithms import ECAlgorithm

        data = json.loads(ECAlgorithm.to_jwk(self._private().public_key()))
        data.update({"kid": self.kid(), "alg": "ES256", "use": "sig"})
        return PyJWK(data)

    def mint(
        self,
        sub: str,
        roles: list[str],
        *,
        council_key: str | None = None,
        document: str | None = None,
        ttl_s: int = 12 * 3600,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": DEV_ISSUER,
            "aud": self.settings.auth_audience,
            "sub": sub,
            "roles": roles,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
        }
        if council_key:
            claims["gd_council_key"] = council_key
        if document:
            claims["gd_document"] = document
        return jwt.encode(claims, self._private(), algorithm="ES256", headers={"kid": self.kid()})
