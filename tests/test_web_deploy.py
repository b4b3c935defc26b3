"""deploy/ for the web inbox (issue 18), read as test_deploy reads it: every ``GD_WEB_*``
setting the inbox reads (api/web_session.WebSettings) is set for each API, in compose and in
k8s, with values the settings class accepts; the session key is one secret shared by every
API replica (a browser's cookie must verify on whichever instance Caddy or the Service
picks); the cookie is Secure; the realm holds the public PKCE client ``gd-inbox`` whose
redirect URI is the inbox's callback and whose tokens carry the audience the API checks.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from api.web_session import WebSettings
from tests.test_deploy import DEPLOY, compose, container_env, dotenv, k8s, services_running  # noqa: F401

WEB_SETTINGS = {"GD_WEB_" + name.upper() for name in WebSettings.model_fields}


def web_settings_from(env: dict[str, str], monkeypatch) -> WebSettings:
    for name in list(__import__("os").environ):
        if name.startswith("GD_WEB_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("GD_WEB_"):
            monkeypatch.setenv(name, str(value))
    return WebSettings()


def realm_client(client_id: str) -> dict:
    realm = json.loads((DEPLOY / "keycloak/realm-gd.json").read_text(encoding="utf-8"))
    return next(c for c in realm["clients"] if c["clientId"] == client_id)


def test_compose_apis_share_one_session_key_and_set_every_web_setting(compose, dotenv, monkeypatch):
    apis = services_running(compose, "api")
    assert len(apis) == 2
    keys = set()
    for name, svc in apis.items():
        env = svc["environment"]
        missing = WEB_SETTINGS - set(env)
        assert not missing, f"{name}: not set: {sorted(missing)}"
        web = web_settings_from(env, monkeypatch)
        assert web.cookie_secure is True, name
        assert web.oidc_client_id == "gd-inbox" and not web.oidc_client_secret, name
        keys.add(web.session_key)
        # the callback the realm allows is where this app says the browser reaches it
        assert f"{web.public_url}/ui/oidc/retorno" in realm_client("gd-inbox")["redirectUris"], name
        # discovery through the back channel: a host of this compose network, the realm's path
        discovery = urlsplit(web.oidc_discovery_url)
        assert discovery.hostname in compose["services"], name
        assert discovery.path == "/realms/gd/.well-known/openid-configuration", name
    # one key for both, from deploy/.env (gen-env.sh), long enough for HMAC-SHA256
    assert keys == {dotenv["GD_WEB_SESSION_KEY"]} and len(dotenv["GD_WEB_SESSION_KEY"]) >= 32


def test_k8s_api_gets_every_web_setting_and_the_key_from_the_secret(k8s, monkeypatch):  # noqa: F811
    env = container_env(k8s, "gd-api")
    missing = WEB_SETTINGS - set(env)
    assert not missing, f"api: not set: {sorted(missing)}"
    assert "GD_WEB_SESSION_KEY" in k8s[("Secret", "gd-secrets")]["stringData"]
    assert "GD_WEB_SESSION_KEY" not in k8s[("ConfigMap", "gd-config")]["data"]
    web = web_settings_from(env, monkeypatch)
    assert web.cookie_secure is True and web.oidc_client_id == "gd-inbox"
    assert web.public_url.startswith("https://")
    issuer = env["GD_AUTH_ISSUER"]
    assert web.oidc_discovery_url == f"{issuer}/.well-known/openid-configuration"


def test_realm_gd_inbox_is_a_public_pkce_client_for_the_apis_audience():
    client = realm_client("gd-inbox")
    assert client["enabled"] and client["publicClient"] and client["standardFlowEnabled"]
    assert not client["implicitFlowEnabled"] and not client["directAccessGrantsEnabled"]
    assert not client["serviceAccountsEnabled"] and "secret" not in client
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert client["redirectUris"] == ["http://localhost:8000/ui/oidc/retorno"]  # no wildcard
    mappers = {m["protocolMapper"]: m["config"] for m in client["protocolMappers"]}
    assert mappers["oidc-audience-mapper"]["included.client.audience"] == "gd-orchestrator"
    assert mappers["oidc-usermodel-realm-role-mapper"]["claim.name"] == "roles"
