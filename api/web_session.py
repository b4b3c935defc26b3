"""The web inbox's sessions: a signed cookie, its CSRF token, dev personas and OIDC login.

The session is a cookie (HttpOnly, SameSite=Lax, path ``/ui``) holding who is logged in
and the CSRF token every form carries, signed with HMAC-SHA256 (``GD_WEB_SESSION_KEY``;
without it a random key per process: sessions end when the process restarts). Nothing in
it is secret but the signature keeps it from being forged.

``dev`` mode: a persona is chosen on the login page (only in dev mode). ``oidc`` mode:
authorization code with PKCE (S256) against ``GD_AUTH_ISSUER`` (its discovery document);
the access token it returns is checked by the API's own verifier, so the web inbox and
the API accept exactly the same people and roles.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from api.auth import Principal

COOKIE = "gd_sessao"
SESSION_TTL_S = 10 * 3600
LOGIN_TTL_S = 600

# dev personas (dev mode only): the roles the inbox serves.
PERSONAS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "ana.analista": ("Ana (analista)", ("analyst",), "analista"),
    "bruno.analista": ("Bruno (analista)", ("analyst",), "analista"),
    "sonia.supervisora": ("Sônia (supervisora)", ("supervisor",), "supervisora"),
    "ivo.inspetor": ("Ivo (inspetor)", ("inspector",), "inspetor"),
    "alice.auditora": ("Alice (auditora)", ("auditor",), "auditora"),
}
# The roles the inbox is for; a token with none of them is not let in.
WEB_ROLES = ("analyst", "supervisor", "inspector", "auditor")


class WebSettings(BaseSettings):
    """``GD_WEB_*``: the inbox's own settings (the API's are in api/config.py)."""

    model_config = SettingsConfigDict(env_prefix="GD_WEB_", extra="ignore")

    session_key: str | None = None
    # Secure cookies need HTTPS; behind the TLS proxy set it true.
    cookie_secure: bool = False
    oidc_client_id: str = "gd-inbox"
    oidc_client_secret: str | None = None
    # Where the browser reaches this app (for the redirect URI); default: the request's.
    public_url: str | None = None
    # Where this app fetches the issuer's discovery document (the back channel, e.g.
    # http://keycloak:8080/realms/gd/.well-known/openid-configuration inside compose);
    # default: ``{GD_AUTH_ISSUER}/.well-known/openid-configuration``.
    oidc_discovery_url: str | None = None


@dataclass
class Session:
    csrf: str
    sub: str | None = None
    roles: tuple[str, ...] = ()
    council_key: str | None = None
    document: str | None = None
    name: str | None = None
    exp: int = 0
    # during an OIDC login: state, nonce and the PKCE verifier
    login: dict[str, str] | None = None
    flash: str | None = None

    @property
    def principal(self) -> Principal | None:
        if not self.sub:
            return None
        return Principal(id=self.sub, roles=self.roles, council_key=self.council_key, document=self.document)

    def to_dict(self) -> dict[str, Any]:
        return {
            "c": self.csrf, "s": self.sub, "r": list(self.roles), "k": self.council_key,
            "d": self.document, "n": self.name, "e": self.exp, "l": self.login, "f": self.flash,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Session":
        return cls(
            csrf=str(data["c"]), sub=data.get("s"), roles=tuple(data.get("r") or ()),
            council_key=data.get("k"), document=data.get("d"), name=data.get("n"),
            exp=int(data.get("e") or 0), login=data.get("l"), flash=data.get("f"),
        )


def new_session() -> Session:
    return Session(csrf=secrets.token_urlsafe(24))


class Signer:
    def __init__(self, key: str | None):
        self.key = (key or secrets.token_urlsafe(32)).encode()

    def dump(self, session: Session) -> str:
        body = base64.urlsafe_b64encode(json.dumps(session.to_dict(), separators=(",", ":")).encode()).decode().rstrip("=")
        mac = hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()
        return f"{body}.{mac}"

    def load(self, cookie: str | None) -> Session | None:
        if not cookie or len(cookie) > 4000 or "." not in cookie:
            return None
        body, _, mac = cookie.rpartition(".")
        good = hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, mac):
            return None
        try:
            session = Session.from_dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
        except Exception:  # noqa: BLE001 - a cookie we did not write: start afresh
            return None
        if session.sub and session.exp < time.time():
            return Session(csrf=session.csrf)
        return session


def csrf_ok(session: Session, sent: Any) -> bool:
    return isinstance(sent, str) and bool(sent) and hmac.compare_digest(session.csrf, sent)


# --- OIDC: authorization code with PKCE ----------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


class OidcClient:
    """The issuer's endpoints (discovery, cached) and the code exchange for one client
    (the inbox's ``GD_WEB_OIDC_*``, the portal's ``GD_PORTAL_OIDC_*``)."""

    def __init__(self, issuer: str, client_id: str, client_secret: str | None = None,
                 discovery_url: str | None = None):
        self.issuer = issuer.rstrip("/")
        self.client_id, self.client_secret, self.discovery_url = client_id, client_secret, discovery_url
        self._discovery: dict[str, Any] | None = None

    async def discovery(self) -> dict[str, Any]:
        import httpx

        if self._discovery is None:
            async with httpx.AsyncClient(timeout=5.0) as http:
                url = self.discovery_url or f"{self.issuer}/.well-known/openid-configuration"
                answer = await http.get(url)
                answer.raise_for_status()
                found = answer.json()
            for key in ("authorization_endpoint", "token_endpoint"):
                if not isinstance(found.get(key), str):
                    raise ValueError(f"descoberta OIDC sem {key}")
            self._discovery = found
        return self._discovery

    async def authorize_url(self, redirect_uri: str, state: str, nonce: str, challenge: str) -> str:
        from urllib.parse import urlencode

        endpoint = (await self.discovery())["authorization_endpoint"]
        query = urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
            "scope": "openid profile", "state": state, "nonce": nonce,
            "code_challenge": challenge, "code_challenge_method": "S256",
        })
        return f"{endpoint}?{query}"

    async def exchange(self, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
        import httpx

        endpoint = (await self.discovery())["token_endpoint"]
        form = {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": self.client_id, "code_verifier": verifier,
        }
        if self.client_secret:
            form["client_secret"] = self.client_secret
        async with httpx.AsyncClient(timeout=10.0) as http:
            answer = await http.post(endpoint, data=form)
        if answer.status_code != 200:
            raise ValueError(f"o provedor recusou o código ({answer.status_code})")
        tokens = answer.json()
        if not isinstance(tokens.get("access_token"), str):
            raise ValueError("resposta do provedor sem access_token")
        return tokens


# --- the login's two legs, shared by the inbox (/ui) and the portal (/portal) --------------


class LoginFailed(Exception):
    """Why an OIDC return lets nobody in (pt-BR, for the error page)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


