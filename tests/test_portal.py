"""The RT/customer portal (issue 22) used as a person would: Debian's Chromium driven by
Playwright at 360 px against a running ``gd api`` on the real stack (dev server, worker,
SQLite store, SMTP sink). The RT registers, gets the three e-mails after an analyst's
approval, registers the password from the third e-mail's own link, files a request,
does the APR step within the 24 hours, corrects a suspension through the five steps of
the reanalysis; the customer gets a first-access link, sees Meus pedidos, requests the
vistoria and registers a UC recebedora. The analyst's decisions go through the HTTP API.
"""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest
import pytest_asyncio

from domain import reasons as catalogue
from tests.pdf_fixture import make_pdf
from tests.store_fixtures import (  # noqa: F401
    access_raw,
    blobs,
    database,
    make_cpf,
    records,
    set_technician,
    store,
    upload_pdf,
)

from tests.web_stack import axe_serious, chromium, portal_stack, shot  # noqa: F401 (chromium: a fixture)

CPF = "52998224725"
RT_CPF = "11144477735"
CUSTOMER_EMAIL = "maria.portal@example.com.br"
PASSWORD = "Sol-e-rede-2026"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory):
    """The API stack in dev auth mode, its SMTP settings pointed at the sink, and the
    worker's APR link (GD_APR_URL) pointed at this portal, on a port chosen up front."""
    async with portal_stack(tmp_path_factory.mktemp("portal"), link_here=True) as running:
        yield running


async def fits(page) -> None:
    """Usable at the viewport's width: nothing wider than the screen, no serious axe issue."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    assert width <= viewport, f"{page.url}: {width} px de largura numa tela de {viewport} px"
    found = await axe_serious(page)
    assert found == [], found


async def mail_to(stack, address: str, contains: str, since: int = 0, timeout: float = 20.0):
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        for m in stack.smtp.messages[since:]:
            if address in str(m["To"]):
                body = m.get_body(preferencelist=("plain",))
                text = body.get_content() if body is not None else ""
                if contains in text:
                    return text
        assert loop.time() < give_up, [(m["To"], m["Subject"]) for m in stack.smtp.messages[since:]]
        await asyncio.sleep(0.3)


async def until_status(stack, rid: str, wanted: str, timeout: float = 20.0) -> dict:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    async with stack.http() as http:
        while True:
            r = await http.get(f"/api/v1/requests/{rid}", headers=stack.who.analyst())
            if r.status_code == 200 and r.json()["status"] == wanted and r.json()["pending_effects"] == 0:
                return r.json()
            assert loop.time() < give_up, r.text[:300]
            await asyncio.sleep(0.2)


async def until_text(page, selector: str, wanted: str, timeout: float = 10.0) -> None:
    """The live check's answer arrives after the typing pauses: poll what the person sees."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while wanted not in (shown := await page.locator(selector).inner_text()):
        assert loop.time() < give_up, f"{selector}: {shown!r}"
        await asyncio.sleep(0.2)


def pdf_file(label: str, name: str) -> dict:
    return {"name": name, "mimeType": "application/pdf", "buffer": make_pdf(label)}


