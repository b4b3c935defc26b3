"""The RT's e-mail corrected (issue 17 item 4; workflows/email_change.py).

Real parts: the Temporal test server (time-skipping for the expiry), the worker with the
real activities (SQLite store in tmp_path) and the aiosmtpd sink; the client is
``gd_client.GdClient`` (what the CLI and the API call).
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest

from activities.mail import MailActivities
from activities.tables import TechnicianSecret
from gd_client import GdClient, GdRefused
from models.activities import EmailRequest
from models.ids import email_change_id
from models.technician import TechnicianStatus
from sqlmodel import select
from tests.test_technician import ANALYST, in_review, start, technician_input

OLD = "joao.pereira@example.com.br"  # technician_input's address, as the store keeps it
NEW = "joao.novo@exemplo.org"


def rt_actor(key: str) -> dict:
    return {"id": "rt.joao", "role": "technician", "council_key": key}


def to_of(message) -> str:
    return str(message["To"])


def code_in(message) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    found = re.search(r"Código de confirmação: (\d{6})", text)
    assert found, text
    return found.group(1)


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def approved_rt(client, task_queue, deps, smtp_sink) -> str:
    """An RT registered and approved: its registration workflow has ended."""
    raw = technician_input()
    handle = await start(client, raw, task_queue)
    await in_review(handle)
    await handle.execute_update("approve", {"actor": ANALYST})
    result = await handle.result()
    assert result.status == "APPROVED"
    smtp_sink.wait_for(4)  # received + the three credential e-mails
    smtp_sink.clear()
    key = f"CREA-MG-{raw['registration']}"
    assert deps.store.technician_email(key) == OLD
    return key


async def ended(client, key: str) -> str:
    """The change workflow's final status: it ends once confirmed, expired or locked (and
    its last store step is written before the test stops the worker)."""
    return (await client.get_workflow_handle(email_change_id(key)).result()).get("status")


async def wait_codes(smtp_sink, count: int = 2):
    messages = await smtp_sink.wait_for_async(count)
    code = [m for m in messages if m["X-GD-Template"] == "technician_email_change_code"]
    notice = [m for m in messages if m["X-GD-Template"] == "technician_email_change_notice"]
    return code, notice


async def test_approved_rt_changes_its_email_after_confirming_the_code(
        client, task_queue, real_worker, deps, smtp_sink, settings):
    gd = GdClient(client, settings)
    async with real_worker():
        key = await approved_rt(client, task_queue, deps, smtp_sink)
        st = await gd.change_technician_email(key, rt_actor(key), "Joao.Novo@Exemplo.org")
        assert (st.status, st.new_email_hint, st.attempts_left) == ("AWAITING_CONFIRMATION", "j***@exemplo.org", 5)
        code_mail, notice = await wait_codes(smtp_sink)
        # The code reaches the NEW address only, from Partweb@; the notice the OLD one.
        assert [to_of(m) for m in code_mail] == [NEW]
        assert str(code_mail[0]["From"]) == "Partweb@cemig.com.br"
        assert [to_of(m) for m in notice] == [OLD]
        notice_text = notice[0].get_body(preferencelist=("plain",)).get_content()
        assert "j***@exemplo.org" in notice_text and NEW not in notice_text
        assert "pelo próprio RT" in notice_text
        code = code_in(code_mail[0])
        # Nothing changed yet.
        assert deps.store.technician_email(key) == OLD

        with pytest.raises(GdRefused, match=r"^code: código incorreto; nada mudou; restam 4 tentativa"):
            await gd.confirm_technician_email(key, rt_actor(key), other_code(code))
        assert deps.store.technician_email(key) == OLD
        with pytest.raises(GdRefused, match=r"code: o código tem 6 dígitos"):
            await gd.confirm_technician_email(key, rt_actor(key), "12a456")

        st = await gd.confirm_technician_email(key, rt_actor(key), code)
        assert st.status == "CONFIRMED" and st.attempts_left == 4
        assert deps.store.technician_email(key) == NEW
        # Used once: the change has ended, nothing waits for a code any more.
        assert await ended(client, key) == "CONFIRMED"
        with pytest.raises(GdRefused, match="nenhuma troca de e-mail aguardando confirmação"):
            await gd.confirm_technician_email(key, rt_actor(key), code)

    # The RT's own event log shows who asked and when it took effect; no address in clear.
    events = [e for e in deps.store.events(f"gd-technician-{key}") if e.action.startswith("email_")]
    assert [(e.action, e.actor_role, e.status) for e in events] == [
        ("email_change_requested", "technician", "APPROVED"), ("email_changed", "technician", "APPROVED")]
    assert all(NEW not in str(e.data) and OLD not in str(e.data) for e in events)
    assert "j***@exemplo.org" in events[1].data["notes"]

    # A later e-mail to the RT (as every AccessRequest addresses it) goes to the new address.
    smtp_sink.clear()
    mail = MailActivities(deps.store, deps.blobs, settings)
    result = await mail.send_email(EmailRequest(
        key=f"gd-request-later-{uuid.uuid4().hex[:6]}:received:0", template="technician_received",
        to=[f"technician:{key}"], context={"technician": key}))
    assert result.status == "sent"
    assert [list(e.rcpt_tos) for e in smtp_sink.envelopes] == [[NEW]]


async def test_an_analyst_corrects_it_while_the_registration_is_in_review(
        client, task_queue, real_worker, deps, smtp_sink, settings):
    gd = GdClient(client, settings)
    raw = technician_input()
    key = f"CREA-MG-{raw['registration']}"
    async with real_worker():
        handle = await start(client, raw, task_queue)
        await in_review(handle)
        smtp_sink.wait_for(1)
        smtp_sink.clear()
        await gd.change_technician_email(key, ANALYST, NEW)
        code_mail, notice = await wait_codes(smtp_sink)
        assert [to_of(m) for m in code_mail] == [NEW] and [to_of(m) for m in notice] == [OLD]
        assert "por um analista da Cemig" in notice[0].get_body(preferencelist=("plain",)).get_content()
        st = await gd.confirm_technician_email(key, ANALYST, code_in(code_mail[0]))
        assert st.status == "CONFIRMED"
        assert await ended(client, key) == "CONFIRMED"
        smtp_sink.clear()
        await handle.execute_update("approve", {"actor": ANALYST})
        result: TechnicianStatus = await handle.result()
    assert result.status == "APPROVED"
    # The approval's three e-mails go to the confirmed address, and the approval's store
    # row does not bring the old one back.
    await smtp_sink.wait_for_async(3)
    assert [list(e.rcpt_tos) for e in smtp_sink.envelopes] == [[NEW]] * 3
    assert deps.store.technician_email(key) == NEW


@pytest.mark.timeskip
async def test_an_expired_code_is_refused_and_changes_nothing(
        client, env, task_queue, real_worker, deps, smtp_sink, settings):
    gd = GdClient(client, settings)
    async with real_worker():
        key = await approved_rt(client, task_queue, deps, smtp_sink)
        st = await gd.change_technician_email(key, rt_actor(key), NEW)
        code_mail, _ = await wait_codes(smtp_sink)
        code = code_in(code_mail[0])
        # 72 h after the request (workflow time): the code expires.
        assert st.expires_at is not None
        await env.sleep(timedelta(hours=72, minutes=1))
        with pytest.raises(GdRefused, match=r"^code: código expirado"):
            await gd.confirm_technician_email(key, rt_actor(key), code)
        assert (await gd.email_change_status(key)).status == "EXPIRED"
        assert await ended(client, key) == "EXPIRED"
    assert deps.store.technician_email(key) == OLD


async def test_a_stranger_rt_a_same_address_and_brute_force_are_refused(
        client, task_queue, real_worker, deps, smtp_sink, settings):
    gd = GdClient(client, settings)
    async with real_worker():
        key = await approved_rt(client, task_queue, deps, smtp_sink)
        stranger = rt_actor("CREA-MG-999999")
        with pytest.raises(GdRefused, match=r"^change_email: actor.council_key deve ser o do responsável técnico") as caught:
            await gd.change_technician_email(key, stranger, NEW)
        assert caught.value.kind == "PartyRefused"
        with pytest.raises(GdRefused, match=r"^email: o novo e-mail é igual ao já cadastrado"):
            await gd.change_technician_email(key, rt_actor(key), OLD.upper())
        with pytest.raises(GdRefused, match=r"email: e-mail inválido"):
            await gd.change_technician_email(key, rt_actor(key), "sem-arroba.example.org")
        with pytest.raises(GdRefused, match=r"email: .*254"):
            await gd.change_technician_email(key, rt_actor(key), "a" * 250 + "@example.org")
        assert smtp_sink.messages == []

        await gd.change_technician_email(key, rt_actor(key), NEW)
        code_mail, _ = await wait_codes(smtp_sink)
        code = code_in(code_mail[0])
        with pytest.raises(GdRefused, match="actor.council_key") as caught:
            await gd.confirm_technician_email(key, stranger, code)
        assert caught.value.kind == "PartyRefused"
        wrong = other_code(code)
        for left in (4, 3, 2, 1):
            with pytest.raises(GdRefused, match=f"restam {left} tentativa"):
                await gd.confirm_technician_email(key, rt_actor(key), wrong)
        with pytest.raises(GdRefused, match="tentativas esgotadas"):
            await gd.confirm_technician_email(key, rt_actor(key), wrong)
        # Locked: even the right code no longer works.
        with pytest.raises(GdRefused, match="tentativas esgotadas"):
            await gd.confirm_technician_email(key, rt_actor(key), code)
        assert await ended(client, key) == "LOCKED"
    assert deps.store.technician_email(key) == OLD
    with deps.store.session(write=False) as s:
        secret = s.exec(select(TechnicianSecret).where(
            TechnicianSecret.technician == key, TechnicianSecret.kind == "email_change_code")).one()
    assert secret.used_at is None and code not in secret.secret_hash


async def test_a_rejected_rt_cannot_change_its_email(client, task_queue, real_worker, deps, smtp_sink, settings):
    gd = GdClient(client, settings)
    raw = technician_input()
    key = f"CREA-MG-{raw['registration']}"
    async with real_worker():
        handle = await start(client, raw, task_queue)
        await in_review(handle)
        await handle.execute_update("reject", {"actor": ANALYST, "reasons": [{"code": "RT-REGISTRO-IRREGULAR"}]})
        await handle.result()
        with pytest.raises(GdRefused, match=r"change_email: não permitido no status REJECTED") as caught:
            await gd.change_technician_email(key, rt_actor(key), NEW)
        assert await ended(client, key) == "IDLE"
    assert caught.value.kind == "StatusRefused"
