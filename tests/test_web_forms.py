"""The request page's other forms (issue 18) used as an analyst would, in Debian's Chromium
driven by Playwright against a running ``gd api`` (dev mode: persona login) on the real
stack (dev server, worker, SQLite store, SMTP sink): reprove, declare works, suspend and
resume the clock (the suspension by keyboard only), answer a consulta, and open/download a
cited document. Each checks what the analyst sees (status, the pt-BR flash) and what the
requester receives (the e-mail at the sink, by its template's subject).

Expected values come from the rules: the parecer of a microgeração is due in 15 days
without works and 30 with them (seed policy, day 1 is the day after the start); the
subjects are the templates' (templates/email/*.subject.j2); the requesters of a request
are its customer and its RT, the answer of a consulta goes to its customer; a document
is the bytes uploaded (its sha256).

The API runs with ``GD_WEB_SESSION_KEY`` set, as deploy/ runs it (one key for the inbox and
the portal): a customer logged into the portal must not get into the inbox with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from datetime import date, datetime, timedelta
from email.utils import getaddresses

import pytest_asyncio

from domain import reasons as catalogue
from domain.calendar import TZ
from tests.pdf_fixture import make_pdf
from tests.test_api import CPF, Who, approved_rt, doc, request_body, settled
from tests.test_web import login, no_serious_axe, under_analysis
from tests.web_stack import DevTokens, chromium, web_stack  # noqa: F401 (chromium: a fixture)

CUSTOMER = "maria.souza@example.com.br"
RT_EMAIL = "rt.123456@engenharia.example.com"  # approved_rt's RT, CREA-MG-123456
PASSWORD = "Sol-e-rede-2026"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webforms")
    key = tmp / "dev-key.pem"
    env = {"GD_AUTH_MODE": "dev", "GD_AUTH_DEV_KEY": str(key), "GD_WEB_SESSION_KEY": uuid.uuid4().hex}
    async with web_stack(tmp, env) as running:
        running.who = Who(DevTokens(key))
        async with running.http() as http:
            await approved_rt(http, running.who)
        yield running


async def analyst_page(chromium, stack, persona: str = "Ana (analista)"):
    context = await chromium.new_context(viewport={"width": 1280, "height": 800}, locale="pt-BR",
                                         timezone_id="America/Sao_Paulo")
    page = await context.new_page()
    await login(page, stack.base_url, persona)
    return context, page


async def mails(stack, since: int, subject: str, timeout: float = 20.0,
                to: frozenset[str] = frozenset()) -> dict[str, object]:
    """The messages whose subject is ``subject`` that arrived after ``since``, by recipient,
    once there is one (and one for each address in ``to``)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        found = {address: m for m in stack.smtp.messages[since:] if m["Subject"] == subject
                 for _, address in getaddresses([str(m["To"]), str(m["Cc"] or "")]) if address}
        if found and to <= set(found):
            return found
        assert loop.time() < give_up, [m["Subject"] for m in stack.smtp.messages[since:]]
        await asyncio.sleep(0.3)


def body_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


async def flash(page) -> str:
    return (await page.locator("main .aviso.sucesso[role=status]").inner_text()).strip()


def shown_due(text: str) -> date:
    found = re.search(r"\((\d\d/\d\d/\d{4}) \d\d:\d\d\)", text)
    assert found, text
    return datetime.strptime(found.group(1), "%d/%m/%Y").date()


