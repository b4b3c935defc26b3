"""A small but real OpenID Connect provider, run as its own process for the web inbox's
login tests: discovery, an authorization endpoint with a login form, a token endpoint that
enforces PKCE (S256 only, one-time codes bound to client, redirect URI and challenge), and
the JWKS its RS256 tokens verify against. Access tokens carry the API's claims (``sub``,
``roles``, ``aud``).

    python -m tests.oidc_provider --port 0 --ready-file /tmp/x   # writes the URL when up

Every authorization request it saw is appended to ``--log`` (JSON lines, no secrets), so a
test can check what the client sent.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import secrets
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

AUDIENCE = "gd-orchestrator"
CLIENT_ID = "gd-inbox"
# The clients it knows: the web inbox's and the portal's.
CLIENTS = (CLIENT_ID, "gd-portal")
USERS = {
    "ana.analista": ["analyst"],
    "sonia.supervisora": ["supervisor"],
    "rt.joao": ["technician"],
    "maria.cliente": ["customer"],
}
# The API's party claims (API.md) a user's access token carries.
CLAIMS = {
    "rt.joao": {"gd_council_key": "CREA-MG-123456"},
    "maria.cliente": {"gd_document": "52998224725"},
}


class Provider:
    def __init__(self, log: Path | None):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "prov-" + uuid.uuid4().hex[:8]
        self.codes: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.log = log
        self.url = ""

    def jwks(self) -> dict:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "alg": "RS256", "use": "sig"})
        return {"keys": [jwk]}

    def token(self, sub: str, aud: str, **claims) -> str:
        now = int(time.time())
        body = {"iss": self.url, "aud": aud, "sub": sub, "iat": now, "nbf": now, "exp": now + 600, **claims}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})

    def note(self, entry: dict) -> None:
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")


def handler_for(provider: Provider):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, code: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, data: dict) -> None:
            self._send(code, json.dumps(data).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            if url.path == "/.well-known/openid-configuration":
                base = provider.url
                provider.note({"event": "discovery", "via": parse_qs(url.query).get("via", [None])[0]})
                return self._json(200, {
                    "issuer": base, "authorization_endpoint": f"{base}/authorize",
                    "token_endpoint": f"{base}/token", "jwks_uri": f"{base}/jwks",
                    "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
                    "id_token_signing_alg_values_supported": ["RS256"], "subject_types_supported": ["public"],
                })
            if url.path == "/jwks":
                return self._json(200, provider.jwks())
            if url.path == "/authorize":
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                provider.note({"event": "authorize", **{k: q.get(k) for k in (
                    "response_type", "client_id", "redirect_uri", "code_challenge_method", "scope")},
                    "has_challenge": bool(q.get("code_challenge")), "has_state": bool(q.get("state"))})
                if q.get("response_type") != "code" or q.get("client_id") not in CLIENTS \
                        or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
                    return self._send(400, "pedido de autorização inválido (PKCE S256 obrigatório)".encode(), "text/plain; charset=utf-8")
                hidden = "".join(
                    f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                    for k, v in q.items() if k in ("redirect_uri", "state", "code_challenge", "nonce", "client_id")
                )
                options = "".join(f'<option value="{u}">{u}</option>' for u in USERS)
                page = (
                    '<!doctype html><html lang="pt-BR"><head><meta charset="utf-8"><title>Provedor de identidade</title></head>'
                    '<body><h1>Provedor de identidade (teste)</h1><form method="post" action="/authorize">'
                    f'{hidden}<label for="user">Usuário</label><select id="user" name="user">{options}</select>'
                    '<button type="submit">Autorizar</button></form></body></html>'
                )
                return self._send(200, page.encode(), "text/html; charset=utf-8")
            self._send(404, b"not found", "text/plain")

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            return {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}

        def do_POST(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            form = self._form()
            if url.path == "/authorize":
                if form.get("user") not in USERS:
                    return self._send(400, b"unknown user", "text/plain")
                code = secrets.token_urlsafe(24)
                with provider.lock:
                    provider.codes[code] = {
                        "user": form["user"], "redirect_uri": form.get("redirect_uri"),
                        "challenge": form.get("code_challenge"), "nonce": form.get("nonce"), "at": time.time(),
                        "client_id": form.get("client_id"),
                    }
                target = f"{form.get('redirect_uri')}?{urlencode({'code': code, 'state': form.get('state', '')})}"
                return self._send(302, b"", "text/plain", {"Location": target})
            if url.path == "/token":
                with provider.lock:
                    grant = provider.codes.pop(form.get("code", ""), None)  # one use only
                verifier = form.get("code_verifier", "")
                expected = None
                if grant is not None:
                    expected = grant["challenge"]
                computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                ok = (grant is not None and form.get("grant_type") == "authorization_code"
                      and form.get("client_id") == grant["client_id"] and form.get("redirect_uri") == grant["redirect_uri"]
                      and verifier and secrets.compare_digest(computed, expected or "")
                      and time.time() - grant["at"] < 120)
                provider.note({"event": "token", "ok": bool(ok), "has_verifier": bool(verifier)})
                if not ok:
                    return self._json(400, {"error": "invalid_grant"})
                user = grant["user"]
                access = provider.token(user, AUDIENCE, roles=USERS[user], **CLAIMS.get(user, {}))
                id_token = provider.token(user, grant["client_id"], nonce=grant["nonce"])
                return self._json(200, {"access_token": access, "id_token": id_token, "token_type": "Bearer",
                                        "expires_in": 600})
            self._send(404, b"not found", "text/plain")

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--log")
    args = parser.parse_args(argv)
    provider = Provider(Path(args.log) if args.log else None)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(provider))
    provider.url = f"http://127.0.0.1:{server.server_address[1]}"
    Path(args.ready_file).write_text(provider.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
