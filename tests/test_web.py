"""The analysts' web inbox (issue 18) used as a person would: Debian's Chromium driven by
Playwright against a running ``gd api`` (dev mode: persona login) on the real stack (dev
server, worker, SQLite store, SMTP sink). Requests are seeded through the HTTP API as the
customer and the RT would; everything the analyst does goes through the pages.

Expected orders and texts come from the rules: a microgeração parecer is due in 15 days,
a minigeração one in 30 (seed policy), so a micro request filed after a mini one is the
most urgent; the catalogue's texts are the suspension reasons' words.
"""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
import pytest_asyncio

from domain import reasons as catalogue
from tests.pdf_fixture import make_pdf
from tests.test_api import CPF, Who, act, approved_rt, doc, request_body, settled
from tests.web_stack import DevTokens, axe_serious, chromium, shot, web_stack  # noqa: F401 (chromium: a fixture)


APR_KINDS = ("electrical_project", "art_rrt", "single_line_diagram", "descriptive_memorial")
SUSPEND_CODES = catalogue.codes_for("suspend")[:2]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    key = tmp / "dev-key.pem"
    async with web_stack(tmp, {"GD_AUTH_MODE": "dev", "GD_AUTH_DEV_KEY": str(key)}) as running:
        running.who = Who(DevTokens(key))
        yield running


async def under_analysis(http, who: Who, power_kw: float = 8.5) -> dict:
    """A request filed by the customer and registered in the APR by its RT."""
    await approved_rt(http, who)
    commercial = await doc(http, who.customer(), "commercial_id")
    rid = f"web-{uuid.uuid4().hex[:8]}"
    body = request_body(rid, commercial)
    body["generation"]["installed_power_kw"] = power_kw
    r = await http.post("/api/v1/requests", json=body, headers=who.customer())
    assert r.status_code == 201, r.text
    st = r.json()
    apr = [await doc(http, who.rt(), k) for k in APR_KINDS]
    r = await act(http, who.rt(), rid, "register_apr",
                  {"service_note": st["service_note"], "protocol": st["protocol"], "documents": apr})
    assert r.status_code == 200, r.text
    return await settled(http, who.analyst(), f"/api/v1/requests/{rid}",
                         lambda s: s["status"] == "UNDER_ANALYSIS" and s["pending_effects"] == 0)


async def login(page, base_url: str, persona_label: str) -> None:
    await page.goto(f"{base_url}/ui/")
    assert page.url.endswith("/ui/entrar")
    await page.get_by_label(persona_label).check()
    await page.get_by_role("button", name="Entrar").click()
    await page.wait_for_url(re.compile(r"/ui/caixa"))


async def queue_rows(page) -> list[str]:
    """The NS column of the queue, top to bottom."""
    return [t.strip() for t in await page.locator("table.fila tbody tr td:first-child a").all_inner_texts()]


async def until_queue(page, url: str, check, timeout: float = 15.0) -> list[str]:
    """Reload the queue until ``check(rows)`` (the store follows the workflow by ms)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        await page.goto(url)
        rows = await queue_rows(page)
        if check(rows):
            return rows
        assert loop.time() < give_up, rows
        await asyncio.sleep(0.3)


async def until_row_reads(page, url: str, ns: str, cell: str, text: str, timeout: float = 15.0) -> None:
    """Reload the queue until the row of ``ns`` shows ``text`` in its ``cell``: the
    store's read model follows the workflow's own answer (the detail page) by ms."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        await page.goto(url)
        row = page.locator("table.fila tbody tr", has_text=ns)
        seen = await row.locator(cell).all_inner_texts()
        if any(text in s for s in seen):
            return
        assert loop.time() < give_up, (ns, seen)
        await asyncio.sleep(0.3)


async def no_serious_axe(page) -> None:
    found = await axe_serious(page)
    assert found == [], found