async def test_analyst_reproves_with_two_reasons_and_both_requesters_get_the_reproval(stack, chromium):
    async with stack.http() as http:
        st = await under_analysis(http, stack.who)
    rid, ns = st["request_id"], st["service_note"]
    codes = catalogue.codes_for("reprove")[:2]
    texts = [catalogue.catalogue()[c].text for c in codes]
    context, page = await analyst_page(chromium, stack)
    await page.goto(f"{stack.base_url}/ui/solicitacoes/{rid}")
    since = len(stack.smtp.messages)

    # no reason chosen: refused beside the reasons, nothing decided
    await page.locator("summary", has_text="Reprovar").click()
    reprove = page.locator("form[action$='/acoes/reprove']")
    await reprove.get_by_role("button", name="Reprovar").click()
    await page.wait_for_load_state()
    assert "Escolha ao menos um motivo do catálogo" in await page.locator("#motivos-erro").inner_text()
    assert "Em análise" in await page.locator(".situacao").inner_text()

    reprove = page.locator("form[action$='/acoes/reprove']")
    for text in texts:
        await reprove.get_by_label(text, exact=True).check()
    await reprove.get_by_label(f"Texto para {texts[1]}").fill("Potência do unifilar: 10 kW; memorial: 8,5 kW.")
    await reprove.get_by_role("button", name="Reprovar").click()
    await page.wait_for_url(re.compile(rf"/ui/solicitacoes/{rid}$"))
    assert await flash(page) == "Reprovar: feito."
    assert "Reprovada" in await page.locator(".situacao").inner_text()
    decisions = await page.locator("ol.decisoes").inner_text()
    assert all(t in decisions for t in texts) and "Potência do unifilar: 10 kW; memorial: 8,5 kW." in decisions
    assert await page.locator("aside form").count() == 0  # the RT's turn now
    await no_serious_axe(page)

    # the customer and the RT get the reproval: the catalogue's words and the analyst's text
    got = await mails(stack, since, f"NS {ns} reprovada — motivos e reanálise", to=frozenset({CUSTOMER, RT_EMAIL}))
    assert set(got) == {CUSTOMER, RT_EMAIL}
    text = body_of(got[CUSTOMER])
    assert all(t in text for t in texts) and "Potência do unifilar: 10 kW; memorial: 8,5 kW." in text
    await context.close()


async def test_analyst_declares_works_and_the_parecer_is_due_in_30_days(stack, chromium):
    async with stack.http() as http:
        st = await under_analysis(http, stack.who)  # microgeração, no works: 15 days
    rid = st["request_id"]
    context, page = await analyst_page(chromium, stack)
    await page.goto(f"{stack.base_url}/ui/solicitacoes/{rid}")
    before = shown_due(await page.locator(".situacao").inner_text())
    start = datetime.fromisoformat(st["deadlines"][-1]["start"].replace("Z", "+00:00")).astimezone(TZ).date()
    assert st["deadlines"][-1]["rule"] == "parecer" and start + timedelta(days=15) <= before <= start + timedelta(days=19)

    await page.get_by_label("Motivo das obras").fill("Reforço do transformador do alimentador")
    await page.get_by_role("button", name="Declarar obras").click()
    await page.wait_for_url(re.compile(rf"/ui/solicitacoes/{rid}$"))
    assert await flash(page) == "Declarar obras: feito."
    assert re.search(r"Obras\s+declaradas", await page.locator("#resumo-t + dl").inner_text())
    after = shown_due(await page.locator(".situacao").inner_text())
    # 30 days from the same start (rolled forward to a business day, as the 15 were)
    assert start + timedelta(days=30) <= after <= start + timedelta(days=34) and after > before
    rows = page.locator("#prazos-t + table tbody tr")
    n = await rows.count()  # the APR window, the parecer without works, the one with them
    assert n == 3
    newest, replaced = await rows.nth(n - 1).inner_text(), await rows.nth(n - 2).inner_text()
    assert "obras: Reforço do transformador do alimentador" in newest and f"{after:%d/%m/%Y} 23:59" in newest
    assert "em curso" in newest
    assert f"{before:%d/%m/%Y} 23:59" in replaced and "substituído" in replaced
    await context.close()


async def focused(page) -> dict[str, str]:
    """The focused control: its tag, id and accessible text (label, or the button's words)."""
    return await page.evaluate("""() => {
        const el = document.activeElement;
        const label = el.labels && el.labels.length ? el.labels[0].innerText : (el.innerText || '');
        return {tag: el.tagName.toLowerCase(), id: el.id || '', name: label.trim(),
                aside: !!el.closest('aside')};
    }""")


