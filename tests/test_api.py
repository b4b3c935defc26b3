"""The HTTP API (API.md) through httpx against a running `gd api` process: real dev
server, real worker (SQLite store, blob store, SMTP sink), real JWKS issuer."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid

import pytest
import pytest_asyncio
import sqlalchemy as sa

from tests.api_stack import running_stack
from tests.pdf_fixture import make_pdf

CPF = "52998224725"
OTHER_CPF = "11144477735"
RT_KEY = "CREA-MG-123456"
OTHER_RT = "CREA-MG-654321"
PROBLEM = "application/problem+json"


def pdf(label: str) -> bytes:
    return make_pdf(label)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory):
    async with running_stack(tmp_path_factory.mktemp("api")) as running:
        yield running


class Who:
    """Tokens for each person of the journey, signed by the test issuer."""

    def __init__(self, issuer):
        self.i = issuer

    def h(self, token: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", **extra}

    def customer(self, document: str = CPF, sub: str = "cliente.maria") -> dict[str, str]:
        return self.h(self.i.token(sub, ["customer"], document=document))

    def rt(self, key: str = RT_KEY, sub: str = "rt.joao") -> dict[str, str]:
        return self.h(self.i.token(sub, ["technician"], council_key=key, kid="ec-1"))

    def analyst(self) -> dict[str, str]:
        return self.h(self.i.token("ana.analista", ["analyst"]))

    def inspector(self) -> dict[str, str]:
        return self.h(self.i.token("carlos.vistoria", ["inspector"]))

    def auditor(self) -> dict[str, str]:
        return self.h(self.i.token("aud.ita", ["auditor"]))

    def supervisor(self) -> dict[str, str]:
        return self.h(self.i.token("sup.ervisor", ["supervisor"]))

    def system(self) -> dict[str, str]:
        return self.h(self.i.token("portal-cemig", ["system"]))


@pytest.fixture
def who(stack) -> Who:
    return Who(stack.issuer)


async def upload(http, headers, kind: str, content: bytes | None = None, filename: str | None = None,
                 request_id: str | None = None):
    content = content if content is not None else pdf(kind + uuid.uuid4().hex)
    fields = {"kind": kind, **({"request_id": request_id} if request_id is not None else {})}
    r = await http.post("/api/v1/documents", headers=headers,
                        files={"file": (filename or f"{kind}.pdf", content, "application/pdf")},
                        data=fields)
    return r


async def doc(http, headers, kind: str) -> dict:
    r = await upload(http, headers, kind)
    assert r.status_code == 201, r.text
    return r.json()


def request_body(request_id: str, commercial: dict, *, document: str = CPF, beneficiaries: dict | None = None) -> dict:
    return {
        "request_id": request_id,
        "kind": "request",
        "customer": {"name": "Maria das Graças Souza", "document": document,
                     "email": "maria.souza@example.com.br", "phone": "(31) 99876-5432"},
        # The customer base (domain/data/installations-demo.csv): each holder's own unit.
        "installation_number": {CPF: "3001234567", OTHER_CPF: "3005550001"}.get(document),
        "technician": {"council": "CREA", "uf": "MG", "registration": "123456"},
        "generation": {"source": "solar", "installed_power_kw": 8.5, "voltage_kv": 0.22, "modality": "remote"},
        "documents": [commercial],
        "beneficiaries": beneficiaries,
    }


async def approved_rt(http, who: Who, key: str = RT_KEY, cpf: str = "111.444.777-35") -> None:
    council, uf, registration = key.split("-")
    r = await http.get(f"/api/v1/technicians/{key}", headers=who.analyst())
    if r.status_code == 200 and r.json()["status"] == "APPROVED":
        return
    body = {"name": "João Engenheiro", "cpf": cpf, "email": f"rt.{registration}@engenharia.example.com",
            "phone": "31 98888-7777", "council": council, "uf": uf, "registration": registration}
    r = await http.post("/api/v1/technicians", json=body, headers=who.rt(key))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "PENDING_REVIEW"
    assert r.headers["location"] == f"/api/v1/technicians/{key}"
    r = await http.post(f"/api/v1/technicians/{key}/actions/approve", json={}, headers=who.analyst())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "APPROVED"


async def new_request(http, who: Who, *, beneficiaries: dict | None = None) -> dict:
    await approved_rt(http, who)
    commercial = await doc(http, who.customer(), "commercial_id")
    rid = f"req-{uuid.uuid4().hex[:10]}"
    r = await http.post("/api/v1/requests", json=request_body(rid, commercial, beneficiaries=beneficiaries),
                        headers=who.customer())
    assert r.status_code == 201, r.text
    return r.json()


async def act(http, headers, rid: str, update: str, body: dict | None = None, **extra_headers: str):
    return await http.post(f"/api/v1/requests/{rid}/actions/{update}", json=body or {},
                           headers={**headers, **extra_headers})


async def settled(http, headers, path: str, until, timeout: float = 20.0) -> dict:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        r = await http.get(path, headers=headers)
        if r.status_code == 200 and until(r.json()):
            return r.json()
        assert loop.time() < give_up, f"{path}: {r.status_code} {r.text[:300]}"
        await asyncio.sleep(0.2)


# --- the seed's journey ----------------------------------------------------------------


async def test_seed_journey_through_http(stack, who):
    units = {"mode": "percent", "units": [
        {"installation_number": "3001234568", "holder_document": CPF, "percent": 60},
        {"installation_number": "3001234569", "holder_document": CPF, "percent": 40}]}
    async with stack.http() as http:
        st = await new_request(http, who, beneficiaries=units)
        rid = st["request_id"]
        assert st["status"] == "AWAITING_APR"
        first_ns, protocol = st["service_note"], st["protocol"]
        assert len(first_ns) == 10 and first_ns.isdigit()

        apr_docs = [await doc(http, who.rt(), k) for k in
                    ("electrical_project", "art_rrt", "single_line_diagram", "descriptive_memorial")]
        r = await act(http, who.rt(), rid, "register_apr",
                      {"service_note": first_ns, "protocol": protocol, "documents": apr_docs})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "UNDER_ANALYSIS"
        assert r.headers["etag"]

        r = await act(http, who.analyst(), rid, "suspend",
                      {"pendencies": [{"code": "DOC-ART-AUSENTE"}]})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "SUSPENDED"
        assert r.json()["decisions"][-1]["actor"]["id"] == "ana.analista"

        correction = await doc(http, who.rt(), "correction")
        r = await act(http, who.rt(), rid, "attach_corrections", {"documents": [correction]})
        assert r.status_code == 200, r.text

        r = await act(http, who.customer(), rid, "request_reanalysis", {"reproved_service_note": first_ns})
        assert r.status_code == 200, r.text
        st = r.json()
        assert st["status"] == "UNDER_ANALYSIS"
        assert st["service_note"] != first_ns and st["service_notes"] == [first_ns, st["service_note"]]
        assert st["cycle"] == 2

        parecer = await doc(http, who.analyst(), "parecer")
        r = await act(http, who.analyst(), rid, "approve", {"parecer": parecer})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "APPROVED"

        r = await act(http, who.customer(), rid, "request_inspection")
        assert r.status_code == 200 and r.json()["status"] == "INSPECTION_REQUESTED", r.text
        r = await act(http, who.inspector(), rid, "record_inspection", {"result": "approved"})
        assert r.status_code == 200 and r.json()["status"] == "CONNECTED", r.text

        # UCs recebedoras: the child the request started once connected
        ben = await settled(http, who.customer(), f"/api/v1/requests/{rid}/beneficiaries",
                            lambda s: s["status"] == "PENDING_REVIEW")
        assert [u["installation_number"] for u in ben["allocation"]["units"]] == ["3001234568", "3001234569"]
        r = await http.post(f"/api/v1/requests/{rid}/beneficiaries/actions/confirm", json={}, headers=who.analyst())
        assert r.status_code == 200 and r.json()["status"] == "REGISTERED", r.text
        assert r.json()["effective_from"]

        # a new allocation, by the plant's holder through the API
        change = {"generator_installation": "3001234567", "holder_document": CPF, "modality": "remote",
                  "allocation": {"mode": "percent", "units": [
                      {"installation_number": "3001234568", "holder_document": CPF, "percent": 100}]}}
        r = await http.post(f"/api/v1/requests/{rid}/beneficiaries", json=change, headers=who.customer(OTHER_CPF))
        assert r.status_code == 403, r.text
        r = await http.post(f"/api/v1/requests/{rid}/beneficiaries", json=change, headers=who.customer())
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "PENDING_REVIEW"

        # reading: timeline (party), history export and SLA report (auditor, supervisor)
        r = await http.get(f"/api/v1/requests/{rid}/timeline", headers=who.customer())
        assert r.status_code == 200, r.text
        assert "steps" in json.dumps(r.json())
        r = await http.get(f"/api/v1/requests/{rid}/history", headers=who.auditor())
        assert r.status_code == 200 and r.json()["format"] == "gd-history-export/1"
        r = await http.get(f"/api/v1/requests/{rid}/history", headers=who.customer())
        assert r.status_code == 403
        r = await http.get("/api/v1/reports/sla", params={"from": "2024-01-01", "to": "2030-12-31"},
                           headers=who.supervisor())
        assert r.status_code == 200 and r.json()["processes"] >= 1, r.text

        # documents: a party downloads what its request cites; a stranger gets 404
        r = await http.get(f"/api/v1/documents/{parecer['sha256']}", headers=who.customer())
        assert r.status_code == 200 and r.content.startswith(b"%PDF")
        assert hashlib.sha256(r.content).hexdigest() == parecer["sha256"]
        r = await http.get(f"/api/v1/documents/{parecer['sha256']}", headers=who.customer(OTHER_CPF))
        assert r.status_code == 404

        # e-mails went out through the real SMTP sink
        assert stack.smtp.messages, "the journey sends e-mails"


# --- lists ------------------------------------------------------------------------------


async def test_lists_filter_by_party_and_page_with_cursor(stack, who):
    async with stack.http() as http:
        rids = {(await new_request(http, who))["request_id"] for _ in range(3)}
        seen: set[str] = set()
        cursor = None
        for _ in range(50):
            params = {"status": "AWAITING_APR", "limit": 1}
            if cursor:
                params["cursor"] = cursor
            r = await http.get("/api/v1/requests", params=params, headers=who.analyst())
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["items"]) <= 1
            seen |= {i["request_id"] for i in page["items"]}
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert rids <= seen
        r = await http.get("/api/v1/requests", params={"status": "AWAITING_APR", "limit": 200}, headers=who.rt())
        assert rids <= {i["request_id"] for i in r.json()["items"]}
        r = await http.get("/api/v1/requests", params={"limit": 200}, headers=who.rt(OTHER_RT, "rt.outro"))
        assert r.status_code == 200 and not rids & {i["request_id"] for i in r.json()["items"]}
        r = await http.get("/api/v1/requests", params={"technician": RT_KEY}, headers=who.rt(OTHER_RT, "rt.outro"))
        assert r.status_code == 403
        r = await http.get("/api/v1/requests", params={"limit": 200}, headers=who.customer(OTHER_CPF, "outro"))
        assert r.status_code == 200 and not rids & {i["request_id"] for i in r.json()["items"]}
        r = await http.get("/api/v1/requests", params={"limit": 200}, headers=who.customer())
        assert rids <= {i["request_id"] for i in r.json()["items"]}
        r = await http.get("/api/v1/requests", params={"cursor": "bogus"}, headers=who.analyst())
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
        r = await http.get("/api/v1/requests", params={"status": "NOPE"}, headers=who.analyst())
        assert r.status_code == 422


# --- role and party refusals ----------------------------------------------------------

ROLE_TABLE = {
    "register_apr": ("technician",),
    "attach_corrections": ("technician",),
    "request_reanalysis": ("customer", "technician"),
    "request_inspection": ("customer", "technician"),
    "withdraw": ("customer", "technician"),
    "approve": ("analyst", "supervisor"),
    "suspend": ("analyst", "supervisor"),
    "reprove": ("analyst", "supervisor"),
    "declare_works": ("analyst", "supervisor"),
    "pause_clock": ("analyst", "supervisor"),
    "resume_clock": ("analyst", "supervisor"),
    "answer_inquiry": ("analyst", "supervisor"),
    "record_inspection": ("inspector",),
}
ALL_ROLES = ("customer", "technician", "analyst", "supervisor", "inspector", "auditor", "system")


async def test_every_role_refusal_is_403_and_counted(stack, who):
    async with stack.http() as http:
        rid = (await new_request(http, who))["request_id"]
        before = await http.get(f"/api/v1/requests/{rid}", headers=who.analyst())
        refused = 0
        for update, allowed in ROLE_TABLE.items():
            for role in ALL_ROLES:
                if role in allowed:
                    continue
                token = stack.issuer.token(f"x.{role}", [role], council_key=RT_KEY, document=CPF)
                r = await act(http, who.h(token), rid, update)
                assert r.status_code == 403, (update, role, r.text)
                assert r.headers["content-type"] == PROBLEM
                assert r.json()["type"].endswith("role_refused")
                refused += 1
        after = await http.get(f"/api/v1/requests/{rid}", headers=who.analyst())
        assert after.headers["etag"] == before.headers["etag"], "a refused call changes nothing"
        assert after.json()["decisions"] == before.json()["decisions"] == []
        assert after.json()["status"] == "AWAITING_APR"
        metrics = (await http.get("/metrics")).text
        line = [l for l in metrics.splitlines() if 'reason="role_refused"' in l and 'action="approve"' in l]
        assert line and float(line[0].split()[-1]) >= 5
        log = stack.api_log.read_text()
        assert '"reason": "role_refused"' in log and CPF not in log


async def test_party_refusals_and_non_party_reads(stack, who):
    async with stack.http() as http:
        st = await new_request(http, who)
        rid = st["request_id"]
        body = {"service_note": st["service_note"], "protocol": st["protocol"], "documents": []}
        r = await act(http, who.rt(OTHER_RT, "rt.outro"), rid, "register_apr", body)
        assert r.status_code == 403 and r.json()["type"].endswith("party_refused"), r.text
        r = await act(http, who.customer(OTHER_CPF, "outro"), rid, "withdraw", {"reason": "desisti"})
        assert r.status_code == 403 and r.json()["type"].endswith("party_refused")
        for path in ("", "/timeline", "/beneficiaries"):
            r = await http.get(f"/api/v1/requests/{rid}{path}", headers=who.customer(OTHER_CPF, "outro"))
            assert r.status_code == 404, (path, r.text)
            assert r.headers["content-type"] == PROBLEM
        r = await http.get(f"/api/v1/requests/{rid}", headers=who.rt(OTHER_RT, "rt.outro"))
        assert r.status_code == 404
        r = await http.get(f"/api/v1/requests/{rid}", headers=who.rt())
        assert r.status_code == 200 and r.headers["etag"]
        # a customer opens requests only in their own document; an RT only as the RT
        commercial = await doc(http, who.customer(), "commercial_id")
        r = await http.post("/api/v1/requests", json=request_body("x-" + uuid.uuid4().hex[:8], commercial),
                            headers=who.customer(OTHER_CPF, "outro"))
        assert r.status_code == 403
        r = await http.post("/api/v1/requests", json=request_body("x-" + uuid.uuid4().hex[:8], commercial),
                            headers=who.rt(OTHER_RT, "rt.outro"))
        assert r.status_code == 403
        r = await http.post("/api/v1/technicians", headers=who.rt(OTHER_RT), json={
            "name": "Outro", "cpf": "111.444.777-35", "email": "o@example.com", "phone": "31 98888-7777",
            "council": "CREA", "uf": "MG", "registration": "999999"})
        assert r.status_code == 403


async def test_upload_for_a_request_makes_it_the_files_holder(stack, who):
    from activities.documents import holders

    store = stack.deps.store
    third = who.customer("39053344705", "terceiro")
    async with stack.http() as http:
        await approved_rt(http, who)
        content = pdf("RG " + uuid.uuid4().hex)
        sha = hashlib.sha256(content).hexdigest()
        # without request_id nobody holds the file until the first request citing it
        r = await upload(http, who.customer(), "commercial_id", content)
        assert r.status_code == 201, r.text
        assert holders(store, sha) == []
        first = f"req-{uuid.uuid4().hex[:10]}"
        r = await http.post("/api/v1/requests", json=request_body(first, r.json()), headers=who.customer())
        assert r.status_code == 201, r.text
        assert holders(store, sha) == [f"gd-request-{first}"]

        # the same bytes uploaded for another customer's request (not opened yet): held by both
        other = f"req-{uuid.uuid4().hex[:10]}"
        r = await upload(http, who.customer(OTHER_CPF, "outro"), "commercial_id", content, request_id=other)
        assert r.status_code == 201, r.text
        assert holders(store, sha) == [f"gd-request-{first}", f"gd-request-{other}"]
        r = await http.post("/api/v1/requests", json=request_body(other, r.json(), document=OTHER_CPF),
                            headers=who.customer(OTHER_CPF, "outro"))
        assert r.status_code == 201, r.text

        # an opened request takes files only from who may read it: 404, nothing stored
        intruder = pdf("intruso " + uuid.uuid4().hex)
        r = await upload(http, third, "other", intruder, request_id=first)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM, r.text
        assert store.document(hashlib.sha256(intruder).hexdigest()) is None

        # a file uploaded for a request (cited by nothing yet) is downloadable by its parties only
        extra = pdf("memorial " + uuid.uuid4().hex)
        r = await upload(http, who.customer(), "other", extra, request_id=first)
        assert r.status_code == 201, r.text
        extra_sha = r.json()["sha256"]
        assert holders(store, extra_sha) == [f"gd-request-{first}"]
        r = await http.get(f"/api/v1/documents/{extra_sha}", headers=who.customer())
        assert r.status_code == 200 and r.content == extra
        r = await http.get(f"/api/v1/documents/{extra_sha}", headers=third)
        assert r.status_code == 404

        r = await upload(http, who.customer(), "other", pdf("x"), request_id="não vale")
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == ["request_id"]


async def test_status_conflict_is_409_with_the_validators_message(stack, who):
    async with stack.http() as http:
        rid = (await new_request(http, who))["request_id"]
        parecer = await doc(http, who.analyst(), "parecer")
        r = await act(http, who.analyst(), rid, "approve", {"parecer": parecer})
        assert r.status_code == 409, r.text
        problem = r.json()
        assert problem["type"].endswith("status_refused")
        assert "AWAITING_APR" in problem["detail"]


# --- idempotency and concurrency --------------------------------------------------------


async def _under_analysis(http, who) -> str:
    st = await new_request(http, who)
    apr_docs = [await doc(http, who.rt(), k) for k in
                ("electrical_project", "art_rrt", "single_line_diagram", "descriptive_memorial")]
    r = await act(http, who.rt(), st["request_id"], "register_apr",
                  {"service_note": st["service_note"], "protocol": st["protocol"], "documents": apr_docs})
    assert r.status_code == 200, r.text
    return st["request_id"]


async def test_idempotent_retry_decides_once_and_stale_if_match_is_412(stack, who):
    async with stack.http() as http:
        rid = await _under_analysis(http, who)
        r = await http.get(f"/api/v1/requests/{rid}", headers=who.analyst())
        etag = r.headers["etag"]
        key = "susp-" + uuid.uuid4().hex
        body = {"pendencies": [{"code": "DOC-ART-AUSENTE"}]}
        first = await act(http, who.analyst(), rid, "suspend", body, **{"Idempotency-Key": key, "If-Match": etag})
        assert first.status_code == 200, first.text
        again = await act(http, who.analyst(), rid, "suspend", body, **{"Idempotency-Key": key, "If-Match": etag})
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "SUSPENDED"
        suspends = [d for d in again.json()["decisions"] if d["action"] == "suspend"]
        assert len(suspends) == 1, "a retry never decides twice"
        # another decision on the stale page
        r = await act(http, who.analyst(), rid, "withdraw", {"reason": "x"}, **{"If-Match": etag})
        assert r.status_code in (403, 412)
        r = await act(http, who.rt(), rid, "attach_corrections",
                      {"documents": [await doc(http, who.rt(), "correction")]}, **{"If-Match": etag})
        assert r.status_code == 412, r.text
        assert r.headers["content-type"] == PROBLEM
        fresh = (await http.get(f"/api/v1/requests/{rid}", headers=who.rt())).headers["etag"]
        assert fresh != etag
        r = await act(http, who.rt(), rid, "attach_corrections",
                      {"documents": [await doc(http, who.rt(), "correction")]}, **{"If-Match": fresh})
        assert r.status_code == 200, r.text


# --- bad bodies, files, tokens ----------------------------------------------------------


async def test_bad_bodies(stack, who):
    async with stack.http() as http:
        rid = await _under_analysis(http, who)
        h = who.analyst()
        r = await http.post(f"/api/v1/requests/{rid}/actions/suspend", content=b"{not json", headers={**h, "Content-Type": "application/json"})
        assert r.status_code == 400 and r.headers["content-type"] == PROBLEM
        r = await http.post(f"/api/v1/requests/{rid}/actions/suspend", json=[1, 2], headers=h)
        assert r.status_code == 400
        r = await act(http, h, rid, "suspend", {"actor": {"id": "x", "role": "analyst"}, "pendencies": [{"code": "DOC-ART-AUSENTE"}]})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "actor"
        r = await act(http, h, rid, "suspend", {"pendencies": []})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "pendencies"
        r = await act(http, h, rid, "suspend", {"pendencies": [{"code": "NAO-EXISTE"}]})
        assert r.status_code == 422 and "NAO-EXISTE" in r.json()["detail"]
        r = await act(http, h, rid, "fly_away")
        assert r.status_code == 404
        r = await act(http, h, "no-such-request", "suspend", {"pendencies": [{"code": "DOC-ART-AUSENTE"}]})
        assert r.status_code == 404

        # a start body with many errors: every one listed, nothing started
        rid2 = "bad-" + uuid.uuid4().hex[:8]
        bad = request_body(rid2, {"sha256": "ab" * 32, "kind": "commercial_id", "filename": "c.pdf",
                                  "size": 10, "content_type": "application/pdf"})
        bad["customer"]["document"] = "123.456.789-00"
        bad["customer"]["email"] = "nope"
        bad["generation"]["installed_power_kw"] = -1
        r = await http.post("/api/v1/requests", json=bad, headers=who.system())
        assert r.status_code == 422, r.text
        fields = {e["field"] for e in r.json()["errors"]}
        assert {"customer.document", "customer.email", "generation.installed_power_kw"} <= fields
        # store checks of the intake validator: the file is not in the store
        ok_shape = request_body(rid2, {"sha256": "ab" * 32, "kind": "commercial_id", "filename": "c.pdf",
                                       "size": 10, "content_type": "application/pdf"})
        r = await http.post("/api/v1/requests", json=ok_shape, headers=who.system())
        assert r.status_code == 422 and any(e["code"] == "document_missing" for e in r.json()["errors"]), r.text
        r = await http.get(f"/api/v1/requests/{rid2}", headers=who.analyst())
        assert r.status_code == 404, "no workflow was started"
        r = await http.post("/api/v1/requests", json={**ok_shape, "actor": {"id": "x", "role": "system"}}, headers=who.system())
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "actor"


async def test_same_request_id_same_body_200_other_body_409(stack, who):
    async with stack.http() as http:
        await approved_rt(http, who)
        commercial = await doc(http, who.customer(), "commercial_id")
        rid = "idem-" + uuid.uuid4().hex[:8]
        body = request_body(rid, commercial)
        r1 = await http.post("/api/v1/requests", json=body, headers=who.customer())
        assert r1.status_code == 201 and r1.headers["location"] == f"/api/v1/requests/{rid}"
        r2 = await http.post("/api/v1/requests", json=body, headers=who.customer())
        assert r2.status_code == 200 and r2.json()["service_note"] == r1.json()["service_note"]
        other = {**body, "generation": {**body["generation"], "installed_power_kw": 9.0}}
        r3 = await http.post("/api/v1/requests", json=other, headers=who.customer())
        assert r3.status_code == 409 and r3.headers["content-type"] == PROBLEM


async def test_bad_files(stack, who):
    async with stack.http() as http:
        h = who.customer()
        big = b"%PDF-1.4\n" + b"0" * (3 * 1024 * 1024)
        r = await upload(http, h, "art_rrt", big)
        assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
        r = await upload(http, h, "art_rrt", b"\x7fELF\x02\x01\x01" + b"\0" * 100, "art.pdf")
        assert r.status_code == 415
        r = await upload(http, h, "art_rrt", b"just text, not a pdf")
        assert r.status_code == 415
        r = await upload(http, h, "pizza", pdf("x"))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "kind"
        r = await http.post("/api/v1/documents", json={"file": "x"}, headers=h)
        assert r.status_code == 415
        r = await upload(http, h, "art_rrt", pdf("exactly"))
        assert r.status_code == 201 and r.json()["content_type"] == "application/pdf"
        assert r.json()["sha256"] == hashlib.sha256(pdf("exactly")).hexdigest()
        assert stack.deps.blobs.exists(r.json()["sha256"]), "same store as gd docs upload"


async def test_bad_tokens(stack, who):
    iss = stack.issuer
    async with stack.http() as http:
        path = "/api/v1/requests?limit=1"
        cases = {
            "none": {},
            "not bearer": {"Authorization": "Basic abc"},
            "garbage": {"Authorization": "Bearer abc.def.ghi"},
            "bad signature": who.h(iss.token("a", ["analyst"], kid="rsa-1", sign_with="ec-1")),
            "wrong iss": who.h(iss.token("a", ["analyst"], iss="https://evil.example")),
            "wrong aud": who.h(iss.token("a", ["analyst"], aud="other-api")),
            "expired": who.h(iss.token("a", ["analyst"], exp_in=-120)),
            "not yet": who.h(iss.token("a", ["analyst"], nbf_in=600)),
            "unknown kid": who.h(iss.token("a", ["analyst"], kid="nope", sign_with="rsa-1")),
        }
        import jwt as pyjwt

        cases["hs256"] = who.h(pyjwt.encode({"sub": "a", "roles": ["analyst"], "iss": iss.url, "aud": "gd-orchestrator",
                                             "exp": 9999999999}, "secret" * 8, algorithm="HS256", headers={"kid": "rsa-1"}))
        for name, headers in cases.items():
            r = await http.get(path, headers=headers)
            assert r.status_code == 401, (name, r.text)
            assert r.headers["content-type"] == PROBLEM
        r = await http.get(path, headers=who.h(iss.token("gd-orchestrator", ["system"])))
        assert r.status_code == 403 and r.json()["type"].endswith("system_actor_forged")
        assert (await http.get(path, headers=who.h(iss.token("a", ["analyst"], kid="ec-1")))).status_code == 200
        # key rotation: a new kid is fetched from the JWKS on first sight
        fetches = iss.fetches
        iss.add_key("rsa-2", "RS256")
        await asyncio.sleep(0.3)
        r = await http.get(path, headers=who.h(iss.token("a", ["analyst"], kid="rsa-2")))
        assert r.status_code == 200, r.text
        assert iss.fetches == fetches + 1
        r = await http.get(path, headers=who.h(iss.token("a", ["analyst"], kid="rsa-2")))
        assert iss.fetches == fetches + 1, "cached"


async def test_operations_endpoints(stack):
    async with stack.http() as http:
        assert (await http.get("/healthz")).status_code == 200
        r = await http.get("/readyz")
        assert r.status_code == 200 and r.json()["checks"] == {"temporal": "ok", "store": "ok"}
        r = await http.get("/api/v1/docs")
        assert r.status_code == 200 and "/api/v1/docs/static/swagger-ui-bundle.js" in r.text
        assert "cdn" not in r.text.lower() and "https://" not in r.text
        js = await http.get("/api/v1/docs/static/swagger-ui-bundle.js")
        assert js.status_code == 200 and len(js.content) > 100_000
        spec = (await http.get("/api/v1/openapi.json")).json()
        assert spec["openapi"].startswith("3.1")
        for path in ("/api/v1/requests", "/api/v1/requests/{request_id}/actions/{update}", "/api/v1/documents",
                     "/api/v1/technicians/{council_key}/actions/{update}", "/api/v1/reports/sla"):
            assert path in spec["paths"]
        assert "gd_api_requests_total" in (await http.get("/metrics")).text


async def test_installations_of_the_holder(stack, who):
    """Issue 17: the customer base, for its holder (the AGV's list of a CPF's installations)."""
    async with stack.http() as http:
        r = await http.get("/api/v1/installations", params={"document": "529.982.247-25"},
                           headers=who.customer())
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert [i["installation_number"] for i in items] == ["3001234567", "3001234568", "3001234569"]
        assert items[0]["customer_class"] == "residencial" and items[0]["gd_connected"] is False
        r = await http.get("/api/v1/installations", params={"document": CPF},
                           headers=who.customer(OTHER_CPF, "outro"))
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
        r = await http.get("/api/v1/installations", params={"document": "11222333000262"},
                           headers=who.analyst())
        assert [i["installation_number"] for i in r.json()["items"]] == [
            "3009876500", "3009876501", "3009876502"]
        r = await http.get("/api/v1/installations", params={"document": "123"}, headers=who.analyst())
        assert r.status_code == 422 and "document:" in r.json()["detail"]
        r = await http.get("/api/v1/installations", params={"document": CPF}, headers=who.rt())
        assert r.status_code == 403
        r = await http.get("/api/v1/installations", params={"document": CPF})
        assert r.status_code == 401


async def test_rt_sets_the_apr_password_with_the_emailed_token(stack, who):
    """Issue 17 item 8: the third approval e-mail's token sets the APR password once."""
    import re as _re

    registration = str(400000 + int(uuid.uuid4().int % 99999))
    key = f"CREA-MG-{registration}"
    async with stack.http() as http:
        await approved_rt(http, who, key=key)
        address = f"rt.{registration}@engenharia.example.com"

        def set_password_mail():
            for m in stack.smtp.messages:
                if m["X-GD-Template"] == "technician_apr_set_password" and address in str(m["To"]):
                    return m
            return None

        loop = asyncio.get_running_loop()
        give_up = loop.time() + 20
        while set_password_mail() is None:
            assert loop.time() < give_up, "no set-password e-mail"
            await asyncio.sleep(0.2)
        text = set_password_mail().get_body(("plain",)).get_content()
        token = _re.search(r"informe o código: (\S+)", text).group(1)
        path = f"/api/v1/technicians/{key}/password"
        r = await http.post(path, json={"token": token, "password": "curta"})
        assert r.status_code == 422 and r.json()["detail"].startswith("password: a senha deve ter de 10")
        r = await http.post(path, json={"token": token + "x", "password": "Solar2026Forte"})
        assert r.status_code == 403 and "código inválido" in r.json()["detail"]
        r = await http.post(path, json={"token": token, "password": "Solar2026Forte"})
        assert r.status_code == 204, r.text
        r = await http.post(path, json={"token": token, "password": "Outra2026Senha"})
        assert r.status_code == 403 and "já utilizado" in r.json()["detail"]
    from activities.passwords import check_apr_login

    assert check_apr_login(stack.deps.store, key, "Solar2026Forte")
    assert not check_apr_login(stack.deps.store, key, "Outra2026Senha")


