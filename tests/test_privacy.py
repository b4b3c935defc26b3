"""Personal data: never in search attributes or logs; never in history with the codec on.

One run on real parts (tests/reliability_helpers.ChaosStack: dev server on a SQLite file,
``python -m worker`` as its own process, SQLite store, SMTP sink) with the AES-GCM codec
switched on by ``GD_CODEC_KEYS`` — in the worker's environment and in this process, the
way the CLI gets it. The run includes RT registrations (CPF, e-mail, phone), requests on
every path, a start refused for a bad CPF, an e-mail the SMTP server refuses (550), a
transient SMTP failure, and a key rotation half-way (``k2`` added in front of ``k1``,
worker restarted).

Then, reading with a client that has NO codec:

- the raw histories (every event, serialized: payload bytes, failure texts, everything)
  hold no CPF/CNPJ/e-mail — neither the exact values the run used nor anything shaped
  like one — and every payload is encrypted except the search attributes;
- payloads written before the rotation carry key id ``k1``, later ones ``k2``; the
  rotated converter reads both; the workflows finish;
- the search attributes (list and describe) and the worker's and server's logs hold none;
- the outbox table holds no address; the stored statuses (request_status) none either.

And the control that proves the scan can fail: a workflow started by a client without the
codec has the CPF in its history in clear, and the scan finds it.

Replay: temporalio's Replayer with worker.data_converter() replays every codec-on history;
without the codec it cannot.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import secrets
import uuid
from typing import Any, Iterator

import pytest
from google.protobuf.message import Message
from sqlmodel import select
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.tables import Outbox, RequestStatus
from codec import CodecError
from models.access import AccessStatus
from models.ids import access_request_id
from tests.access_helpers import request_input
from tests.reliability_helpers import (
    CUSTOMER,
    ChaosStack,
    PersonalData,
    Scenario,
    audit,
    distributor_addresses,
    format_cpf,
    make_cpf,
    pattern_hits,
    plan,
    summary,
)
from workflows.registry import ALL_WORKFLOWS


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def payloads(message: Message) -> Iterator[Payload]:
    """Every Payload inside a protobuf message (maps and repeated fields included)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type == value_field.TYPE_MESSAGE:
                for item in value.values():
                    yield from payloads(item)
        elif field.is_repeated:
            for item in value:
                yield from payloads(item)
        else:
            yield from payloads(value)


def search_attribute_payloads(message: Message) -> Iterator[Payload]:
    """The payloads of search attributes (the server must read them: never encrypted)."""
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.full_name == "temporal.api.common.v1.SearchAttributes":
            yield from value.indexed_fields.values()
        elif field.message_type.GetOptions().map_entry:
            continue
        elif field.is_repeated:
            for item in value:
                yield from search_attribute_payloads(item)
        else:
            yield from search_attribute_payloads(value)


def sdk_bookkeeping(event: Any) -> Iterator[Payload]:
    """Marker details the SDK core writes itself, never through the codec: a local
    activity's sequence/attempt/type/time (its *result* is a separate, encrypted detail)
    and a patch marker's id. No input or output of ours is in them."""
    if not event.HasField("marker_recorded_event_attributes"):
        return
    marker = event.marker_recorded_event_attributes
    for name, detail in marker.details.items():
        if name != "result":
            yield from detail.payloads


def failures(message: Message) -> Iterator[Failure]:
    """Every Failure inside a protobuf message (an activity's last failure, an update's
    outcome, a workflow task failure...), causes included."""
    if isinstance(message, Failure):
        yield message
        if message.HasField("cause"):
            yield from failures(message.cause)
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE or field.message_type.GetOptions().map_entry:
            continue
        for item in (value if field.is_repeated else [value]):
            yield from failures(item)


def history_bytes(history: WorkflowHistory) -> bytes:
    return b"".join(event.SerializeToString() for event in history.events)