async def test_analyst_works_a_request_from_queue_to_parecer(stack, chromium):
    who = stack.who
    async with stack.http() as http:
        mini = await under_analysis(http, who, power_kw=500.0)
        micro = await under_analysis(http, who, power_kw=8.5)
    context = await chromium.new_context(viewport={"width": 1280, "height": 800}, locale="pt-BR")
    page = await context.new_page()

    # login page: personas only in dev mode
    await page.goto(f"{stack.base_url}/ui/entrar")
    await no_serious_axe(page)
    await shot(page, "inbox-login")
    await login(page, stack.base_url, "Ana (analista)")
    cookie = next(c for c in await context.cookies() if c["name"] == "gd_sessao")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    # the most urgent on top: micro (15 days) before mini (30 days), filed later
    rows = await until_queue(page, f"{stack.base_url}/ui/caixa",
                             lambda r: micro["service_note"] in r and mini["service_note"] in r)
    assert rows.index(micro["service_note"]) < rows.index(mini["service_note"])
    first = page.locator("table.fila tbody tr").first
    assert "Microgeração" in await first.inner_text()
    assert re.search(r"vence em \d+ dias úteis \(\d\d/\d\d/\d{4} 23:59\)", await first.inner_text())
    await no_serious_axe(page)
    await shot(page, "inbox-queue")

    # filter: minigeração only
    await page.get_by_label("Classe").select_option("mini")
    await page.get_by_role("button", name="Filtrar").click()
    await page.wait_for_url(re.compile(r"classe=mini"))
    rows = await queue_rows(page)
    assert mini["service_note"] in rows and micro["service_note"] not in rows

    # claim the micro request from the queue
    await page.goto(f"{stack.base_url}/ui/caixa?classe=micro")
    await page.get_by_role("button", name=f"Assumir {micro['service_note']}").click()
    await page.wait_for_url(re.compile(r"/ui/caixa"))
    async with stack.http() as http:
        st = await settled(http, who.analyst(), f"/api/v1/requests/{micro['request_id']}",
                           lambda s: s.get("assignee") == "ana.analista")
    await until_queue(page, f"{stack.base_url}/ui/caixa?minhas=1", lambda r: r == [micro["service_note"]])

    # the request page: suspend with two catalogue reasons, each with its own text
    await page.get_by_role("link", name=micro["service_note"]).click()
    await page.wait_for_url(re.compile(rf"/ui/solicitacoes/{micro['request_id']}$"))
    await no_serious_axe(page)
    await shot(page, "inbox-request")
    texts = {code: catalogue.catalogue()[code].text for code in SUSPEND_CODES}
    await page.locator("summary", has_text="Suspender com pendências").click()
    suspend = page.locator("form[action$='/acoes/suspend']")
    for code in SUSPEND_CODES:
        await suspend.get_by_label(texts[code], exact=True).check()
    await suspend.get_by_label(f"Texto para {texts[SUSPEND_CODES[0]]}").fill("Falta a ART do novo inversor.")
    await suspend.get_by_role("button", name="Suspender com pendências").click()
    await page.wait_for_url(re.compile(rf"/ui/solicitacoes/{micro['request_id']}$"))
    body = await page.locator("main").inner_text()
    assert "Suspensa" in body and texts[SUSPEND_CODES[0]] in body and texts[SUSPEND_CODES[1]] in body
    assert "Falta a ART do novo inversor." in body
    # no decision form is offered any more (the status' actions are the RT's)
    assert await page.locator("aside form").count() == 0
    await shot(page, "inbox-request-suspended")

    # it leaves the queue
    await until_queue(page, f"{stack.base_url}/ui/caixa", lambda r: micro["service_note"] not in r)

    # the RT corrects, asks for reanalysis: it comes back with a new NS
    async with stack.http() as http:
        fixed = await doc(http, who.rt(), "art_rrt")
        r = await act(http, who.rt(), micro["request_id"], "attach_corrections", {"documents": [fixed]})
        assert r.status_code == 200, r.text
        r = await act(http, who.rt(), micro["request_id"], "request_reanalysis",
                      {"reproved_service_note": micro["service_note"]})
        assert r.status_code == 200, r.text
        again = await settled(http, who.analyst(), f"/api/v1/requests/{micro['request_id']}",
                              lambda s: s["status"] == "UNDER_ANALYSIS" and s["pending_effects"] == 0)
    assert again["service_note"] != micro["service_note"] and again["assignee"] == "ana.analista"
    await until_queue(page, f"{stack.base_url}/ui/caixa?minhas=1", lambda r: r == [again["service_note"]])

    # approve: first without the parecer (refused beside the field), then with it
    await page.goto(f"{stack.base_url}/ui/solicitacoes/{micro['request_id']}")
    approve = page.locator("form[action$='/acoes/approve']")
    await approve.get_by_role("button", name="Aprovar e emitir parecer").click()
    await page.wait_for_load_state()
    assert "Anexe o arquivo" in await page.locator("#parecer-erro").inner_text()
    await no_serious_axe(page)
    sent_before = len(stack.smtp.messages)
    parecer = make_pdf(f"Parecer de acesso {micro['request_id']}")
    approve = page.locator("form[action$='/acoes/approve']")
    await approve.get_by_label("Parecer de acesso (PDF, até 3 MB)").set_input_files(
        files=[{"name": "parecer.pdf", "mimeType": "application/pdf", "buffer": parecer}])
    await approve.get_by_role("button", name="Aprovar e emitir parecer").click()
    await page.wait_for_url(re.compile(rf"/ui/solicitacoes/{micro['request_id']}$"))
    assert "Parecer de acesso emitido" in await page.locator(".situacao").inner_text()

    # the customer's e-mail arrives with the parecer attached
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 20
    while True:
        mails = [m for m in stack.smtp.messages[sent_before:] if "maria.souza@example.com.br" in str(m["To"])
                 and any(p.get_content_type() == "application/pdf" for p in m.iter_attachments())]
        if mails:
            break
        assert loop.time() < give_up, [m["Subject"] for m in stack.smtp.messages[sent_before:]]
        await asyncio.sleep(0.3)
    attached = [p.get_content() for p in mails[0].iter_attachments() if p.get_content_type() == "application/pdf"]
    assert parecer in attached

    # the history shows every step, the e-mails are listed with masked recipients (the store
    # records the approval in its own activity: the e-mail may arrive first, so wait for it)
    give_up = loop.time() + 20
    while True:
        await page.reload()
        history = await page.locator("#historico-t + ol").inner_text()
        if "Parecer de acesso emitido" in history or loop.time() > give_up:
            break
        await asyncio.sleep(0.3)
    for step in ("Cadastro no APR Web", "Atribuída", "Suspensa com pendências", "Reanálise solicitada",
                 "Parecer de acesso emitido"):
        assert step in history, history
    emails = await page.locator("#emails-t ~ table").inner_text()
    assert "m***@example.com.br" in emails and "maria.souza" not in emails
    await shot(page, "inbox-request-approved")
    await context.close()


