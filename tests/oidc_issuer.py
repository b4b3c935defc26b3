"""A real, local OIDC-style issuer for the API tests: an HTTP server publishing a JWKS
(RS256 and ES256 keys) and a helper that signs tokens with those keys. Nothing in the
API's verification is mocked: it fetches this JWKS over HTTP like a real provider's."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "gd-orchestrator"


class Issuer:
    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, Any]] = {}
        self.published: list[str] = []
        self.fetches = 0
        self.add_key("rsa-1", "RS256")
        self.add_key("ec-1", "ES256")
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                issuer.fetches += 1
                body = json.dumps(issuer.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.jwks_url = f"{self.url}/jwks.json"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "Issuer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_key(self, kid: str, alg: str, publish: bool = True) -> None:
        key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.keys[kid] = (alg, key)
        if publish:
            self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            alg, key = self.keys[kid]
            to_jwk = RSAAlgorithm.to_jwk if alg == "RS256" else ECAlgorithm.to_jwk
            data = json.loads(to_jwk(key.public_key()))
            data.update({"kid": kid, "alg": alg, "use": "sig"})
            keys.append(data)
        return {"keys": keys}

    def token(
        self,
        sub: str,
        roles: list[str],
        *,
        council_key: str | None = None,
        document: str | None = None,
        kid: str = "rsa-1",
        sign_with: str | None = None,
        iss: str | None = None,
        aud: str = AUDIENCE,
        exp_in: int = 3600,
        nbf_in: int = 0,
        **extra: Any,
    ) -> str:
        """A token whose header names ``kid``, signed with ``sign_with``'s key (default: kid's)."""
        alg, key = self.keys[sign_with or kid]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": iss or self.url, "aud": aud, "sub": sub, "roles": roles,
            "iat": now, "nbf": now + nbf_in, "exp": now + exp_in, "jti": uuid.uuid4().hex,
        }
        if council_key:
            claims["gd_council_key"] = council_key
        if document:
            claims["gd_document"] = document
        claims.update(extra)
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})