@pytest.mark.timeout(240)
async def test_no_personal_data_in_history_search_attributes_logs_or_outbox(tmp_path, monkeypatch):
    k1, k2 = new_key(), new_key()
    monkeypatch.setenv("GD_CODEC_KEYS", f"k1:{k1}")
    pii = PersonalData()
    techs, lcs = plan(4, technicians=2, seed=4242, tag="lgpd", pii=pii)
    async with ChaosStack(tmp_path) as stack:
        allowed = distributor_addresses(stack.settings)
        plain_client = await Client.connect(stack.server.target, namespace=stack.settings.namespace,
                                             data_converter=pydantic_data_converter)
        scenario = Scenario(stack, techs, lcs)
        scenario.gates = {"approve": asyncio.Event()}
        stack.sink.fail_next = 2  # two transient SMTP failures (activity failures, logged)
        work = asyncio.create_task(scenario.run())

        # A start refused for a bad CPF: the raw input (with an e-mail) is in history.
        bad_cpf = format_cpf(make_cpf(987654321))[:-1] + "0"
        refused_email = "recusado.lgpd@exemplo.com.br"
        pii.add(bad_cpf, refused_email)
        refused_raw = request_input(f"lgpd-refused-{uuid.uuid4().hex[:6]}")
        refused_raw["customer"] = {**refused_raw["customer"], "document": bad_cpf, "email": refused_email}
        refused_id = access_request_id(refused_raw["request_id"])
        await scenario.driver.start("AccessRequest", refused_raw, refused_id, AccessStatus)

        # Phase k1: everything up to the approval.
        while scenario.waiting["approve"] < len(lcs):
            assert not work.done(), work.exception() if work.done() else None
            await asyncio.sleep(0.1)
        st = await scenario.driver.wait_status(refused_id, AccessStatus, lambda s: s.status != "RECEIVED")
        assert st.status == "REFUSED"

        # An e-mail the SMTP server refuses (550), on a request withdrawn afterwards.
        bounced_email = "inexistente.lgpd@exemplo.com.br"
        pii.add(bounced_email)
        stack.sink.refuse_recipients = {bounced_email}
        bounced_raw = request_input(f"lgpd-bounce-{uuid.uuid4().hex[:6]}",
                                    documents=[scenario.docs["commercial_id"]])
        bounced_raw["technician"] = lcs[0].technician
        bounced_raw["customer"] = {**bounced_raw["customer"], "email": bounced_email}
        bounced_id = access_request_id(bounced_raw["request_id"])
        await scenario.driver.start("AccessRequest", bounced_raw, bounced_id, AccessStatus)
        await scenario.driver.wait_status(bounced_id, AccessStatus, lambda s: s.status == "AWAITING_APR")
        await scenario.driver.update(bounced_id, "withdraw", {"actor": CUSTOMER, "reason": "desistência"},
                                     AccessStatus)
        bounced = await scenario.driver.result(bounced_id, AccessStatus)
        assert any(n.status == "refused" or "recusado" in (n.detail or "") for n in bounced.notifications), bounced.notifications

        # Rotation: k2 encrypts from now on, k1 still decrypts. Worker and client restart.
        await stack.stop_worker()
        monkeypatch.setenv("GD_CODEC_KEYS", f"k2:{k2},k1:{k1}")
        from worker import data_converter

        stack._client = await Client.connect(stack.server.target, namespace=stack.settings.namespace,
                                             data_converter=data_converter())
        await stack.start_worker()
        scenario.gates["approve"].set()
        await asyncio.wait_for(work, timeout=120)

        report = audit(stack, techs, lcs, others=[bounced])
        assert not report.lost and not report.duplicates and not report.problems, report

        workflow_ids = [t.workflow_id for t in techs] + [lc.workflow_id for lc in lcs] + [refused_id, bounced_id]

        # --- histories, read without the codec ---------------------------------------
        histories: dict[str, WorkflowHistory] = {}
        key_ids: set[bytes] = set()
        unencrypted: list[str] = []
        for workflow_id in workflow_ids:
            history = await plain_client.get_workflow_handle(workflow_id).fetch_history()
            histories[workflow_id] = history
            raw = history_bytes(history)
            assert not pii.found_in(raw), f"{workflow_id}: {pii.found_in(raw)} in history"
            assert not pattern_hits(raw, allowed_emails=allowed), f"{workflow_id}: {pattern_hits(raw)}"
            for event in history.events:
                allowed_plain = {p.SerializeToString() for p in search_attribute_payloads(event)}
                allowed_plain |= {p.SerializeToString() for p in sdk_bookkeeping(event)}
                for p in payloads(event):
                    if p.metadata.get("encoding") == b"binary/encrypted":
                        key_ids.add(p.metadata["encryption-key-id"])
                    elif p.SerializeToString() not in allowed_plain:
                        unencrypted.append(
                            f"{workflow_id} event {event.event_id} ({EventType.Name(event.event_type)}): "
                            f"{dict(p.metadata)} {p.data[:80]!r}")
        assert not unencrypted, unencrypted[:5]
        assert key_ids == {b"k1", b"k2"}, key_ids  # written before and after the rotation

        # --- every failure text in history is encrypted ----------------------------------
        # The two transient SMTP failures (and any other) reach history as an activity's
        # last failure: message and stack trace moved into an encrypted attribute.
        found_failures = [f for h in histories.values() for e in h.events for f in failures(e)]
        assert len(found_failures) >= 2, "the run's SMTP failures are not in any history"
        clear = [(f.message, f.stack_trace[:80]) for f in found_failures
                 if f.message != "Encoded failure" or f.stack_trace
                 or f.encoded_attributes.metadata.get("encoding") != b"binary/encrypted"]
        assert not clear, clear[:5]

        # --- an exported history stays encrypted (gd audit export, with the codec on) -----
        from audit import export as exports

        exported_path = tmp_path / "export.json.gz"
        (await exports.fetch_chain(stack.client, lcs[0].workflow_id)).write(exported_path)
        exported_bytes = gzip.decompress(exported_path.read_bytes())
        assert not pii.found_in(exported_bytes), pii.found_in(exported_bytes)
        assert not pattern_hits(exported_bytes, allowed_emails=allowed)
        exported = exports.read(exported_path)
        exported_payloads = [p for h in exported.histories() for e in h.events for p in payloads(e)]
        exported_encrypted = sum(p.metadata.get("encoding") == b"binary/encrypted" for p in exported_payloads)
        assert exported_encrypted == sum(p.metadata.get("encoding") == b"binary/encrypted"
                                         for e in histories[lcs[0].workflow_id].events for p in payloads(e)) > 0

        # --- search attributes: visibility list and describe ---------------------------
        listed = 0
        async for execution in plain_client.list_workflows(f'TaskQueue = "{stack.task_queue}"'):
            listed += 1
            blob = str(execution.search_attributes).encode() + execution.raw_info.SerializeToString()
            assert not pii.found_in(blob) and not pattern_hits(blob, allowed_emails=allowed), execution.id
        assert listed >= len(workflow_ids)
        for workflow_id in workflow_ids:
            description = await plain_client.get_workflow_handle(workflow_id).describe()
            blob = description.raw_description.SerializeToString()
            assert not pii.found_in(blob), f"{workflow_id}: {pii.found_in(blob)} in describe"
            assert not pattern_hits(blob, allowed_emails=allowed), workflow_id

        # --- logs -------------------------------------------------------------------------
        worker_log = stack.worker_log.read_bytes()
        server_log = stack.server.server_log.read_bytes()
        assert b"Completing activity as failed" in worker_log  # the failures were logged...
        for name, log in (("worker", worker_log), ("server", server_log)):
            assert not pii.found_in(log), f"{name} log: {pii.found_in(log)}"  # ...without PII
            assert not pattern_hits(log, allowed_emails=allowed), f"{name} log: {pattern_hits(log, allowed_emails=allowed)}"

        # --- outbox ---------------------------------------------------------------------------
        with stack.store.session(write=False) as s:
            rows = s.exec(select(Outbox)).all()
        outbox = "\n".join(repr(row.model_dump()) for row in rows).encode()
        assert rows and any(row.detail for row in rows)  # the 550 is on record...
        assert not pii.found_in(outbox) and not pattern_hits(outbox, allowed_emails=allowed), outbox[:500]

        # --- the stored statuses (request_status: what the API's status GET reads) --------
        with stack.store.session(write=False) as s:
            statuses = s.exec(select(RequestStatus)).all()
        assert {row.workflow_id for row in statuses} >= {lc.workflow_id for lc in lcs} | {bounced_id}
        stored = "\n".join(json.dumps(row.status, ensure_ascii=False) for row in statuses).encode()
        assert not pii.found_in(stored) and not pattern_hits(stored, allowed_emails=allowed), stored[:500]

        # --- replay ----------------------------------------------------------------------------
        replayer = Replayer(workflows=list(ALL_WORKFLOWS), data_converter=data_converter())
        for workflow_id, history in histories.items():
            await replayer.replay_workflow(history)
        no_codec = Replayer(workflows=list(ALL_WORKFLOWS), data_converter=pydantic_data_converter)
        blind = await no_codec.replay_workflow(histories[lcs[0].workflow_id], raise_on_replay_failure=False)
        assert blind.replay_failure is not None
        assert "binary/encrypted" in str(blind.replay_failure), repr(blind.replay_failure)

        # --- a wrong key is a clear error -------------------------------------------------------
        monkeypatch.setenv("GD_CODEC_KEYS", f"k2:{new_key()},k1:{k1}")
        wrong = await Client.connect(stack.server.target, namespace=stack.settings.namespace,
                                     data_converter=data_converter())
        with pytest.raises(CodecError, match="chave 'k2': chave errada"):
            await wrong.get_workflow_handle(lcs[0].workflow_id, result_type=AccessStatus).result()

        # --- control: without the codec the same scan does find the data --------------------
        control_cpf = format_cpf(make_cpf(111222333))
        control_raw = request_input(f"lgpd-control-{uuid.uuid4().hex[:6]}")
        control_raw["customer"] = {**control_raw["customer"], "document": control_cpf}
        control = await plain_client.start_workflow(
            "AccessRequest", control_raw, id=access_request_id(control_raw["request_id"]),
            task_queue=stack.task_queue)
        control_bytes = history_bytes(await control.fetch_history())
        await control.terminate(reason="control only")
        control_pii = PersonalData()
        control_pii.add(control_cpf)
        assert control_pii.found_in(control_bytes) and pattern_hits(control_bytes).get("cpf")

        print(summary(
            test="privacy", workflows=len(workflow_ids), events=sum(len(h.events) for h in histories.values()),
            payload_key_ids=sorted(k.decode() for k in key_ids), pii_values=len(pii.values),
            pii_in_history=0, pii_in_search_attributes=0, pii_in_logs=0, pii_in_outbox=0,
            failures_encrypted=len(found_failures), exported_payloads_encrypted=exported_encrypted,
            replayed=len(histories), refused_start=st.status))


async def test_refusal_messages_from_the_store_hide_their_parameters(tmp_path):
    """A failed statement's error text is what the activity fails with (and the worker
    logs). SQLAlchemy puts the statement's parameters in that text unless the engine hides
    them — which would copy an RT's e-mail into logs and histories on any database error."""
    from sqlalchemy.exc import IntegrityError

    from activities.store import Store
    from activities.tables import TechnicianRecord
    from datetime import datetime, timezone

    store = Store(f"sqlite:///{tmp_path / 'gd.db'}")
    store.create_schema()
    email = "rt.vazamento@engenharia.example.com.br"
    row = dict(key="CREA-MG-55555", workflow_id="gd-technician-CREA-MG-55555", status="APPROVED",
               updated_at=datetime.now(timezone.utc), email=email)
    with store.session() as s:
        s.add(TechnicianRecord(**row))
    with pytest.raises(IntegrityError) as caught:
        with store.session() as s:
            s.add(TechnicianRecord(**row))  # same key: the INSERT fails
    store.dispose()
    assert email not in str(caught.value), str(caught.value)[:400]
