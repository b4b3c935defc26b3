"""The lapsed-NS path of the portal (issue 22, items 3 and 4): the RT files a solicitação,
lets the 24-hour APR window lapse, and follows the guided Reanálise: the APR-first rule
(step 1: register the lapsed NS in the APR Web, enforced), the lapsed NS pre-filled, then
steps 2 to 5. Debian's Chromium at 360 px against ``gd api`` on the time-skipping test
server (tests/api_stack.py ``time_skipping=True``): the dev server cannot skip 24 hours,
the test server jumps its clock when the test calls ``stack.env.sleep``."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest_asyncio

from tests.test_portal import (
    PASSWORD,
    fits,
    pdf_file,
    until_status,
)
from tests.pdf_fixture import make_pdf
from tests.web_stack import chromium, portal_stack, shot  # noqa: F401 (chromium: a fixture)

CPF = "52998224725"  # holder of 3001234567 in the demo customer base
RT_KEY = "CREA-MG-654321"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory):
    async with portal_stack(tmp_path_factory.mktemp("portal-lapse"), time_skipping=True) as running:
        yield running


def approved_rt_with_password(stack) -> None:
    """The RT's registration and password are the other test's subject: here they are
    written straight into the store (an approved RT, its portal account)."""
    from activities.records import RecordActivities
    from api import portal_accounts as accounts
    from tests.store_fixtures import set_technician

    set_technician(RecordActivities(stack.deps.store, stack.deps.blobs, installations_check=True), RT_KEY, "APPROVED")
    accounts.set_password(stack.deps.store, "technician", RT_KEY, PASSWORD)


async def test_lapsed_ns_reanalysis_apr_first_with_the_ns_prefilled(stack, chromium):
    approved_rt_with_password(stack)
    base = stack.base_url
    context = await chromium.new_context(viewport={"width": 360, "height": 740}, locale="pt-BR")
    page = await context.new_page()
    await page.goto(f"{base}/portal/entrar")
    await page.get_by_label(re.compile(r"^Login( \*)?$")).fill(RT_KEY)
    await page.get_by_label(re.compile(r"^Senha( \*)?$")).fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click()
    await page.wait_for_url(re.compile(r"/portal/servicos$"))

    # a solicitação; the RT does not register it in the APR Web
    await page.goto(f"{base}/portal/servicos/solicitacao?cpf={CPF}")
    form = page.locator("form[data-validar]")
    # the installation picked from the customer's own (the demo customer base)
    picker = form.get_by_label("Número da instalação")
    assert await picker.evaluate("e => e.tagName") == "SELECT"
    assert await picker.input_value() == "3001234567"
    await form.get_by_label("Nome do cliente (titular)").fill("Maria das Graças Portal")
    await form.get_by_label("E-mail do cliente").fill("maria.lapso@example.com.br")
    await form.get_by_label("Potência instalada (kW)").fill("6")
    # uploads: over 3 MB (said at once in the page, refused by the server) and a text
    # file named .pdf (refused by its content); nothing is filed
    upload = form.get_by_label("Documento de identificação do cliente")
    big = make_pdf("identidade grande") + b"0" * (3 * 1024 * 1024)
    await upload.set_input_files(files=[{"name": "grande.pdf", "mimeType": "application/pdf", "buffer": big}])
    assert "grande.pdf: arquivo maior que 3 MB" in await page.locator("#commercial_id-erro").inner_text()
    await form.get_by_role("button", name="Enviar a solicitação e receber NS e Protocolo").click()
    await page.wait_for_load_state()
    assert "excede o limite de 3 MB" in await page.locator("#commercial_id-erro").inner_text()
    assert page.url.endswith("/portal/servicos/solicitacao")
    form = page.locator("form[data-validar]")
    assert await form.get_by_label("Nome do cliente (titular)").input_value() == "Maria das Graças Portal"
    await form.get_by_label("Documento de identificação do cliente").set_input_files(files=[
        {"name": "identidade.pdf", "mimeType": "application/pdf", "buffer": b"isto nao e um PDF, e texto"}])
    await form.get_by_role("button", name="Enviar a solicitação e receber NS e Protocolo").click()
    await page.wait_for_load_state()
    assert "conteúdo não é" in await page.locator("#commercial_id-erro").inner_text()
    await fits(page)
    import sqlalchemy as sa

    from activities.tables import RequestRecord

    with stack.deps.store.connection(write=False) as conn:  # no request started, not even a refused one
        assert conn.execute(sa.select(sa.func.count()).select_from(RequestRecord.__table__)).scalar() == 0
    form = page.locator("form[data-validar]")
    await form.get_by_label("Documento de identificação do cliente").set_input_files(
        files=[pdf_file("identidade (lapso)", "identidade.pdf")])
    await form.get_by_role("button", name="Enviar a solicitação e receber NS e Protocolo").click()
    await page.wait_for_load_state()
    assert re.search(r"/portal/pedidos/p[0-9a-f]+$", page.url), await page.locator("main").inner_text()
    rid = page.url.rsplit("/", 1)[1]
    ns = (await page.locator("#ns").inner_text()).strip()
    protocol = (await page.locator("#protocolo").inner_text()).strip()
    assert re.match(r"restam 2[34] h", await page.locator("#contagem-apr").inner_text())
    await until_status(stack, rid, "AWAITING_APR")

    # 24 hours pass on the server's clock: the NS lapses
    await stack.env.sleep(timedelta(hours=24, minutes=5))
    await until_status(stack, rid, "LAPSED")
    await page.reload()
    assert "Reprovada por decurso de prazo" in await page.locator(".situacao").inner_text()
    assert await page.locator("#contagem-apr").count() == 0  # the APR step of the first 24 h is gone
    assert "NS reprovada por decurso de prazo (24 h sem cadastro no APR Web)" in await page.locator(".decisoes").inner_text()
    await page.get_by_role("link", name="Reanálise em cinco passos").click()

    # APR first: steps 2-5 locked, and the workflow refuses a reanalysis sent anyway
    assert "cadastre a NS reprovada" in await page.locator(".regra").inner_text()
    assert await page.locator("#passo-2").get_by_role("button", name="Enviar").is_disabled()
    step1 = page.locator("form[action$='/acoes/register_apr']")
    assert await step1.get_by_label(re.compile(r"^NS reprovada( \*)?$")).input_value() == ns
    assert await step1.get_by_label(re.compile(r"^Protocolo( \*)?$")).input_value() == protocol
    await fits(page)
    await shot(page, "portal-lapsed-reanalysis-360")
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    forced = await page.request.post(f"{base}/portal/pedidos/{rid}/acoes/request_reanalysis", multipart={
        "csrf": csrf, "pagina": "reanalise", "motive": "Reanálise (Nova Solicitação)",
        "reproved_service_note": ns, "confirma": "1"})
    assert forced.status in (409, 422), forced.status
    assert "APR" in await forced.text()
    async with stack.http() as http:
        r = await http.get(f"/api/v1/requests/{rid}", headers=stack.who.analyst())
        assert r.json()["status"] == "LAPSED"

    # step 1: the lapsed NS registered in the APR Web, back on the five steps
    for label in ("Projeto elétrico", "ART (CREA) ou RRT (CAU)", "Diagrama unifilar", "Memorial descritivo"):
        await step1.get_by_label(re.compile(rf"^{re.escape(label)}( \*)?$")).set_input_files(
            files=[pdf_file(f"{label} {rid} lapso", "doc.pdf")])
    await step1.get_by_role("button", name="Cadastrar a NS reprovada no APR Web").click()
    await page.wait_for_url(re.compile(rf"/portal/pedidos/{rid}/reanalise$"))
    assert "Feito" in await page.locator("#passo-1").inner_text()

    # steps 2-5: the lapsed NS pre-filled, confirmation, send
    step2 = page.locator("form[action$='/acoes/request_reanalysis']")
    assert await step2.get_by_label("Passo 3 · NS reprovada").input_value() == ns
    await page.locator("#confirma").check()
    await step2.get_by_role("button", name="Enviar").click()
    await page.wait_for_url(re.compile(rf"/portal/pedidos/{rid}$"))
    assert "Em análise" in await page.locator(".situacao").inner_text()
    new_ns = (await page.locator("#ns").inner_text()).strip()
    assert re.fullmatch(r"\d{10}", new_ns) and new_ns != ns
    assert (await page.locator("#protocolo").inner_text()).strip() == protocol  # a reanalysis keeps its Protocolo
    await fits(page)
    await page.set_viewport_size({"width": 1280, "height": 800})
    await fits(page)
    await shot(page, "portal-lapsed-reanalysis-done-1280")
    await context.close()
