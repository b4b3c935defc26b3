"""The web inbox in ``oidc`` mode: authorization code with PKCE against a real local OIDC
provider process (tests/oidc_provider.py), in Debian's Chromium. No dev personas here."""

from __future__ import annotations

import re

import pytest_asyncio

from tests.web_stack import SHOTS, axe_serious, chromium, oidc_stack, provider_events  # noqa: F401 (chromium: a fixture)



@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def oidc(tmp_path_factory):
    clients = {"GD_WEB_OIDC_CLIENT_ID": "gd-inbox",
               # the back channel's own address of the discovery document (compose: keycloak:8080)
               "GD_WEB_OIDC_DISCOVERY_URL": "{provider}/.well-known/openid-configuration?via=canal-interno"}
    async with oidc_stack(tmp_path_factory.mktemp("web-oidc"), clients) as stack:
        yield stack


async def test_login_with_authorization_code_and_pkce_then_logout(oidc, chromium):
    context = await chromium.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.goto(f"{oidc.base_url}/ui/")
    assert page.url.endswith("/ui/entrar")
    # no dev personas in oidc mode
    assert await page.locator("input[name=persona]").count() == 0
    assert await axe_serious(page) == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "inbox-login-oidc.png"), full_page=True)
    await page.get_by_role("link", name="Entrar com a conta da distribuidora").click()
    await page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/authorize\?"))
    await page.get_by_label("Usuário").select_option("ana.analista")
    await page.get_by_role("button", name="Autorizar").click()
    await page.wait_for_url(re.compile(r"/ui/caixa$"))
    assert "ana.analista" in await page.locator(".quem").inner_text()
    # the discovery document was read at GD_WEB_OIDC_DISCOVERY_URL, not derived from the issuer
    assert {e.get("via") for e in provider_events(oidc) if e["event"] == "discovery"} == {"canal-interno"}
    asked = [e for e in provider_events(oidc) if e["event"] == "authorize"][-1]
    assert asked["code_challenge_method"] == "S256" and asked["has_challenge"] and asked["has_state"]
    assert asked["redirect_uri"] == f"{oidc.base_url}/ui/oidc/retorno"
    assert [e for e in provider_events(oidc) if e["event"] == "token"][-1] == \
        {"event": "token", "ok": True, "has_verifier": True}
    cookie = next(c for c in await context.cookies() if c["name"] == "gd_sessao")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    # a forged return (no login under way / wrong state) lets nobody in
    await page.goto(f"{oidc.base_url}/ui/oidc/retorno?code=abc&state=forjado")
    assert "Não foi possível entrar" in await page.locator("h1").inner_text()

    # logout: the session is gone
    await page.goto(f"{oidc.base_url}/ui/caixa")
    await page.get_by_role("button", name="Sair").click()
    await page.wait_for_url(re.compile(r"/ui/entrar$"))
    await page.goto(f"{oidc.base_url}/ui/caixa")
    assert page.url.endswith("/ui/entrar")
    await context.close()


async def test_an_account_without_an_inbox_role_is_refused(oidc, chromium):
    context = await chromium.new_context()
    page = await context.new_page()
    await page.goto(f"{oidc.base_url}/ui/entrar/oidc")
    await page.get_by_label("Usuário").select_option("rt.joao")
    await page.get_by_role("button", name="Autorizar").click()
    await page.wait_for_load_state()
    assert "não tem papel de analista" in await page.locator("main").inner_text()
    await page.goto(f"{oidc.base_url}/ui/caixa")
    assert page.url.endswith("/ui/entrar")
    await context.close()