async def test_rt_and_customer_from_registration_to_vistoria_on_a_phone(stack, chromium):
    registration = str(100000 + uuid.uuid4().int % 800000)
    rt_key = f"CREA-MG-{registration}"
    rt_email = f"rt.{registration}@engenharia.example.com"
    context = await chromium.new_context(viewport={"width": 360, "height": 740}, locale="pt-BR")
    page = await context.new_page()
    base = stack.base_url

    # 1. RT registration: a wrong CPF is refused beside its field, input kept
    await page.goto(f"{base}/portal/")
    await fits(page)
    await shot(page, "portal-home-360")
    await page.get_by_role("link", name="Cadastrar-me como RT").click()
    await page.get_by_label("Nome completo").fill("João Engenheiro Portal")
    await page.get_by_label("CPF").fill("111.444.777-00")
    await page.get_by_label("E-mail").fill(rt_email)
    await page.get_by_label("Telefone").fill("(31) 98888-7777")
    await page.get_by_label("Conselho").select_option("CREA")
    await page.get_by_label("UF do registro").select_option("MG")
    await page.get_by_label("Número do registro").fill(registration)
    await page.get_by_role("button", name="Enviar o cadastro").click()
    await page.wait_for_load_state()
    assert await page.locator("#cpf-erro").is_visible()
    assert await page.get_by_label("Número do registro").input_value() == registration
    await fits(page)
    await page.get_by_label("CPF").fill(RT_CPF)
    await page.get_by_role("button", name="Enviar o cadastro").click()
    await page.get_by_role("heading", name="Cadastro recebido").wait_for()
    receipt = await page.locator("main").inner_text()
    assert rt_key in receipt and "vence em 3 dias úteis" in receipt and "part_apr@cemig.com.br" in receipt
    await fits(page)
    await shot(page, "portal-rt-receipt-360")

    # 2. an analyst approves (the workflow); the RT receives the three e-mails
    since = len(stack.smtp.messages)
    async with stack.http() as http:
        r = await http.post(f"/api/v1/technicians/{rt_key}/actions/approve", json={}, headers=stack.who.analyst())
        assert r.status_code == 200, r.text
    third = await mail_to(stack, rt_email, "DefinirSenha.aspx?token=", since)
    link = re.search(r"(http://\S+DefinirSenha\.aspx\?token=\S+)", third).group(1)
    # the guide's three e-mails, one from each sender (AGV login, APR approval, APR password)
    wanted, give_up = {"agv@cemig.com.br", "part_apr@cemig.com.br", "Partweb@cemig.com.br"}, 20
    while (senders := {str(m["From"]) for m in stack.smtp.messages[since:] if rt_email in str(m["To"])}) != wanted:
        assert give_up > 0 and senders < wanted, senders
        give_up -= 1
        await asyncio.sleep(0.5)
    assert link.startswith(base + "/portal/")

    # 3. the set-password page from the e-mail's link: a weak password first
    await page.goto(link)
    await page.get_by_label(re.compile(r"^Login( \*)?$")).fill(rt_key)
    await page.get_by_label("Nova senha").fill("curta")
    await page.get_by_label("Repita a senha").fill("curta")
    await page.get_by_role("button", name="Registrar a senha").click()
    await page.wait_for_load_state()
    assert "ao menos 10 caracteres" in await page.locator("#senha-erro").inner_text()
    await page.get_by_label("Nova senha").fill(PASSWORD)
    await page.get_by_label("Repita a senha").fill(PASSWORD)
    await page.get_by_role("button", name="Registrar a senha").click()
    await page.wait_for_url(re.compile(r"/portal/entrar$"))
    assert "Senha registrada" in await page.locator("main").inner_text()
    # the link is single use
    async with httpx.AsyncClient(base_url=base) as http:
        form_page = await http.get(link.replace(base, ""))
        csrf = re.search(r'name="csrf" value="([^"]+)"', form_page.text).group(1)
        token = link.split("token=")[1]
        again = await http.post("/portal/definir-senha", data={
            "csrf": csrf, "perfil": "technician", "login": rt_key, "token": token,
            "senha": PASSWORD + "x", "confirmacao": PASSWORD + "x"})
        assert again.status_code == 422 and "já utilizado" in again.text
        # "Esqueci a senha": a new single-use link to the RT's registered e-mail
        before = len(stack.smtp.messages)
        page_html = (await http.get("/portal/esqueci-senha")).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page_html).group(1)
        sent = await http.post("/portal/esqueci-senha", data={"csrf": csrf, "perfil": "technician", "login": rt_key})
        assert sent.status_code == 200 and 'id="enviado"' in sent.text
        forgot = await mail_to(stack, rt_email, "/portal/definir-senha?token=", before)
        token = re.search(r"/portal/definir-senha\?token=(\S+)", forgot).group(1)
        reset = await http.post("/portal/definir-senha", data={
            "csrf": csrf, "perfil": "technician", "login": rt_key, "token": token,
            "senha": PASSWORD, "confirmacao": PASSWORD}, follow_redirects=False)
        assert reset.status_code == 303 and reset.headers["location"] == "/portal/entrar"

    # 4. login (council key + password)
    await page.get_by_label(re.compile(r"^Login( \*)?$")).fill(rt_key)
    await page.get_by_label(re.compile(r"^Senha( \*)?$")).fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click()
    await page.wait_for_url(re.compile(r"/portal/servicos$"))
    await fits(page)
    await shot(page, "portal-services-360")
    cookie = next(c for c in await context.cookies() if c["name"] == "gd_portal")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/portal"

    # 5. Solicitação, checked as you type by the same validators
    await page.get_by_role("link", name="Nova solicitação").click()
    form = page.locator("form[data-validar]")
    await form.get_by_label("CPF ou CNPJ do cliente").fill("529.982.247-00")
    await until_text(page, "#customer-document-erro", "CPF")
    await form.get_by_label("CPF ou CNPJ do cliente").fill(CPF)
    await page.locator("#customer-document-erro").wait_for(state="hidden")
    await form.get_by_label("Nome do cliente (titular)").fill("Maria das Graças Portal")
    await form.get_by_label("E-mail do cliente").fill(CUSTOMER_EMAIL)
    await form.get_by_label("Número da instalação").fill("3001234567")
    await form.get_by_label("Potência instalada (kW)").fill("9000")
    await until_text(page, "#generation-installed_power_kw-erro", "não é GD")
    await form.get_by_label("Potência instalada (kW)").fill("8,5")
    await page.locator("#generation-installed_power_kw-erro").wait_for(state="hidden")
    await fits(page)
    await shot(page, "portal-request-form-360")
    await form.get_by_label("Documento de identificação do cliente").set_input_files(
        files=[pdf_file("identidade do cliente", "identidade.pdf")])
    await form.get_by_role("button", name="Enviar a solicitação e receber NS e Protocolo").click()
    await page.wait_for_load_state()
    assert re.search(r"/portal/pedidos/p[0-9a-f]+$", page.url), await page.locator("main").inner_text()
    rid = page.url.rsplit("/", 1)[1]
    ns = (await page.locator("#ns").inner_text()).strip()
    protocol = (await page.locator("#protocolo").inner_text()).strip()
    assert re.fullmatch(r"\d+", ns) and protocol != "—"
    countdown = await page.locator("#contagem-apr").inner_text()
    assert re.match(r"restam 2[34] h \d\d min", countdown), countdown
    await fits(page)
    await shot(page, "portal-apr-step-360")

    # 6. the APR step on the same page, within the 24 hours
    apr = page.locator("form[action$='/acoes/register_apr']")
    assert await apr.get_by_label("NS (nota de serviço)").input_value() == ns
    for label in ("Projeto elétrico", "ART (CREA) ou RRT (CAU)", "Diagrama unifilar", "Memorial descritivo"):
        await apr.get_by_label(re.compile(rf"^{re.escape(label)}( \*)?$")).set_input_files(files=[pdf_file(f"{label} {rid}", "doc.pdf")])
    await apr.get_by_role("button", name="Cadastrar no APR Web").click()
    await page.wait_for_url(re.compile(rf"/portal/pedidos/{rid}$"))
    assert "Em análise" in await page.locator(".situacao").inner_text()

    # 7. the analyst suspends (catalogue reason and a note)
    await until_status(stack, rid, "UNDER_ANALYSIS")
    code = catalogue.codes_for("suspend")[0]
    async with stack.http() as http:
        r = await http.post(f"/api/v1/requests/{rid}/actions/suspend", headers=stack.who.analyst(),
                            json={"pendencies": [{"code": code, "text": "Falta a ART do inversor novo."}]})
        assert r.status_code == 200, r.text
    await until_status(stack, rid, "SUSPENDED")

    # 8. Reanálise: steps 2-5 locked until step 1 (APR first); then the five steps
    await page.goto(f"{base}/portal/pedidos/{rid}")
    body = await page.locator("main").inner_text()
    assert catalogue.catalogue()[code].text in body and "Falta a ART do inversor novo." in body
    await page.get_by_role("link", name="Reanálise em cinco passos").click()
    assert await page.locator("#passo-2").get_by_role("button", name="Enviar").is_disabled()
    assert "Primeiro o APR Web" in await page.locator(".regra").inner_text()
    await fits(page)
    await shot(page, "portal-reanalysis-locked-360")
    step1 = page.locator("form[action$='/acoes/attach_corrections']")
    await step1.get_by_label("Documentos corrigidos").set_input_files(files=[pdf_file(f"ART corrigida {rid}", "art.pdf")])
    await step1.get_by_role("button", name="Anexar os documentos corrigidos").click()
    await page.wait_for_load_state()
    assert page.url.endswith(f"/portal/pedidos/{rid}/reanalise"), await page.locator("main").inner_text()
    assert "Feito" in await page.locator("#passo-1").inner_text()
    step2 = page.locator("form[action$='/acoes/request_reanalysis']")
    assert await step2.get_by_label("Passo 3 · NS reprovada").input_value() == ns
    await step2.get_by_role("button", name="Enviar").click()  # without the confirmation
    await page.wait_for_load_state()
    assert "Confirme os dados" in await page.locator("#confirma-erro").inner_text()
    await page.locator("#confirma").check()
    await page.locator("form[action$='/acoes/request_reanalysis']").get_by_role("button", name="Enviar").click()
    await page.wait_for_url(re.compile(rf"/portal/pedidos/{rid}$"))
    assert "Em análise" in await page.locator(".situacao").inner_text()
    new_ns = (await page.locator("#ns").inner_text()).strip()
    assert new_ns != ns
    await shot(page, "portal-request-360")

    # 9. the analyst approves with the parecer
    await until_status(stack, rid, "UNDER_ANALYSIS")
    async with stack.http() as http:
        content = make_pdf(f"Parecer {rid}")
        up = await http.post("/api/v1/documents", headers=stack.who.analyst(), data={"kind": "parecer", "request_id": rid},
                             files={"file": ("parecer.pdf", content, "application/pdf")})
        assert up.status_code == 201, up.text
        r = await http.post(f"/api/v1/requests/{rid}/actions/approve", headers=stack.who.analyst(),
                            json={"parecer": up.json()})
        assert r.status_code == 200, r.text
    await until_status(stack, rid, "APPROVED")
    await page.get_by_role("button", name="Sair").click()
    await context.close()

    # 10. the customer: first access by the e-mail of the request, then Meus pedidos
    context = await chromium.new_context(viewport={"width": 360, "height": 740}, locale="pt-BR")
    page = await context.new_page()
    since = len(stack.smtp.messages)
    await page.goto(f"{base}/portal/primeiro-acesso")
    await page.get_by_label("Login (registro no conselho, CPF ou CNPJ)").fill(CPF)
    await page.get_by_label("E-mail (cliente)").fill(CUSTOMER_EMAIL)
    await page.get_by_role("button", name="Enviar o link por e-mail").click()
    await page.locator("#enviado").wait_for()
    await fits(page)
    mail = await mail_to(stack, CUSTOMER_EMAIL, "/portal/definir-senha?token=", since)
    link = re.search(r"(http://\S+/portal/definir-senha\?token=\S+)", mail).group(1)
    await page.goto(link)
    await page.get_by_label("Cliente", exact=True).check()
    await page.get_by_label(re.compile(r"^Login( \*)?$")).fill(CPF)
    await page.get_by_label("Nova senha").fill(PASSWORD)
    await page.get_by_label("Repita a senha").fill(PASSWORD)
    await page.get_by_role("button", name="Registrar a senha").click()
    await page.wait_for_url(re.compile(r"/portal/entrar$"))
    await page.get_by_label("Cliente (login: CPF ou CNPJ)").check()
    await page.get_by_label(re.compile(r"^Login( \*)?$")).fill("529.982.247-25")
    await page.get_by_label(re.compile(r"^Senha( \*)?$")).fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click()
    await page.wait_for_url(re.compile(r"/portal/servicos$"))
    await page.get_by_role("link", name="Meus pedidos").first.click()
    item = page.locator(".lista-pedidos li", has_text=new_ns)
    assert "Parecer de acesso emitido" in await item.inner_text()
    assert "o cliente" in await item.inner_text()
    await fits(page)
    await shot(page, "portal-my-requests-360")
    await item.get_by_role("link").click()
    emails = await page.locator(".emails").inner_text()
    assert "m***@example.com.br" in emails and CUSTOMER_EMAIL not in emails
    await page.get_by_role("button", name="Solicitar a vistoria").click()
    await page.wait_for_url(re.compile(rf"/portal/pedidos/{rid}$"))
    assert "Vistoria solicitada" in await page.locator(".situacao").inner_text()
    assert "a distribuidora (vistoria)" in await page.locator("#quem-age").inner_text()

    # 11. the inspector connects the plant; then Cadastro de UC recebedora (sum of 100 %)
    await until_status(stack, rid, "INSPECTION_REQUESTED")
    async with stack.http() as http:
        r = await http.post(f"/api/v1/requests/{rid}/actions/record_inspection", headers=stack.who.inspector(),
                            json={"result": "approved", "findings": ["Padrão de entrada conforme"]})
        assert r.status_code == 200, r.text
    await until_status(stack, rid, "CONNECTED")
    await page.reload()
    assert "Conectada" in await page.locator(".situacao").inner_text()
    await page.get_by_role("link", name="Cadastro de UC recebedora").click()
    await page.get_by_label("Modalidade").select_option("remote")
    uc = page.locator("fieldset.uc").first
    await uc.get_by_label("Número da instalação").fill("3007654321")
    await uc.get_by_label("CPF/CNPJ do titular").fill(CPF)
    await uc.get_by_label("Percentual (%)").fill("90")
    await page.get_by_role("button", name="Cadastrar as UCs recebedoras").click()
    await page.wait_for_load_state()
    assert "somam 90" in await page.locator("#resumo-erros").inner_text()
    uc = page.locator("fieldset.uc").first
    await uc.get_by_label("Percentual (%)").fill("100")
    await page.get_by_role("button", name="Cadastrar as UCs recebedoras").click()
    await page.wait_for_load_state()
    assert await page.locator("#ucs-atuais").count() == 1, await page.locator("main").inner_text()
    assert "Em análise" in await page.locator("#ucs-atuais").inner_text()
    await fits(page)
    await shot(page, "portal-ucs-360")

    # wide screen too
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.goto(f"{base}/portal/pedidos/{rid}")
    await fits(page)
    await shot(page, "portal-request-1280")
    await context.close()

    # another customer sees nothing of it
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.get(f"/portal/pedidos/{rid}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/portal/entrar"


async def test_customer_files_a_consulta_from_the_tab_and_reads_the_answer(stack, chromium):
    """Consulta de acesso (the guide's first service): filed by the customer from the tab,
    answered by the analyst, read in Meus pedidos; also the end-to-end proof that a request
    recorded by the workflow carries the customer's digest (the list is a lookup by it)."""
    from activities.store import Store
    from api import portal_accounts as accounts

    cpf, email = "39053344705", "jose.consulta@example.com.br"
    store = Store(stack.settings.database_url)
    try:
        accounts.set_password(store, "customer", cpf, PASSWORD)
    finally:
        store.dispose()
    base = stack.base_url
    context = await chromium.new_context(viewport={"width": 360, "height": 740}, locale="pt-BR")
    page = await context.new_page()
    await page.goto(f"{base}/portal/entrar")
    await page.get_by_label("Cliente (login: CPF ou CNPJ)").check()
    await page.get_by_label(re.compile(r"^Login( \*)?$")).fill("390.533.447-05")
    await page.get_by_label(re.compile(r"^Senha( \*)?$")).fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click()
    await page.wait_for_url(re.compile(r"/portal/servicos$"))
    await page.get_by_role("link", name="Fazer uma consulta").click()
    assert "***.533.447-**" in await page.locator("form[data-validar]").inner_text()  # the customer's own, masked
    form = page.locator("form[data-validar]")
    await form.get_by_label("Nome do cliente (titular)").fill("José da Consulta")
    await form.get_by_label("E-mail do cliente").fill(email)
    await form.get_by_label("Potência instalada (kW)").fill("12,5")
    await fits(page)
    await shot(page, "portal-inquiry-form-360")
    await form.get_by_role("button", name="Enviar a consulta").click()
    await page.wait_for_load_state()
    assert re.search(r"/portal/pedidos/p[0-9a-f]+$", page.url), await page.locator("main").inner_text()
    rid = page.url.rsplit("/", 1)[1]
    assert "Consulta registrada" in await page.locator("main").inner_text()
    assert "Consulta aguardando resposta" in await page.locator(".situacao").inner_text()

    await page.get_by_role("link", name="Meus pedidos").first.click()
    item = page.locator(".lista-pedidos li", has=page.locator(f"a[href='/portal/pedidos/{rid}']"))
    listed = await item.inner_text()
    assert "Consulta de acesso" in listed and "Consulta aguardando resposta" in listed
    assert "a distribuidora (análise)" in listed

    await until_status(stack, rid, "AWAITING_ANSWER")
    answer = "Há margem no alimentador para 12,5 kW em 0,22 kV; a solicitação pode seguir sem obras."
    async with stack.http() as http:
        r = await http.post(f"/api/v1/requests/{rid}/actions/answer_inquiry", headers=stack.who.analyst(),
                            json={"answer": answer})
        assert r.status_code == 200, r.text
    await until_status(stack, rid, "ANSWERED")
    await mail_to(stack, email, "", 0)
    await page.reload()
    listed = await item.inner_text()
    assert "Consulta respondida" in listed and "ninguém (encerrado)" in listed
    await fits(page)
    await item.get_by_role("link").click()
    await page.wait_for_url(re.compile(rf"/portal/pedidos/{rid}$"))
    decisions = await page.locator(".decisoes").inner_text()
    assert "Consulta respondida" in decisions and answer in decisions
    await fits(page)
    await shot(page, "portal-inquiry-answered-360")
    await page.set_viewport_size({"width": 1280, "height": 800})
    await fits(page)
    await shot(page, "portal-inquiry-answered-1280")
    await context.close()


async def test_a_customer_sees_their_oldest_request_by_the_digest_and_no_one_elses(records, store, blobs):
    """Meus pedidos of a customer is an index lookup on request_record.customer_digest (the
    keyed hash of the CPF, filled at intake), not a scan of the newest requests: a request
    older than 600 others is still listed, another customer's never is."""
    import hashlib
    import hmac
    from datetime import datetime, timedelta, timezone
    from types import SimpleNamespace

    import sqlalchemy as sa

    from activities.tables import RequestRecord
    from api import portal_data as data
    from models.activities import IntakeCheck, RequestRow, Transition

    holder, other = make_cpf(123456789), make_cpf(222333444)
    ref = upload_pdf(store, blobs)
    set_technician(records, "CREA-MG-12345", "APPROVED")
    # the intake of the holder's request gives the keyed hash (HMAC-SHA256, dev key), never the CPF
    result = records.validate_intake(IntakeCheck(process="access", workflow_id="gd-request-req-old",
                                                 raw=access_raw([ref], request_id="req-old", cpf=holder)))
    assert result.problems == []
    expected = hmac.new(b"gd-orchestrator dev document key (set GD_DOCUMENT_KEY)", holder.encode(),
                        hashlib.sha256).hexdigest()
    assert result.customer_digest == expected
    old = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
    records.record_transition(Transition(
        workflow_id="gd-request-req-old", event_key="0001-received", process="access", action="received",
        status="AWAITING_APR", at=old, request=RequestRow(
            workflow_id="gd-request-req-old", request_id="req-old", kind="request", status="AWAITING_APR",
            installation_number="3001234567", customer_digest=result.customer_digest, created_at=old, updated_at=old)))
    # 600 newer requests of another customer, straight into the store
    theirs = hmac.new(b"gd-orchestrator dev document key (set GD_DOCUMENT_KEY)", other.encode(),
                      hashlib.sha256).hexdigest()
    table = RequestRecord.__table__
    with store.connection() as conn:
        conn.execute(table.insert(), [
            {"workflow_id": f"gd-request-n{i}", "request_id": f"n{i}", "kind": "request", "status": "UNDER_ANALYSIS",
             "customer_digest": theirs, "sla_breaches": 0, "cycle": 0, "clock_paused": False,
             "created_at": old + timedelta(hours=1 + i), "updated_at": old + timedelta(hours=1 + i)}
            for i in range(600)])
        stored = conn.execute(sa.select(table).where(table.c.workflow_id == "gd-request-req-old")).one()
    assert holder not in [str(v) for v in stored]  # no clear CPF in the row
    portal = SimpleNamespace(gd=SimpleNamespace(store=store))
    mine = await data.requests_of(portal, "customer", document=holder)
    assert [r.request_id for r in mine] == ["req-old"]
    seen = await data.requests_of(portal, "customer", document=other)
    assert "req-old" not in [r.request_id for r in seen] and seen[0].request_id == "n599"
    assert await data.requests_of(portal, "customer", document=make_cpf(333444555)) == []


async def test_login_lockout_honeypot_and_csrf(stack):
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        page = await http.get("/portal/entrar")
        # no GD_PORTAL_OIDC_CLIENT_ID (and dev auth): no identity-provider login offered
        assert "Entrar com a conta da distribuidora" not in page.text
        r = await http.get("/portal/entrar/oidc", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/portal/entrar"
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        # no CSRF token: refused, nothing done
        r = await http.post("/portal/entrar", data={"perfil": "technician", "login": "CREA-MG-999999", "senha": "x"})
        assert r.status_code == 403 and "CSRF" in r.text
        # a login without an account: the same answer as a wrong password
        r = await http.post("/portal/entrar", data={"csrf": csrf, "perfil": "technician", "login": "CREA-MG-999999",
                                                    "senha": "qualquer-coisa-1"})
        assert r.status_code == 401 and "Login ou senha incorretos" in r.text
        # the honeypot: a filled hidden field starts nothing
        page = await http.get("/portal/cadastro-rt")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = await http.post("/portal/cadastro-rt", data={
            "csrf": csrf, "name": "Robô", "cpf": RT_CPF, "email": "robo@example.com", "phone": "31 98888-7777",
            "council": "CREA", "uf": "MG", "registration": "777001", "site": "http://spam.example"})
        assert r.status_code == 422
    async with stack.http() as http:
        r = await http.get("/api/v1/technicians/CREA-MG-777001", headers=stack.who.analyst())
        assert r.status_code == 404
    # lockout: an account locks after 5 wrong passwords, even the right one is then refused
    from activities.store import Store
    from api import portal_accounts as accounts

    store = Store(stack.settings.database_url)
    try:
        accounts.set_password(store, "customer", OTHER := "11144477735", PASSWORD)
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            page = await http.get("/portal/entrar")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            codes = []
            for _ in range(5):
                r = await http.post("/portal/entrar", data={"csrf": csrf, "perfil": "customer", "login": OTHER,
                                                            "senha": "errada-123456"})
                codes.append(r.status_code)
            assert codes == [401, 401, 401, 401, 423], codes
            r = await http.post("/portal/entrar", data={"csrf": csrf, "perfil": "customer", "login": OTHER,
                                                        "senha": PASSWORD})
            assert r.status_code == 423 and "bloqueada" in r.text
    finally:
        store.dispose()
    # no CPF in the API's log
    assert CPF not in stack.api_log.read_text() and "11144477735" not in stack.api_log.read_text()


async def test_rate_limits_on_login_and_registration_by_address(stack):
    """Last in the module: it spends this address' allowance (20 logins a minute, 5
    registrations in 10 minutes); the 429 page says to wait, and nothing is started."""
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        page = await http.get("/portal/entrar")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        codes = []
        for i in range(25):  # a different login each time: the per-login limit is another one
            r = await http.post("/portal/entrar", data={"csrf": csrf, "perfil": "technician",
                                                        "login": f"CREA-MG-99{i:04d}", "senha": "qualquer-coisa-1"})
            codes.append(r.status_code)
            if r.status_code == 429:
                break
        assert codes[-1] == 429 and set(codes[:-1]) == {401}, codes
        assert "Muitas tentativas deste endereço" in r.text
        page = await http.get("/portal/cadastro-rt")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        codes = []
        for i in range(7):
            r = await http.post("/portal/cadastro-rt", data={
                "csrf": csrf, "name": "Teste Limite", "cpf": "111.444.777-00", "email": "limite@example.com",
                "phone": "31 98888-7777", "council": "CREA", "uf": "MG", "registration": f"77710{i}"})
            codes.append(r.status_code)
            if r.status_code == 429:
                break
        assert codes[-1] == 429 and set(codes[:-1]) == {422}, codes
        assert "Muitos cadastros enviados deste endereço" in r.text
