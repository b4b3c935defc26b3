"""The portal's "Entrar com a conta da distribuidora" (issue 22, item 1: "or OIDC when
configured"): authorization code with PKCE against a real local OIDC provider process
(tests/oidc_provider.py), the same machinery as the inbox's (api/web_session.py), in
Debian's Chromium. The access token's party claims (API.md) make the portal session:
``gd_council_key`` an RT, ``gd_document`` a customer; an analyst is not let in."""

from __future__ import annotations

import re

import pytest_asyncio

from tests.web_stack import SHOTS, axe_serious, chromium, oidc_stack, provider_events  # noqa: F401 (chromium: a fixture)



@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def oidc(tmp_path_factory):
    clients = {"GD_PORTAL_OIDC_CLIENT_ID": "gd-portal"}
    async with oidc_stack(tmp_path_factory.mktemp("portal-oidc"), clients) as stack:
        yield stack


async def login_as(page, base: str, user: str) -> None:
    await page.goto(f"{base}/portal/entrar")
    await page.get_by_role("link", name="Entrar com a conta da distribuidora").click()
    await page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/authorize\?"))
    await page.get_by_label("Usuário").select_option(user)
    await page.get_by_role("button", name="Autorizar").click()
    await page.wait_for_load_state()


async def test_rt_and_customer_enter_with_the_distributors_account(oidc, chromium):
    base = oidc.base_url
    for width in (360, 1280):
        context = await chromium.new_context(viewport={"width": width, "height": 800}, locale="pt-BR")
        page = await context.new_page()
        await page.goto(f"{base}/portal/entrar")
        assert await page.get_by_role("link", name="Entrar com a conta da distribuidora").count() == 1
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        assert await axe_serious(page) == []
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / f"portal-login-oidc-{width}.png"), full_page=True)
        await context.close()

    # the RT: council key from gd_council_key, the portal's own client and return address
    context = await chromium.new_context(viewport={"width": 360, "height": 740}, locale="pt-BR")
    page = await context.new_page()
    await login_as(page, base, "rt.joao")
    assert page.url == f"{base}/portal/servicos", await page.locator("main").inner_text()
    assert await page.locator(".quem").inner_text() == "CREA-MG-123456 · RT"
    asked = [e for e in provider_events(oidc) if e["event"] == "authorize"][-1]
    assert asked["client_id"] == "gd-portal" and asked["code_challenge_method"] == "S256"
    assert asked["redirect_uri"] == f"{base}/portal/oidc/retorno"
    assert [e for e in provider_events(oidc) if e["event"] == "token"][-1] == \
        {"event": "token", "ok": True, "has_verifier": True}
    await page.get_by_role("link", name="Meus pedidos").first.click()
    assert page.url.endswith("/portal/pedidos")
    await page.get_by_role("button", name="Sair").click()
    await page.wait_for_url(re.compile(r"/portal/entrar$"))
    await page.goto(f"{base}/portal/servicos")
    assert page.url.endswith("/portal/entrar")

    # the customer: CPF from gd_document, shown masked
    await login_as(page, base, "maria.cliente")
    assert page.url == f"{base}/portal/servicos"
    assert await page.locator(".quem").inner_text() == "***.982.247-** · cliente"
    await page.get_by_role("button", name="Sair").click()
    await page.wait_for_url(re.compile(r"/portal/entrar$"))

    # an analyst's account is not a portal party
    await login_as(page, base, "ana.analista")
    assert "não é de Responsável Técnico" in await page.locator("main").inner_text()
    await page.goto(f"{base}/portal/servicos")
    assert page.url.endswith("/portal/entrar")

    # a forged return lets nobody in
    await page.goto(f"{base}/portal/oidc/retorno?code=abc&state=forjado")
    assert "Não foi possível entrar" in await page.locator("h1").inner_text()
    await page.goto(f"{base}/portal/servicos")
    assert page.url.endswith("/portal/entrar")
    await context.close()