async def begin_login(session: Session, client: OidcClient, redirect_uri: str) -> str:
    """Keep state, nonce and the PKCE verifier in the session; the provider's URL to go to
    (raises when the discovery document cannot be read)."""
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    session.login = {"state": state, "nonce": nonce, "verifier": verifier, "at": str(int(time.time()))}
    return await client.authorize_url(redirect_uri, state, nonce, challenge)


async def finish_login(session: Session, params: Any, client: OidcClient, redirect_uri: str,
                       verify: Any) -> Principal:
    """The provider's return: check the state (and the login's age), exchange the code with
    the PKCE verifier, verify the access token with ``verify`` (the API's own verifier, so
    the pages accept exactly who the API accepts). The login under way is spent either way."""
    import logging

    from starlette.concurrency import run_in_threadpool

    from api.auth import AuthError

    login, session.login = session.login, None
    if not login:
        raise LoginFailed("Nenhum login em andamento nesta sessão. Volte à página de entrada.")
    if params.get("error"):
        raise LoginFailed(f"O provedor de identidade recusou o login ({str(params.get('error'))[:64]}).")
    if not secrets.compare_digest(str(params.get("state", "")), login["state"]) or \
            time.time() - int(login["at"]) > LOGIN_TTL_S:
        raise LoginFailed("O retorno do provedor não corresponde a este login (state) ou demorou demais.")
    code = params.get("code") or ""
    if not code or len(code) > 2048:
        raise LoginFailed("O provedor não devolveu o código de autorização.")
    try:
        tokens = await client.exchange(code, redirect_uri, login["verifier"])
        return await run_in_threadpool(verify, f"Bearer {tokens['access_token']}")
    except AuthError as error:
        raise LoginFailed(f"Token do provedor recusado: {error.message}.") from None
    except Exception as error:  # noqa: BLE001
        logging.getLogger("gd.web").warning("oidc exchange failed: %s", type(error).__name__)
        raise LoginFailed("A troca do código pelo token falhou; tente entrar de novo.") from None
