"""The inbox's other pages (issue 18) used as a person would, in Debian's Chromium driven by
Playwright against a running ``gd api`` (dev mode) on the real stack: the RT registration
review, the UC recebedora review, the SLA dashboard, the auditor's page, and "prazo
suspenso" in the queue. Registrations and requests are filed through the HTTP API as the
RT and the customer would; what the analyst, the supervisor and the auditor do goes
through the pages.

Expected values come from the rules: an RT's registration is due in 3 business days
(DOMAIN.md), the dates shown are the workflow's own (its status through the API) in
dd/mm/aaaa São Paulo time, the reasons' words are the catalogue's.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime

import pytest_asyncio

from domain import reasons as catalogue
from domain.calendar import TZ
from tests.test_api import CPF, Who, act, approved_rt, doc, settled
from tests.test_web import login, no_serious_axe, queue_rows, shot, under_analysis, until_row_reads
from tests.web_stack import DevTokens, chromium, web_stack  # noqa: F401 (chromium: a fixture)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webpages")
    key = tmp / "dev-key.pem"
    async with web_stack(tmp, {"GD_AUTH_MODE": "dev", "GD_AUTH_DEV_KEY": str(key)}) as running:
        running.who = Who(DevTokens(key))
        async with running.http() as http:
            await approved_rt(http, running.who)  # the RT of every request (ana.analista approves it)
        yield running


async def new_page(chromium, width: int = 1280, height: int = 800):
    context = await chromium.new_context(viewport={"width": width, "height": height}, locale="pt-BR",
                                         timezone_id="America/Sao_Paulo")
    return context, await context.new_page()


def local(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(TZ)


async def new_rt(http, who: Who) -> tuple[str, dict]:
    registration = str(700000 + uuid.uuid4().int % 99999)
    key = f"CREA-MG-{registration}"
    body = {"name": "Paula Engenheira Lima", "cpf": "529.982.247-25", "email": f"rt.{registration}@engenharia.example.com",
            "phone": "31 97777-1234", "council": "CREA", "uf": "MG", "registration": registration}
    r = await http.post("/api/v1/technicians", json=body, headers=who.rt(key))
    assert r.status_code == 201, r.text
    return key, r.json()


async def test_analyst_reviews_rt_registrations(stack, chromium):
    who = stack.who
    async with stack.http() as http:
        approve_key, pending = await new_rt(http, who)
        reject_key, _ = await new_rt(http, who)
    context, page = await new_page(chromium)
    await login(page, stack.base_url, "Ana (analista)")

    # the menu leads to the RT queue; both wait there with the workflow's 3-business-day deadline
    await page.get_by_role("link", name="Cadastros de RT").click()
    await page.wait_for_url(re.compile(r"/ui/rts$"))
    row = page.locator("table.fila tbody tr", has_text=approve_key)
    due = local(pending["due_at"])
    assert f"vence em 3 dias úteis ({due:%d/%m/%Y} 23:59)" in await row.inner_text()
    assert await page.locator("table.fila tbody tr", has_text=reject_key).count() == 1
    await no_serious_axe(page)
    await shot(page, "inbox-rts")

    # approval needs the council check, refused beside the box when it is missing
    await row.get_by_role("link", name=approve_key).click()
    await page.wait_for_url(re.compile(rf"/ui/rts/{approve_key}$"))
    body = await page.locator("main").inner_text()
    assert "Paula Engenheira Lima" in body and "***.982.247-**" in body and "529.982.247-25" not in body
    assert "r***@engenharia.example.com" in body
    approve = page.locator("form[action$='/acoes/approve']")
    await approve.get_by_role("button", name="Aprovar o cadastro do RT").click()
    await page.wait_for_load_state()
    registration = approve_key.rsplit("-", 1)[1]
    assert f"Confirme que conferiu o registro {registration} no CREA-MG" in await page.locator("#conferido-erro").inner_text()
    await no_serious_axe(page)
    await shot(page, "inbox-rt-refused")
    async with stack.http() as http:  # nothing was sent to the workflow
        r = await http.get(f"/api/v1/technicians/{approve_key}", headers=who.analyst())
        assert r.json()["status"] == "PENDING_REVIEW" and r.json()["decisions"] == []
    approve = page.locator("form[action$='/acoes/approve']")
    await approve.get_by_label(re.compile(rf"Conferi no CREA-MG: o registro {registration} está ativo")).check()
    await approve.get_by_role("button", name="Aprovar o cadastro do RT").click()
    await page.wait_for_url(re.compile(rf"/ui/rts/{approve_key}$"))
    assert "Cadastro aprovado" in await page.locator(".situacao").inner_text()
    async with stack.http() as http:
        st = await settled(http, who.analyst(), f"/api/v1/technicians/{approve_key}", lambda s: s["status"] == "APPROVED")
    assert [(d["action"], d["actor"]["id"]) for d in st["decisions"]] == [("approve", "ana.analista")]

    # rejection: "Outro" without its text is the workflow's refusal, shown at the reasons
    await page.goto(f"{stack.base_url}/ui/rts/{reject_key}")
    await page.locator("summary", has_text="Rejeitar").click()
    reject = page.locator("form[action$='/acoes/reject']")
    texts = catalogue.catalogue()
    await reject.get_by_label(texts["RT-DADOS-INCOMPLETOS"].text, exact=True).check()
    await reject.get_by_label(texts["OTHER"].text, exact=True).check()
    await reject.get_by_role("button", name="Rejeitar o cadastro").click()
    await page.wait_for_load_state()
    assert "o código OTHER exige um texto descrevendo o motivo" in await page.locator("#motivos-erro").inner_text()
    reject = page.locator("form[action$='/acoes/reject']")  # the choices are kept
    assert await reject.get_by_label(texts["RT-DADOS-INCOMPLETOS"].text, exact=True).is_checked()
    await reject.get_by_label(f"Texto para {texts['OTHER'].text}").fill("Telefone de contato não atende.")
    await reject.get_by_role("button", name="Rejeitar o cadastro").click()
    await page.wait_for_url(re.compile(rf"/ui/rts/{reject_key}$"))
    body = await page.locator("main").inner_text()
    assert "Cadastro rejeitado" in body and texts["RT-DADOS-INCOMPLETOS"].text in body
    assert "Telefone de contato não atende." in body
    assert await page.locator("aside form").count() == 0

    # both left the queue
    await page.goto(f"{stack.base_url}/ui/rts")
    rows = await page.locator("table.fila tbody").all_inner_texts() if await page.locator("table.fila").count() else []
    assert not any(approve_key in r or reject_key in r for r in rows)
    await context.close()


async def test_analyst_confirms_ucs_recebedoras(stack, chromium):
    who = stack.who
    async with stack.http() as http:
        st = await under_analysis(http, who)
        rid = st["request_id"]
        # the plant is connected: parecer, vistoria requested and approved
        r = await act(http, who.analyst(), rid, "approve", {"parecer": await doc(http, who.analyst(), "parecer")})
        assert r.status_code == 200, r.text
        r = await act(http, who.customer(), rid, "request_inspection", {})
        assert r.status_code == 200, r.text
        r = await act(http, who.inspector(), rid, "record_inspection", {"result": "approved"})
        assert r.status_code == 200, r.text
        await settled(http, who.analyst(), f"/api/v1/requests/{rid}", lambda s: s["status"] == "CONNECTED" and s["pending_effects"] == 0)
        change = {"generator_installation": "3001234567", "holder_document": CPF, "modality": "remote",
                  "allocation": {"mode": "percent", "units": [
                      {"installation_number": "3001234568", "holder_document": CPF, "percent": 70},
                      {"installation_number": "3001234569", "holder_document": CPF, "percent": 30}]}}
        r = await http.post(f"/api/v1/requests/{rid}/beneficiaries", json=change, headers=who.customer())
        assert r.status_code == 201, r.text
    context, page = await new_page(chromium)
    await login(page, stack.base_url, "Bruno (analista)")
    await page.get_by_role("link", name="UCs recebedoras").click()
    await page.wait_for_url(re.compile(r"/ui/ucs$"))
    row = page.locator("table.fila tbody tr", has_text=rid)
    assert "autoconsumo remoto" in await row.inner_text() and "percentual" in await row.inner_text()
    await no_serious_axe(page)
    await shot(page, "inbox-ucs")
    await row.get_by_role("link", name=rid).click()
    await page.wait_for_url(re.compile(rf"/ui/ucs/{rid}$"))
    units = await page.locator("#ucs-t + table").inner_text()
    assert "3001234568" in units and "70 %" in units and "30 %" in units
    assert "***.982.247-**" in units and "52998224725" not in await page.content()
    await no_serious_axe(page)
    await page.get_by_role("button", name="Confirmar o cadastramento").click()
    await page.wait_for_url(re.compile(rf"/ui/ucs/{rid}$"))
    async with stack.http() as http:
        ben = await settled(http, who.analyst(), f"/api/v1/requests/{rid}/beneficiaries",
                            lambda s: s["status"] == "REGISTERED")
    body = await page.locator("main").inner_text()
    assert "UCs recebedoras cadastradas" in body
    # a calendar date, shown as is (not shifted to the day before by a time zone)
    assert re.search(rf"Vigência a partir de\s+{date.fromisoformat(ben['effective_from']):%d/%m/%Y}", body), body
    await shot(page, "inbox-uc")
    await context.close()


async def test_paused_clock_reads_prazo_suspenso_in_the_queue_and_withdraw_is_not_offered(stack, chromium):
    who = stack.who
    async with stack.http() as http:
        st = await under_analysis(http, who)
    context, page = await new_page(chromium)
    await login(page, stack.base_url, "Sônia (supervisora)")
    await page.goto(f"{stack.base_url}/ui/solicitacoes/{st['request_id']}")
    # withdraw belongs to the customer and the RT (rules table): no form, a note saying so
    assert await page.locator("form[action$='/acoes/withdraw']").count() == 0
    assert await page.locator("#nota-desistencia").inner_text() == (
        "Desistência: só cliente e RT, pelo portal ou pela API; a distribuidora não desiste pelo solicitante.")
    await page.get_by_label("Motivo da suspensão do prazo").fill("Aguardando vistoria técnica no local (REN art. 64)")
    await page.get_by_role("button", name="Suspender o prazo").click()
    await page.wait_for_url(re.compile(rf"/ui/solicitacoes/{st['request_id']}$"))
    assert "prazo suspenso" in await page.locator(".situacao").inner_text()
    ns = st["service_note"]
    await until_row_reads(page, f"{stack.base_url}/ui/caixa", ns, "td.prazo", "prazo suspenso")
    # a paused deadline is not "due within" anything
    await page.goto(f"{stack.base_url}/ui/caixa?vence_em=30")
    assert ns not in await queue_rows(page)
    await page.goto(f"{stack.base_url}/ui/caixa")
    await shot(page, "inbox-queue-paused")
    await context.close()


async def test_supervisor_reads_the_sla_dashboard(stack, chromium):
    context, page = await new_page(chromium)
    await login(page, stack.base_url, "Sônia (supervisora)")
    await page.get_by_role("link", name="Prazos").click()
    await page.wait_for_url(re.compile(r"/ui/prazos$"))
    chart = page.get_by_role("img", name=re.compile("Prazos cumpridos por regra"))
    assert await chart.count() == 1
    described = await page.locator("#grafico-desc").text_content()
    # the RT reviews of this module: 3 met (the seed RT, one approved, one rejected)
    assert "análise do cadastro do RT: 100,0 % de 3 no prazo" in described
    rules = page.locator("table[aria-labelledby='regras-t'] tbody tr", has_text="análise do cadastro do RT")
    assert re.sub(r"\s+", " ", await rules.inner_text()).strip().startswith("análise do cadastro do RT distribuidora 3 3 100,0 %")
    # per analyst: ana.analista closed those 3 and the parecer of the UC test's request (4,
    # all met); the inspector closed that request's vistoria
    ana = page.locator("table[aria-labelledby='analistas-t'] tbody tr", has_text="ana.analista")
    assert re.sub(r"\s+", " ", await ana.inner_text()).strip().startswith("ana.analista 4 4 100,0 %")
    inspector = page.locator("table[aria-labelledby='analistas-t'] tbody tr", has_text="carlos.vistoria")
    assert re.sub(r"\s+", " ", await inspector.inner_text()).strip().startswith("carlos.vistoria 1 1 100,0 %")
    # due soon: the requests under analysis of this module, none overdue
    assert "Vencidas agora 0" in re.sub(r"\s+", " ", await page.locator("#vencidas-t").inner_text())
    assert int((await page.locator("#vencem-t .contador").inner_text()).strip()) == 0  # micro parecer: 15 days
    await no_serious_axe(page)
    await shot(page, "inbox-dashboard")

    # a past period: nothing concluded; a reversed one: the error names the field
    await page.get_by_label("De (dd/mm/aaaa)").fill("01/01/2020")
    await page.get_by_label("Até (dd/mm/aaaa)").fill("31/01/2020")
    await page.get_by_role("button", name="Ver o período").click()
    await page.wait_for_url(re.compile(r"de=01%2F01%2F2020&ate=31%2F01%2F2020"))
    assert "01/01/2020 a 31/01/2020" in await page.locator("#periodo-texto").inner_text()
    assert "Nenhum prazo da distribuidora no período." in await page.locator("main").inner_text()
    await page.get_by_label("De (dd/mm/aaaa)").fill("01/02/2020")
    await page.get_by_role("button", name="Ver o período").click()
    await page.wait_for_url(re.compile(r"de=01%2F02%2F2020"))
    assert "a data final é anterior à inicial" in await page.locator("#p-ate-erro").inner_text()
    await page.get_by_label("Até (dd/mm/aaaa)").fill("31/02/2020")
    await page.get_by_role("button", name="Ver o período").click()
    await page.wait_for_url(re.compile(r"ate=31%2F02%2F2020"))
    assert "data no formato dd/mm/aaaa" in await page.locator("#p-ate-erro").inner_text()
    await no_serious_axe(page)

    # the same report as `gd report sla --html`, downloaded
    await page.goto(f"{stack.base_url}/ui/prazos")
    async with page.expect_download() as got:
        await page.get_by_role("link", name=re.compile("baixar o relatório")).click()
    download = await got.value
    html = open(await download.path(), encoding="utf-8").read()
    assert "Relatório de cumprimento de prazos (SLA)" in html
    await context.close()

    # on a phone the page still reads (the chart and the tables scroll sideways in their
    # own regions, the page does not), axe included
    context, page = await new_page(chromium, 360, 740)
    await login(page, stack.base_url, "Sônia (supervisora)")
    await page.goto(f"{stack.base_url}/ui/prazos")
    await shot(page, "inbox-dashboard-phone")
    box = await page.get_by_role("img", name=re.compile("Prazos cumpridos por regra")).bounding_box()
    assert box["width"] >= 600  # readable: scrolled, not shrunk
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await no_serious_axe(page)
    await context.close()

    # an analyst sees what is due, not the figures per analyst
    context, page = await new_page(chromium)
    await login(page, stack.base_url, "Ana (analista)")
    await page.goto(f"{stack.base_url}/ui/prazos")
    assert await page.locator("#analistas-t").count() == 0 and await page.locator("#vencem-t").count() == 1
    await context.close()


async def test_auditor_page_timeline_export_and_replay(stack, chromium):
    who = stack.who
    async with stack.http() as http:
        st = await under_analysis(http, who)
        rid = st["request_id"]
        r = await act(http, who.analyst(), rid, "suspend", {"pendencies": [{"code": "DOC-ART-AUSENTE"}]})
        assert r.status_code == 200, r.text
        await settled(http, who.analyst(), f"/api/v1/requests/{rid}",
                      lambda s: s["status"] == "SUSPENDED" and s["pending_effects"] == 0)
    context, page = await new_page(chromium)
    await login(page, stack.base_url, "Alice (auditora)")
    await page.goto(f"{stack.base_url}/ui/solicitacoes/{rid}")
    await page.get_by_role("link", name=re.compile("Auditoria")).click()
    await page.wait_for_url(re.compile(rf"/ui/auditoria/gd-request-{rid}$"))
    assert (await page.locator("#veredito").inner_text()).startswith("Confere: o código atual reproduz a execução")
    steps = await page.locator("table.linha").inner_text()
    for label in ("Recebida; NS e Protocolo emitidos", "NS registrada no APR Web; análise iniciada",
                  "Análise suspensa (pendências)"):
        assert label in steps, steps
    assert "DOC-ART-AUSENTE " + catalogue.catalogue()["DOC-ART-AUSENTE"].text in steps
    emails = await page.locator("#emails-t ~ div table").inner_text()
    assert "m***@example.com.br" in emails and "maria.souza@" not in emails
    assert "Suspensa com pendências" in emails  # the template's subject, not its file name
    await no_serious_axe(page)
    await shot(page, "inbox-audit")
    async with page.expect_download() as got:
        await page.get_by_role("link", name="Baixar o histórico (JSON)").click()
    exported = json.loads(open(await (await got.value).path(), encoding="utf-8").read())
    assert exported["format"] == "gd-history-export/1" and exported["workflow_id"] == f"gd-request-{rid}"
    assert exported["workflow_type"] == "AccessRequest" and len(exported["runs"]) == 1
    await context.close()

    # an RT registration has its auditor's page too
    context, page = await new_page(chromium)
    await login(page, stack.base_url, "Alice (auditora)")
    await page.goto(f"{stack.base_url}/ui/rts/CREA-MG-123456")
    await page.get_by_role("link", name=re.compile("Auditoria")).click()
    await page.wait_for_url(re.compile(r"/ui/auditoria/gd-technician-CREA-MG-123456$"))
    assert (await page.locator("#veredito").inner_text()).startswith("Confere:")
    assert "APR Web: cadastro de RT aprovado" in await page.locator("#emails-t ~ div table").inner_text()
    await context.close()

    # an analyst is not let in
    context, page = await new_page(chromium)
    await login(page, stack.base_url, "Ana (analista)")
    answer = await page.goto(f"{stack.base_url}/ui/auditoria/gd-request-{rid}")
    assert answer.status == 403
    assert "A página de auditoria é da auditoria e da supervisão." in await page.locator("main").inner_text()
    await context.close()