async def test_keyboard_only_suspends_the_clock_then_it_is_resumed(stack, chromium):
    async with stack.http() as http:
        st = await under_analysis(http, stack.who)
    rid, ns = st["request_id"], st["service_note"]
    context, page = await analyst_page(chromium, stack)
    await page.goto(f"{stack.base_url}/ui/solicitacoes/{rid}")
    since = len(stack.smtp.messages)

    # Tab from the top: the skip link first; Enter on it moves focus to the content
    await page.keyboard.press("Tab")
    assert (await focused(page))["name"] == "Ir para o conteúdo"
    await page.keyboard.press("Enter")
    assert (await focused(page))["id"] == "conteudo"
    # on through the page: the actions column in the order it reads, ending at the clock
    actions: list[str] = []
    for _ in range(80):
        await page.keyboard.press("Tab")
        now = await focused(page)
        if now["aside"]:
            actions.append(now["name"])
        if now["id"] == "reason":
            break
    assert actions == [
        "Assumir", "Parecer de acesso (PDF, até 3 MB)", "O parecer exige obras", "Observações (opcional)",
        "Aprovar e emitir parecer", "Suspender com pendências", "Reprovar", "Motivo das obras", "Declarar obras",
        "Motivo da suspensão do prazo",
    ], actions
    await page.keyboard.type("Aguardando vistoria técnica no local (REN art. 64)")
    await page.keyboard.press("Tab")
    assert await focused(page) == {"tag": "button", "id": "", "name": "Suspender o prazo", "aside": True}
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(rf"/ui/solicitacoes/{rid}$"))
    assert await flash(page) == "Suspender o prazo: feito."
    assert "prazo suspenso" in await page.locator(".situacao").inner_text()
    paused = await mails(stack, since, f"Prazo suspenso — solicitação {rid} (NS {ns})")
    assert CUSTOMER in paused and "Aguardando vistoria técnica no local (REN art. 64)" in body_of(paused[CUSTOMER])

    # resumed: the deadline runs again, the requester gets the new due date
    since = len(stack.smtp.messages)
    await page.get_by_role("button", name="Retomar o prazo").click()
    await page.wait_for_url(re.compile(rf"/ui/solicitacoes/{rid}$"))
    assert await flash(page) == "Retomar o prazo: feito."
    situation = await page.locator(".situacao").inner_text()
    assert "prazo suspenso" not in situation
    due, hhmm = shown_due(situation), re.search(r"\d\d/\d\d/\d{4} (\d\d:\d\d)\)", situation).group(1)
    resumed = await mails(stack, since, f"Prazo retomado — novo vencimento em {due:%d/%m/%Y} ({rid})",
                          to=frozenset({CUSTOMER, RT_EMAIL}))
    assert set(resumed) == {CUSTOMER, RT_EMAIL}
    assert f"Novo vencimento: {due:%d/%m/%Y} às {hhmm} (horário de Brasília)." in body_of(resumed[CUSTOMER]), body_of(resumed[CUSTOMER])
    assert await page.get_by_label("Motivo da suspensão do prazo").count() == 1  # it may be suspended again
    await context.close()


async def test_analyst_answers_a_consulta_and_the_customer_gets_the_answer(stack, chromium):
    rid = f"consulta-{uuid.uuid4().hex[:8]}"
    async with stack.http() as http:
        commercial = await doc(http, stack.who.customer(), "commercial_id")
        body = request_body(rid, commercial)
        body.update({"kind": "inquiry", "technician": None})
        r = await http.post("/api/v1/requests", json=body, headers=stack.who.customer())
        assert r.status_code == 201, r.text
        await settled(http, stack.who.analyst(), f"/api/v1/requests/{rid}",
                      lambda s: s["status"] == "AWAITING_ANSWER" and s["pending_effects"] == 0)
    context, page = await analyst_page(chromium, stack)
    await page.goto(f"{stack.base_url}/ui/caixa?status=AWAITING_ANSWER")
    row = page.locator("table.fila tbody tr", has=page.locator(f"a[href='/ui/solicitacoes/{rid}']"))
    assert "consulta" in await row.inner_text()
    await row.get_by_role("link").first.click()
    await page.wait_for_url(re.compile(rf"/ui/solicitacoes/{rid}$"))
    since = len(stack.smtp.messages)

    # an empty answer is refused beside the field
    await page.get_by_role("button", name="Responder a consulta").click()
    await page.wait_for_load_state()
    assert await page.locator("#answer-erro").count() == 1
    assert "Consulta aguardando resposta" in await page.locator(".situacao").inner_text()

    answer = "Há margem no alimentador para 8,5 kW em 0,22 kV; a solicitação pode seguir sem obras."
    await page.get_by_label("Resposta").fill(answer)
    await page.get_by_role("button", name="Responder a consulta").click()
    await page.wait_for_url(re.compile(rf"/ui/solicitacoes/{rid}$"))
    assert await flash(page) == "Responder a consulta: feito."
    assert "Consulta respondida" in await page.locator(".situacao").inner_text()
    assert answer in await page.locator("ol.decisoes").inner_text()
    await no_serious_axe(page)
    got = await mails(stack, since, f"Resposta à sua consulta de acesso — referência {rid}")
    assert set(got) == {CUSTOMER} and answer in body_of(got[CUSTOMER])
    await context.close()