async def test_rt_corrects_its_email_through_http(stack, who):
    """Issue 17 item 4: change_email sends a code to the new address and a notice to the
    old one; confirm_email with the code makes the new address the RT's."""
    import re as _re

    registration = str(500000 + int(uuid.uuid4().int % 99999))
    key = f"CREA-MG-{registration}"
    old = f"rt.{registration}@engenharia.example.com"
    new = f"novo.{registration}@exemplo.org"
    base = f"/api/v1/technicians/{key}/actions"
    async with stack.http() as http:
        await approved_rt(http, who, key=key)
        # A stranger RT, a customer, bad and same addresses: refused, nothing sent.
        r = await http.post(f"{base}/change_email", json={"email": new}, headers=who.rt(OTHER_RT, "rt.outro"))
        assert r.status_code == 403 and r.json()["type"].endswith("party_refused")
        r = await http.post(f"{base}/change_email", json={"email": new}, headers=who.customer())
        assert r.status_code == 403 and r.json()["type"].endswith("role_refused")
        r = await http.post(f"{base}/change_email", json={"email": "sem arroba"}, headers=who.rt(key))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "email"
        r = await http.post(f"{base}/change_email", json={"email": old}, headers=who.rt(key))
        assert r.status_code == 422 and r.json()["detail"].startswith("email: o novo e-mail é igual")

        r = await http.post(f"{base}/change_email", json={"email": new}, headers=who.rt(key))
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "AWAITING_CONFIRMATION" and new not in r.text

        def mail_of(template: str):
            return [m for m in stack.smtp.messages if m["X-GD-Template"] == template
                    and key in str(m["Subject"])]

        loop = asyncio.get_running_loop()
        give_up = loop.time() + 20
        while not (mail_of("technician_email_change_code") and mail_of("technician_email_change_notice")):
            assert loop.time() < give_up, "no code or notice e-mail"
            await asyncio.sleep(0.2)
        [code_mail] = mail_of("technician_email_change_code")
        [notice] = mail_of("technician_email_change_notice")
        assert str(code_mail["To"]) == new and str(notice["To"]) == old
        code = _re.search(r"Código de confirmação: (\d{6})", code_mail.get_body(("plain",)).get_content()).group(1)
        assert stack.deps.store.technician_email(key) == old

        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        r = await http.post(f"{base}/confirm_email", json={"code": wrong}, headers=who.rt(key))
        assert r.status_code == 422 and r.json()["detail"].startswith("code: código incorreto")
        assert stack.deps.store.technician_email(key) == old
        r = await http.post(f"{base}/confirm_email", json={"code": code}, headers=who.rt(key))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "CONFIRMED"
        assert stack.deps.store.technician_email(key) == new
    assert new not in stack.api_log.read_text() and code not in stack.api_log.read_text()