async def test_two_analysts_one_request_the_second_gets_the_stale_page(stack, chromium):
    who = stack.who
    async with stack.http() as http:
        st = await under_analysis(http, who)
    url = f"{stack.base_url}/ui/solicitacoes/{st['request_id']}"
    pages = []
    for persona in ("Ana (analista)", "Bruno (analista)"):
        context = await chromium.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        await login(page, stack.base_url, persona)
        await page.goto(url)
        pages.append(page)
    ana, bruno = pages

    # Ana claims it; Bruno, on the page he opened before, tries to claim it too
    await ana.locator("form[action$='/acoes/assign']").get_by_role("button", name="Assumir").click()
    await ana.wait_for_url(url)
    await bruno.locator("form[action$='/acoes/assign']").get_by_role("button", name="Assumir").click()
    await bruno.wait_for_load_state()
    assert "Esta solicitação mudou desde que você abriu a página" in await bruno.locator("#desatualizada").inner_text()
    assert "ana.analista" in await bruno.locator(".situacao").inner_text()

    await no_serious_axe(bruno)
    # reloaded, Bruno is no longer offered the claim (the workflow would refuse it)
    await bruno.goto(url)
    assert await bruno.locator("form[action$='/acoes/assign']").count() == 0

    # both open the page; Ana suspends; Bruno's approval is stale and decides nothing
    await ana.goto(url)
    await bruno.goto(url)
    await ana.locator("summary", has_text="Suspender com pendências").click()
    suspend = ana.locator("form[action$='/acoes/suspend']")
    await suspend.get_by_label(catalogue.catalogue()[SUSPEND_CODES[0]].text, exact=True).check()
    await suspend.get_by_role("button", name="Suspender com pendências").click()
    await ana.wait_for_url(url)
    approve = bruno.locator("form[action$='/acoes/approve']")
    await approve.get_by_label("Parecer de acesso (PDF, até 3 MB)").set_input_files(
        files=[{"name": "parecer.pdf", "mimeType": "application/pdf", "buffer": make_pdf("parecer tardio")}])
    await approve.get_by_role("button", name="Aprovar e emitir parecer").click()
    await bruno.wait_for_load_state()
    assert "Esta solicitação mudou desde que você abriu a página" in await bruno.locator("#desatualizada").inner_text()
    assert "Suspensa" in await bruno.locator(".situacao").inner_text()
    await shot(bruno, "inbox-stale")
    async with stack.http() as http:
        r = await http.get(f"/api/v1/requests/{st['request_id']}", headers=who.analyst())
    assert r.json()["status"] == "SUSPENDED"
    assert [d["action"] for d in r.json()["decisions"]] == ["suspend"]
    for page in pages:
        await page.context.close()


