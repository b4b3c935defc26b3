"""The RT's e-mail corrected by real users (issue 17 item 4), on the real stack (dev server,
worker, SQLite store, SMTP sink, a ``gd api`` process in dev auth mode) driven through
Debian's Chromium (Playwright) and the HTTP API:

* the typo case: an RT registered with a mistyped address is approved (its three e-mails
  go to the typo); the analyst corrects it on the RT's page of the inbox; the code e-mail
  reaches the new address and the notice the old one; the RT opens the e-mail's own link
  in the portal (360 px), a wrong code first, then confirms; a later e-mail (the portal's
  "Esqueci a senha" link) goes to the new address;
* ``Idempotency-Key`` on ``POST …/actions/change_email``: a retried POST (also after the
  change ended) sends no second code or notice.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from urllib.parse import parse_qs, urlparse

import pytest_asyncio

from tests.test_api import Who, settled
from tests.test_web import login, no_serious_axe
from tests.web_stack import chromium, portal_stack, shot  # noqa: F401 (chromium: a fixture)

CODE_TEMPLATE = "technician_email_change_code"
NOTICE_TEMPLATE = "technician_email_change_notice"
PASSWORD = "Sol-e-rede-2026"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory):
    """As tests/test_portal.py: dev auth, the API's SMTP at the sink, and the worker's
    GD_APR_URL pointed at this portal (the code e-mail's link lands here)."""
    async with portal_stack(tmp_path_factory.mktemp("emailweb"), link_here=True) as running:
        yield running


def text_of(message) -> str:
    body = message.get_body(preferencelist=("plain",))
    return body.get_content() if body is not None else ""


def mails(stack, template: str, to: str, since: int = 0) -> list:
    return [m for m in stack.smtp.messages[since:] if m["X-GD-Template"] == template and to in str(m["To"])]


async def wait_mails(stack, template: str, to: str, count: int, since: int = 0, timeout: float = 20.0) -> list:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while len(found := mails(stack, template, to, since)) < count:
        assert loop.time() < give_up, [(m["To"], m["X-GD-Template"]) for m in stack.smtp.messages[since:]]
        await asyncio.sleep(0.2)
    return found


async def new_rt(http, who: Who, email: str) -> str:
    registration = str(300000 + uuid.uuid4().int % 99999)
    key = f"CREA-MG-{registration}"
    body = {"name": "Paula Engenheira Lima", "cpf": "529.982.247-25", "email": email,
            "phone": "31 97777-1234", "council": "CREA", "uf": "MG", "registration": registration}
    r = await http.post("/api/v1/technicians", json=body, headers=who.rt(key))
    assert r.status_code == 201, r.text
    await settled(http, who.analyst(), f"/api/v1/technicians/{key}", lambda s: s["status"] == "PENDING_REVIEW")
    return key


async def test_analyst_corrects_a_typo_and_the_rt_confirms_by_the_link(stack, chromium):
    who = stack.who
    suffix = uuid.uuid4().hex[:6]
    typo = f"paula.{suffix}@engenharia.exmaple.com"      # mistyped domain
    right = f"paula.{suffix}@engenharia.example.com"
    async with stack.http() as http:
        key = await new_rt(http, who, typo)
        r = await http.post(f"/api/v1/technicians/{key}/actions/approve", json={}, headers=who.analyst())
        assert r.status_code == 200, r.text
    # The three credential e-mails went to the typo: the RT never got its set-password link.
    await wait_mails(stack, "technician_apr_set_password", typo, 1)

    # 1. The analyst corrects it on the RT's page of the inbox (1280 px).
    context = await chromium.new_context(viewport={"width": 1280, "height": 900}, locale="pt-BR",
                                         timezone_id="America/Sao_Paulo")
    page = await context.new_page()
    await login(page, stack.base_url, "Ana (analista)")
    await page.goto(f"{stack.base_url}/ui/rts/{key}")
    assert "Cadastro aprovado" in await page.locator(".situacao").inner_text()
    await page.locator("summary", has_text="Corrigir o e-mail do RT").click()
    form = page.locator("form[action$='/email']")
    # A bad address: refused beside the field, nothing sent.
    since = len(stack.smtp.messages)
    await form.get_by_label("Novo e-mail do RT").fill("paula-sem-arroba.example.com")
    await form.get_by_role("button", name="Enviar código ao novo e-mail").click()
    await page.wait_for_load_state()
    assert "e-mail inválido" in await page.locator("#email-erro").inner_text()
    assert mails(stack, CODE_TEMPLATE, "", since) == []
    await no_serious_axe(page)
    await shot(page, "inbox-rt-email-refused")
    form = page.locator("form[action$='/email']")
    await form.get_by_label("Novo e-mail do RT").fill(right)
    await form.get_by_role("button", name="Enviar código ao novo e-mail").click()
    await page.wait_for_url(re.compile(rf"/ui/rts/{key}$"))
    body = await page.locator("main").inner_text()
    assert "Código de confirmação enviado a p***@engenharia.example.com" in body
    assert "aguardando confirmação do RT" in body
    assert right not in body and typo not in body
    await no_serious_axe(page)
    await shot(page, "inbox-rt-email-change")

    # 2. The code (with the link) reaches the NEW address; the notice the OLD one, masked.
    code_mail = (await wait_mails(stack, CODE_TEMPLATE, right, 1, since))[0]
    notice = (await wait_mails(stack, NOTICE_TEMPLATE, typo, 1, since))[0]
    assert mails(stack, CODE_TEMPLATE, typo, since) == [] and mails(stack, NOTICE_TEMPLATE, right, since) == []
    assert "p***@engenharia.example.com" in text_of(notice) and "por um analista da Cemig" in text_of(notice)
    link = re.search(r"(http://\S+/rt/email/confirmar\?\S+)", text_of(code_mail)).group(1)
    assert link.startswith(f"{stack.base_url}/portal/rt/email/confirmar?rt={key}&codigo=")
    code = parse_qs(urlparse(link).query)["codigo"][0]
    assert re.fullmatch(r"\d{6}", code)

    # 3. The RT opens the e-mail's link on a phone: what changes, masked; no login needed.
    phone = await chromium.new_context(viewport={"width": 360, "height": 740}, locale="pt-BR",
                                       timezone_id="America/Sao_Paulo")
    rt_page = await phone.new_page()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    await rt_page.goto(link.replace(f"codigo={code}", f"codigo={wrong}"))
    await rt_page.get_by_role("button", name="Confirmar novo e-mail").click()
    await rt_page.wait_for_load_state()
    assert "código incorreto; nada mudou; restam 4 tentativa(s)" in await rt_page.locator("#erro").inner_text()
    await rt_page.goto(link)
    shown = await rt_page.locator("main").inner_text()
    # the new address masked; the current one not at all (the link is no login)
    assert key in shown and "p***@engenharia.example.com" in shown
    assert "exmaple" not in shown
    assert right not in shown and typo not in shown
    width = await rt_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, width
    await no_serious_axe(rt_page)
    await shot(rt_page, "portal-rt-email-confirm-360")
    await rt_page.get_by_role("button", name="Confirmar novo e-mail").click()
    await rt_page.get_by_role("heading", name="Novo e-mail confirmado").wait_for()
    assert "p***@engenharia.example.com" in await rt_page.locator("main").inner_text()
    await no_serious_axe(rt_page)
    # Used once: the same link now says so and changes nothing.
    await rt_page.goto(link)
    assert "já foi confirmado" in await rt_page.locator("#erro").inner_text()

    # 4. The analyst's page reads the new address (masked) and no pending change.
    await page.goto(f"{stack.base_url}/ui/rts/{key}")
    body = await page.locator("main").inner_text()
    assert "p***@engenharia.example.com" in body and "aguardando confirmação" not in body
    assert "Novo e-mail confirmado pelo código" in body

    # 5. A later e-mail to the RT goes to the new address: the portal's "Esqueci a senha"
    # link (to the RT's registered e-mail), which the typo had made unreachable.
    since = len(stack.smtp.messages)
    await rt_page.goto(f"{stack.base_url}/portal/esqueci-senha")
    await rt_page.get_by_label("Responsável Técnico").check()
    await rt_page.get_by_label(re.compile(r"^Login")).fill(key)
    await rt_page.get_by_role("button", name=re.compile("Enviar")).click()
    await rt_page.wait_for_load_state()
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 20
    while not [m for m in stack.smtp.messages[since:] if right in str(m["To"])]:
        assert loop.time() < give_up, [m["To"] for m in stack.smtp.messages[since:]]
        await asyncio.sleep(0.2)
    forgot = text_of([m for m in stack.smtp.messages[since:] if right in str(m["To"])][0])
    assert not [m for m in stack.smtp.messages[since:] if typo in str(m["To"])]
    set_link = re.search(r"(http://\S+/portal/definir-senha\?token=\S+)", forgot).group(1)

    # 6. With the password registered from that e-mail, the RT logs in; "Meus dados" shows
    # the new address, and the RT itself can ask for the next change.
    await rt_page.goto(set_link)
    await rt_page.get_by_label(re.compile(r"^Login( \*)?$")).fill(key)
    await rt_page.get_by_label("Nova senha").fill(PASSWORD)
    await rt_page.get_by_label("Repita a senha").fill(PASSWORD)
    await rt_page.get_by_role("button", name="Registrar a senha").click()
    await rt_page.wait_for_url(re.compile(r"/portal/entrar$"))
    await rt_page.get_by_label(re.compile(r"^Login( \*)?$")).fill(key)
    await rt_page.get_by_label(re.compile(r"^Senha( \*)?$")).fill(PASSWORD)
    await rt_page.get_by_role("button", name="Entrar").click()
    await rt_page.wait_for_url(re.compile(r"/portal/servicos$"))
    await rt_page.get_by_role("link", name="Meus dados").click()
    await rt_page.wait_for_url(re.compile(r"/portal/meus-dados$"))
    shown = await rt_page.locator("main").inner_text()
    assert key in shown and "p***@engenharia.example.com" in shown and right not in shown
    since = len(stack.smtp.messages)
    await rt_page.get_by_label(re.compile(r"^Novo e-mail")).fill(right.upper())
    await rt_page.get_by_role("button", name="Enviar link ao novo e-mail").click()
    await rt_page.wait_for_load_state()
    assert "igual ao já cadastrado" in await rt_page.locator("#email-erro").inner_text()
    later = f"paula.{suffix}@outro.example.net"
    await rt_page.get_by_label(re.compile(r"^Novo e-mail")).fill(later)
    await rt_page.get_by_role("button", name="Enviar link ao novo e-mail").click()
    await rt_page.wait_for_url(re.compile(r"/portal/meus-dados$"))
    shown = await rt_page.locator("main").inner_text()
    assert "Enviamos um código e um link para p***@outro.example.net" in shown
    assert "aguardando a confirmação" in shown
    width = await rt_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, width
    await no_serious_axe(rt_page)
    await shot(rt_page, "portal-rt-meus-dados-360")
    await wait_mails(stack, CODE_TEMPLATE, later, 1, since)
    notice = (await wait_mails(stack, NOTICE_TEMPLATE, right, 1, since))[0]
    assert "pelo próprio RT" in text_of(notice)
    await context.close()
    await phone.close()


async def test_a_retried_change_email_with_the_same_idempotency_key_sends_one_code(stack):
    who = stack.who
    suffix = uuid.uuid4().hex[:6]
    old, new = f"rt.{suffix}@velho.example.com", f"rt.{suffix}@novo.example.com"
    async with stack.http() as http:
        key = await new_rt(http, who, old)
        since = len(stack.smtp.messages)
        path = f"/api/v1/technicians/{key}/actions/change_email"
        first = await http.post(path, json={"email": new}, headers=who.rt(key) | {"Idempotency-Key": "troca-1"})
        assert first.status_code == 202, first.text
        again = await http.post(path, json={"email": new}, headers=who.rt(key) | {"Idempotency-Key": "troca-1"})
        assert again.status_code == 202, again.text
        assert again.json()["status"] == "AWAITING_CONFIRMATION"
        assert again.json()["sequence"] == first.json()["sequence"]
        # Another key is another request: a new code (which replaces the first).
        other = await http.post(path, json={"email": new}, headers=who.rt(key) | {"Idempotency-Key": "troca-2"})
        assert other.status_code == 202, other.text
        codes = await wait_mails(stack, CODE_TEMPLATE, new, 2, since)
        await asyncio.sleep(1.0)
        assert len(mails(stack, CODE_TEMPLATE, new, since)) == 2
        assert len(mails(stack, NOTICE_TEMPLATE, old, since)) == 2
        code = re.search(r"Código de confirmação: (\d{6})", text_of(codes[-1])).group(1)
        r = await http.post(f"/api/v1/technicians/{key}/actions/confirm_email", json={"code": code},
                            headers=who.rt(key))
        assert r.status_code == 200 and r.json()["status"] == "CONFIRMED", r.text
        # The change has ended; the first POST retried once more still sends nothing and
        # answers its first outcome.
        late = await http.post(path, json={"email": new}, headers=who.rt(key) | {"Idempotency-Key": "troca-1"})
        assert late.status_code == 202, late.text
        assert late.json()["sequence"] == first.json()["sequence"]
        await asyncio.sleep(1.0)
        assert len(mails(stack, CODE_TEMPLATE, new, since)) == 2
        assert len(mails(stack, NOTICE_TEMPLATE, old, since)) == 2


async def test_the_confirmation_page_is_rate_limited_like_the_login(stack):
    """20 tries a minute per client address (the portal login's limiter): guessing codes
    through the page stops at 429, and the page says so in pt-BR."""
    import httpx

    link = "/portal/rt/email/confirmar?rt=CREA-MG-{n}&codigo=123456"
    answers = []
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        for n in range(21):
            r = await http.get(link.format(n=200000 + n))
            answers.append(r.status_code)
            if r.status_code == 429:
                assert "Muitas tentativas; aguarde alguns minutos" in r.text
                break
    assert answers[-1] == 429, answers
    assert set(answers[:-1]) == {409}, answers  # before: "no change waits" for these RTs
    assert len(answers) <= 21