# --- status GET from the store (request_status) ---------------------------------------------


async def test_status_get_answers_from_the_stored_status(stack, who):
    """GET answers from the status the last step wrote to the store: the same JSON and
    ETag the workflow's query gives; ``consistency=strong`` (or Cache-Control: no-cache)
    asks the workflow; a request without a stored status (started before revision 0010)
    answers from the workflow; a GET after one's own action never goes back."""
    async with stack.http() as http:
        rid = await _under_analysis(http, who)
        path = f"/api/v1/requests/{rid}"
        # register_apr went through this API: until its step is in the store, the
        # workflow answers (the store's older status would go back).
        stored = await settled(http, who.analyst(), path, lambda st: True)
        for _ in range(100):
            stored = await http.get(path, headers=who.analyst())
            if stored.headers["gd-status-source"] == "store":
                break
            await asyncio.sleep(0.02)
        strong = await http.get(path, params={"consistency": "strong"}, headers=who.analyst())
        assert (stored.status_code, strong.status_code) == (200, 200)
        assert stored.headers["gd-status-source"] == "store"
        assert strong.headers["gd-status-source"] == "workflow"
        assert stored.json()["status"] == "UNDER_ANALYSIS"
        assert stored.json() == strong.json()
        assert stored.headers["etag"] == strong.headers["etag"] == f'"{strong.json()["sequence"]}"'
        no_cache = await http.get(path, headers={**who.analyst(), "Cache-Control": "no-cache"})
        assert no_cache.headers["gd-status-source"] == "workflow"
        bad = await http.get(path, params={"consistency": "eventual"}, headers=who.analyst())
        assert bad.status_code == 422 and "consistency" in bad.text
        # A non-party still gets 404, stored status or not.
        other = await http.get(path, headers=who.customer(OTHER_CPF, sub="cliente.outro"))
        assert other.status_code == 404

        # An action through this API: the next GET shows it (read-your-writes), whichever
        # source answers.
        r = await act(http, who.analyst(), rid, "suspend", {"pendencies": [{"code": "DOC-ART-AUSENTE"}]})
        assert r.status_code == 200, r.text
        after = await http.get(path, headers=who.analyst())
        assert after.json()["status"] == "SUSPENDED"
        assert after.headers["etag"] == r.headers["etag"]

        # An action that bypasses this API (another replica, the CLI): the stored status
        # lags until the step's record_transition commits; measure how long.
        from models.ids import access_request_id

        for _ in range(100):  # the suspend's step recorded, its e-mail sent
            after = await http.get(path, headers=who.analyst())
            if after.headers["gd-status-source"] == "store":
                break
            await asyncio.sleep(0.02)
        assert after.headers["etag"] == r.headers["etag"] and after.json()["pending_effects"] == 0
        handle = stack.env.client.get_workflow_handle(access_request_id(rid))
        before = int(after.headers["etag"].strip('"'))
        await handle.execute_update("attach_corrections", {
            "actor": {"id": "rt.joao", "role": "technician", "council_key": RT_KEY},
            "documents": [await doc(http, who.rt(), "correction")]})
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            seen = await http.get(path, headers=who.analyst())
            if int(seen.headers["etag"].strip('"')) > before:
                break
            assert seen.headers["gd-status-source"] == "store" and seen.json() == after.json()
            assert loop.time() - started < 5.0, "the stored status did not follow the step"
            await asyncio.sleep(0.005)
        lag_ms = (loop.time() - started) * 1000
        print(f"stored status lag after an update outside the API: {lag_ms:.0f} ms")
        strong = await http.get(path, params={"consistency": "strong"}, headers=who.analyst())
        assert seen.json() == strong.json()
        assert len(seen.json()["documents"]) == len(after.json()["documents"]) + 1
        assert seen.headers["etag"] == strong.headers["etag"]

        # A stale ETag read from the store still gets 412.
        r = await act(http, who.analyst(), rid, "suspend", {"pendencies": [{"code": "DOC-ART-AUSENTE"}]},
                      **{"If-Match": after.headers["etag"]})
        assert r.status_code == 412, r.text

        # A status too large to carry (only its mark stored): the workflow answers.
        with stack.deps.store.connection() as conn:
            conn.execute(sa.text("UPDATE request_status SET status = :s WHERE workflow_id = :w"),
                         {"s": json.dumps({"sequence": before + 1, "omitted": "too_large"}),
                          "w": access_request_id(rid)})
        marked = await http.get(path, headers=who.analyst())
        assert marked.status_code == 200 and marked.headers["gd-status-source"] == "workflow"
        assert marked.json() == strong.json()
        # No stored status (a request started before revision 0010): the workflow answers.
        with stack.deps.store.connection() as conn:
            conn.execute(sa.text("DELETE FROM request_status WHERE workflow_id = :w"),
                         {"w": access_request_id(rid)})
        old = await http.get(path, headers=who.analyst())
        assert old.status_code == 200 and old.headers["gd-status-source"] == "workflow"
        assert old.json() == strong.json() and old.headers["etag"] == strong.headers["etag"]