async def test_inspector_records_the_vistoria(stack, chromium):
    who = stack.who
    async with stack.http() as http:
        st = await under_analysis(http, who)
        rid = st["request_id"]
        parecer = await doc(http, who.analyst(), "parecer")
        r = await act(http, who.analyst(), rid, "approve", {"parecer": parecer})
        assert r.status_code == 200, r.text
        r = await act(http, who.customer(), rid, "request_inspection", {})
        assert r.status_code == 200, r.text
        await settled(http, who.analyst(), f"/api/v1/requests/{rid}",
                      lambda s: s["status"] == "INSPECTION_REQUESTED" and s["pending_effects"] == 0)
    context = await chromium.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await login(page, stack.base_url, "Ivo (inspetor)")
    await until_queue(page, f"{stack.base_url}/ui/caixa?status=INSPECTION_REQUESTED",
                      lambda r: st["service_note"] in r)
    await page.get_by_role("link", name=st["service_note"]).click()
    form = page.locator("form[action$='/acoes/record_inspection']")
    # the inspector is offered the vistoria only: no parecer, no claim
    assert await page.locator("aside form").count() == 1
    # reproved without findings: the workflow's validator refuses, beside the field
    await form.get_by_label("Reprovada").check()
    await form.get_by_role("button", name="Registrar a vistoria").click()
    await page.wait_for_load_state()
    assert "uma vistoria reprovada exige ao menos uma constatação" in await page.locator("#findings-erro").inner_text()
    assert "uma vistoria reprovada exige ao menos uma constatação" in await page.locator("#resumo-erros").inner_text()
    await no_serious_axe(page)
    await shot(page, "inbox-refused")
    form = page.locator("form[action$='/acoes/record_inspection']")
    await form.get_by_label("Aprovada: conectar").check()
    await form.get_by_label("Constatações (uma por linha)").fill("Padrão de entrada conforme")
    await form.get_by_role("button", name="Registrar a vistoria").click()
    await page.wait_for_url(re.compile(rf"/ui/solicitacoes/{rid}$"))
    assert "Conectada" in await page.locator(".situacao").inner_text()
    await shot(page, "inbox-inspection")
    await context.close()


async def test_forms_refuse_a_missing_csrf_token_and_a_login_without_dev_mode_persona(stack):
    async with stack.http() as http:
        r = await http.get("/ui/entrar")
        assert r.status_code == 200
        r = await http.post("/ui/entrar", data={"persona": "ana.analista"})
        assert r.status_code == 403 and "CSRF" in r.text
        r = await http.get("/ui/caixa", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ui/entrar"