async def portal_cookie(stack) -> str:
    """A customer's real portal session (password login at /portal/entrar): the cookie value."""
    from activities.store import Store
    from api import portal_accounts as accounts

    store = Store(stack.settings.database_url)
    try:
        accounts.set_password(store, "customer", CPF, PASSWORD)
    finally:
        store.dispose()
    async with stack.http() as http:
        page = await http.get("/portal/entrar")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = await http.post("/portal/entrar", data={"csrf": csrf, "perfil": "customer", "login": "529.982.247-25",
                                                     "senha": PASSWORD})
        assert r.status_code == 303 and r.headers["location"].startswith("/portal/"), r.text[:300]
        return http.cookies["gd_portal"]


async def test_cited_document_opens_and_downloads_as_uploaded_and_only_for_staff(stack, chromium):
    content = make_pdf(f"Documento de identificação {uuid.uuid4().hex}")
    digest = hashlib.sha256(content).hexdigest()
    rid = f"doc-{uuid.uuid4().hex[:8]}"
    async with stack.http() as http:
        r = await http.post("/api/v1/documents", headers=stack.who.customer(), data={"kind": "commercial_id"},
                            files={"file": ("identidade-maria.pdf", content, "application/pdf")})
        assert r.status_code == 201, r.text
        r = await http.post("/api/v1/requests", json=request_body(rid, r.json()), headers=stack.who.customer())
        assert r.status_code == 201, r.text
        await settled(http, stack.who.analyst(), f"/api/v1/requests/{rid}", lambda s: s["status"] == "AWAITING_APR")
    context, page = await analyst_page(chromium, stack)
    await page.goto(f"{stack.base_url}/ui/solicitacoes/{rid}")
    item = page.locator("ul.documentos li", has_text="identidade-maria.pdf")
    assert "commercial_id" in await item.inner_text()

    # baixar: the browser saves the same bytes
    async with page.expect_download() as got:
        await item.get_by_role("link", name="baixar identidade-maria.pdf").click()
    download = await got.value
    assert download.suggested_filename == "identidade-maria.pdf"
    assert hashlib.sha256(open(await download.path(), "rb").read()).hexdigest() == digest

    # abrir: a new tab, shown inline as a PDF
    link = item.get_by_role("link", name="abrir identidade-maria.pdf")
    assert await link.get_attribute("target") == "_blank"
    opened = await page.request.get(stack.base_url + await link.get_attribute("href"))
    assert opened.status == 200 and opened.headers["content-type"] == "application/pdf"
    assert opened.headers["content-disposition"].startswith("inline")
    assert hashlib.sha256(await opened.body()).hexdigest() == digest
    await context.close()

    url = f"/ui/documentos/{digest}"
    async with stack.http() as http:
        # logged out: the login page, not the bytes (a customer's API token changes nothing)
        for headers in ({}, stack.who.customer()):
            r = await http.get(url, headers=headers)
            assert r.status_code == 303 and r.headers["location"] == "/ui/entrar" and digest not in r.text
            assert hashlib.sha256(r.content).hexdigest() != digest
        # a customer logged into the portal (same session key, as deployed): not staff, refused
        cookie = await portal_cookie(stack)
        r = await http.get(url, headers={"Cookie": f"gd_sessao={cookie}"})
        assert r.status_code == 403, (r.status_code, r.headers.get("content-type"))
        assert content not in r.content
        r = await http.get(f"/ui/solicitacoes/{rid}", headers={"Cookie": f"gd_sessao={cookie}"})
        assert r.status_code == 403 and "Maria" not in r.text
