"""A small typed client of the three processes, for the `gd` CLI and for backend teams.

One object wraps a temporalio ``Client`` built by ``worker.connect`` (same data
converter, so a payload codec added there applies here too)::

    gd = await GdClient.connect()                      # GD_* settings
    st = await gd.start_request(payload)               # AccessStatus, REFUSED included
    st = await gd.register_apr("req-1", "technician:rt.joao", st.service_note,
                               st.protocol, [gd.upload("projeto.pdf", "electrical_project")])
    rows = await gd.list_requests(status="UNDER_ANALYSIS", overdue=True)

Every method takes a ``request_id`` or the full workflow id. Bad input is refused here,
before anything reaches the server, with every problem at once; a refusal by the
workflow's validator comes back as the same exception carrying the validator's pt-BR
message:

- ``GdRefused(ValueError)``: ``.message`` (one pt-BR line) and ``.problems``;
- ``GdNotFound(GdRefused)``: no such process;
- ``GdUnavailable(RuntimeError)``: no Temporal server, or no worker answering.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any, Literal, TypeVar, Union

from pydantic import BaseModel
from temporalio.api.common.v1 import WorkflowExecution as ExecutionRef
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, DescribeWorkflowExecutionRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from docstore import Documents
from gd_errors import GdNotFound, GdRefused, GdUnavailable, refused, refusing
from listing import (
    KINDS,
    RequestSummary,
    build_list_query,
    sort_by_due,
    summary_from,
)
from models import ids
from models.access import (
    REANALYSIS_MOTIVE,
    AccessRequestInput,
    AccessStatus,
    AnswerInquiryArgs,
    ApproveArgs,
    AttachCorrectionsArgs,
    DeclareWorksArgs,
    PauseClockArgs,
    RecordInspectionArgs,
    RegisterAprArgs,
    ReproveArgs,
    RequestInspectionArgs,
    RequestReanalysisArgs,
    SuspendArgs,
    WithdrawArgs,
    input_digest,
)
from models.acks import UpdateAck
from models.beneficiaries import (
    BeneficiaryInput,
    BeneficiaryStatus,
    ConfirmArgs,
    RejectArgs,
)
from models.common import (
    ROLES,
    Actor,
    ActorArgs,
    DocumentRef,
    Reason,
    parse_or_problems,
)
from models.names import Queries, Updates, Workflows
from models.settings import GdSettings, get_settings
from models.technician import (
    ChangeEmailArgs,
    ConfirmEmailArgs,
    EmailChangeStatus,
    TechnicianApproveArgs,
    TechnicianInput,
    TechnicianRejectArgs,
    TechnicianStatus,
)
from worker import connect as worker_connect

__all__ = [
    "Documents", "GdClient", "GdNotFound", "GdRefused", "GdUnavailable", "RequestSummary",
    "any_workflow_id", "beneficiaries_workflow_id", "build_list_query", "intake_done",
    "parse_actor", "parse_reason", "parse_technician_key", "poll_pauses", "request_workflow_id",
    "sort_by_due", "technician_workflow_id", "workflow_type_of",
]  # fmt: skip

AnyStatus = Union[AccessStatus, TechnicianStatus, BeneficiaryStatus]
ActorLike = Union[Actor, dict, str]
ReasonLike = Union[Reason, dict, str]
DocLike = Union[DocumentRef, dict]
S = TypeVar("S", bound=BaseModel)

STATUS_TYPES: dict[str, type[BaseModel]] = {
    Workflows.ACCESS_REQUEST: AccessStatus,
    Workflows.TECHNICIAN_REGISTRATION: TechnicianStatus,
    Workflows.BENEFICIARY_REGISTRATION: BeneficiaryStatus,
}

START_TIMEOUT_S = 30.0  # intake answers in well under a second with a worker running
QUERY_TIMEOUT = timedelta(seconds=10)
UPDATE_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 10.0  # store writes and e-mails after an update; usually ~100 ms
# Status polling: every query is a round trip to the worker (a workflow task), so the
# pause grows from 50 ms by half each time, up to 250 ms.
POLL_FIRST_S, POLL_FACTOR, POLL_MAX_S = 0.05, 1.5, 0.25


def poll_pauses() -> Iterator[float]:
    """The pauses between two status queries: 0.05, 0.075, 0.1125, … then 0.25 s."""
    pause = POLL_FIRST_S
    while True:
        yield pause
        pause = min(POLL_MAX_S, pause * POLL_FACTOR)


# --- ids as a person types them (models.ids), refused as GdRefused ------------------------

parse_technician_key = refusing(ids.parse_technician_key)
workflow_type_of = refusing(ids.workflow_type_of)
request_workflow_id = refusing(ids.request_workflow_id)
beneficiaries_workflow_id = refusing(ids.beneficiaries_workflow_id)
technician_workflow_id = refusing(ids.technician_workflow_id)
any_workflow_id = refusing(ids.any_workflow_id)


# --- actors and reasons as a person types them -------------------------------------------

def parse_actor(value: ActorLike) -> Actor:
    """An ``Actor`` from a model, a dict or ``"role:id"`` (GD_ACTOR's form)."""
    if isinstance(value, Actor):
        return value
    if isinstance(value, str):
        role, sep, actor_id = value.partition(":")
        if not sep or not role or not actor_id:
            raise GdRefused(
                f"quem age deve ter a forma papel:id (ex.: analyst:ana.silva), não {value!r}"
            )
        value = {"id": actor_id.strip(), "role": role.strip()}
    parsed, problems = parse_or_problems(Actor, value, "actor")
    if problems:
        if any(p.field == "actor.role" for p in problems):
            raise GdRefused(f"papel desconhecido; aceitos: {', '.join(ROLES)}", problems)
        raise refused("quem age", problems)
    assert parsed is not None
    return parsed


def parse_reason(value: ReasonLike) -> Reason:
    """A ``Reason`` from a model, a dict or ``"CODE"`` / ``"CODE:texto"``."""
    if isinstance(value, Reason):
        return value
    if isinstance(value, str):
        code, _, text = value.partition(":")
        value = {"code": code.strip(), "text": text.strip() or None}
    parsed, problems = parse_or_problems(Reason, value, "reason")
    if problems:
        raise refused("motivo inválido", problems)
    assert parsed is not None
    return parsed


def _parse(model: type[S], raw: Any, prefix: str) -> S:
    parsed, problems = parse_or_problems(model, raw)
    if problems:
        raise refused(prefix, problems)
    assert parsed is not None
    return parsed


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def _as_dict(value: BaseModel | dict) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


# --- the client --------------------------------------------------------------------------


class GdClient:
    """Start, drive, read and list the GD processes on one Temporal connection."""

    def __init__(self, client: Client, settings: GdSettings | None = None):
        self.client = client
        self.settings = settings or get_settings()
        self.documents = Documents(self.settings)

    @classmethod
    async def connect(cls, settings: GdSettings | None = None) -> "GdClient":
        """Connect with the worker's data converter; ``GdUnavailable`` if nobody answers."""
        settings = settings or get_settings()
        try:
            client = await worker_connect(settings)
        except ValueError as error:  # codec.CodecConfigError: malformed key variables
            raise GdRefused(f"configuração inválida: {error}") from error
        except RuntimeError as error:
            raise GdUnavailable(
                f"não foi possível conectar ao Temporal em {settings.temporal_address} "
                "(rode `make run`)"
            ) from error
        return cls(client, settings)

    # documents ------------------------------------------------------------------------

    def upload(self, path: str | os.PathLike[str] | bytes, kind: str, filename: str | None = None) -> DocumentRef:
        return self.documents.upload(path, kind, filename)

    def document(self, sha256: str, kind: str | None = None) -> DocumentRef:
        return self.documents.get(sha256, kind)

    # starting ------------------------------------------------------------------------

    async def start_request(self, inp: AccessRequestInput | dict) -> AccessStatus:
        """Start a consulta or solicitação (or find the one with that request_id) and return
        its status once intake answered — ``REFUSED`` with every reason included."""
        raw = _as_dict(inp)
        parsed = _parse(AccessRequestInput, raw, "entrada recusada")
        workflow_id = ids.access_request_id(parsed.request_id)
        await self._start(
            Workflows.ACCESS_REQUEST, raw, workflow_id, reuse=WorkflowIDReusePolicy.REJECT_DUPLICATE
        )
        status = await self._wait_status(
            workflow_id, AccessStatus, lambda s: s.status != "RECEIVED"
        )
        if status.input_digest and status.input_digest != input_digest(parsed):
            # The id is the caller's idempotency key: the same key with another body is a
            # mistake to report, not a request to answer with someone else's process.
            raise GdRefused(
                f"request_id: '{parsed.request_id}' já foi usado para outra solicitação com "
                f"conteúdo diferente (processo {workflow_id}, status {status.status})"
            )
        return status

    async def start_technician(self, inp: TechnicianInput | dict) -> TechnicianStatus:
        """Register an RT; the id comes from the *normalised* council, UF and registration.
        A rejected RT registers again under the same id (a new run)."""
        parsed = _parse(TechnicianInput, _as_dict(inp), "cadastro recusado")
        workflow_id = ids.technician_id(parsed.council, parsed.uf, parsed.registration)
        await self._start(
            Workflows.TECHNICIAN_REGISTRATION, _dump(parsed), workflow_id, reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE
        )
        return await self._wait_status(workflow_id, TechnicianStatus, intake_done)

    async def start_beneficiaries(self, inp: BeneficiaryInput | dict) -> BeneficiaryStatus:
        """Register the UCs that receive the credits of a connected generator."""
        parsed = _parse(BeneficiaryInput, _as_dict(inp), "cadastramento recusado")
        workflow_id = ids.beneficiaries_id(parsed.request_id)
        await self._start(
            Workflows.BENEFICIARY_REGISTRATION, _dump(parsed), workflow_id, reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE
        )
        return await self._wait_status(workflow_id, BeneficiaryStatus, intake_done)

    async def _start(self, workflow: str, raw: Any, workflow_id: str, *, reuse: WorkflowIDReusePolicy) -> None:
        try:
            await self.client.start_workflow(
                workflow,
                raw,
                id=workflow_id,
                task_queue=self.settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=reuse,
            )
        except WorkflowAlreadyStartedError:
            pass  # closed already (same idempotency key): its status is the answer
        except RPCError as error:
            raise self._rpc_error(error, workflow_id) from error

    async def _wait_status(self, workflow_id: str, model: type[S], done: Callable[[S], bool]) -> S:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + START_TIMEOUT_S
        pauses = poll_pauses()
        while True:
            current = await self._query(workflow_id, model)
            if done(current):
                return current
            if loop.time() > give_up:
                raise GdUnavailable(
                    f"{workflow_id} foi iniciado, mas a triagem não respondeu em "
                    f"{START_TIMEOUT_S:.0f} s: o worker da fila {self.settings.task_queue} está no ar? "
                    "(rode `make run` ou `gd worker`)"
                )
            await asyncio.sleep(next(pauses))

    # reading --------------------------------------------------------------------------

    async def status(self, workflow_id: str) -> AnyStatus:
        """The status of any process, typed by its workflow type (from the id)."""
        workflow_id = any_workflow_id(workflow_id)
        return await self._query(workflow_id, STATUS_TYPES[workflow_type_of(workflow_id)])  # type: ignore[return-value]

    async def request_status(self, request: str) -> AccessStatus:
        return await self._query(request_workflow_id(request), AccessStatus)

    async def technician_status(self, technician: str) -> TechnicianStatus:
        return await self._query(technician_workflow_id(technician), TechnicianStatus)

    async def beneficiaries_status(self, request: str) -> BeneficiaryStatus:
        return await self._query(beneficiaries_workflow_id(request), BeneficiaryStatus)

    async def _query(self, workflow_id: str, model: type[S]) -> S:
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            return await handle.query(Queries.STATUS, result_type=model, rpc_timeout=QUERY_TIMEOUT)
        except RPCError as error:
            raise self._rpc_error(error, workflow_id) from error

    async def settle(self, workflow_id: str, timeout: float = SETTLE_TIMEOUT_S) -> AnyStatus:
        """The status once queued side effects (store, e-mails) ran, or after ``timeout``."""
        workflow_id = any_workflow_id(workflow_id)
        kind = workflow_type_of(workflow_id)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        pauses = poll_pauses()
        while True:
            current = await self.status(workflow_id)
            if kind == Workflows.ACCESS_REQUEST:
                if current.pending_effects == 0:  # type: ignore[union-attr]
                    return current
            elif current.status in ("RECEIVED", "PENDING_REVIEW") or await self._closed(workflow_id):
                return current
            if loop.time() > give_up:
                return current
            await asyncio.sleep(next(pauses))

    async def _describe_status(self, workflow_id: str) -> int | None:
        """The execution status, read raw (None if there is no such workflow). Raw because
        a server may hold an unset Datetime attribute as a null payload that the typed
        ``describe()`` fails to decode (the time-skipping test server does)."""
        try:
            raw = await self.client.workflow_service.describe_workflow_execution(
                DescribeWorkflowExecutionRequest(
                    namespace=self.client.namespace, execution=ExecutionRef(workflow_id=workflow_id)
                )
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise self._rpc_error(error, workflow_id) from error
        return raw.workflow_execution_info.status

    async def _closed(self, workflow_id: str) -> bool:
        status = await self._describe_status(workflow_id)
        return status is not None and status != WorkflowExecutionStatus.RUNNING.value

    async def exists(self, workflow_id: str) -> bool:
        return await self._describe_status(any_workflow_id(workflow_id)) is not None

    async def worker_ready(self) -> bool:
        """True when some worker polls the task queue (a start would be executed)."""
        try:
            resp = await self.client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=self.settings.namespace,
                    task_queue=TaskQueue(name=self.settings.task_queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
        except RPCError as error:
            raise self._rpc_error(error, self.settings.task_queue) from error
        return bool(resp.pollers)

    # listing --------------------------------------------------------------------------

    async def list_requests(
        self,
        status: str | Iterable[str] | None = None,
        overdue: bool = False,
        due_within_days: int | None = None,
        technician: str | None = None,
        generation_class: str | None = None,
        kind: str | Iterable[str] | None = None,
        limit: int = 200,
        *,
        next_actor: str | None = None,
        open_only: bool = False,
        on_row: Callable[[int], None] | None = None,
    ) -> list[RequestSummary]:
        """Processes from a visibility query on the Gd* search attributes, by due date
        (the dev server's SQL visibility refuses ORDER BY, so sorting happens here)."""
        query = build_list_query(
            status=status,
            overdue=overdue,
            due_within_days=due_within_days,
            technician=technician,
            generation_class=generation_class,
            kind=kind,
            next_actor=next_actor,
            open_only=open_only,
        )
        rows: list[RequestSummary] = []
        try:
            async for execution in self.client.list_workflows(query, limit=max(1, limit)):
                rows.append(summary_from(execution))
                if on_row is not None:
                    on_row(len(rows))
        except RPCError as error:
            raise self._rpc_error(error, "visibilidade") from error
        return sort_by_due(rows)

    async def analyst_queue(
        self,
        generation_class: str | None = None,
        overdue: bool = False,
        due_within_days: int | None = None,
        technician: str | None = None,
        limit: int = 200,
        on_row: Callable[[int], None] | None = None,
    ) -> list[RequestSummary]:
        """What waits for an analyst: requests, inquiries, RT and beneficiary registrations.

        Requests and inquiries come from the store's read model when this machine reaches
        the store (one indexed statement, by due date; ``listing.py`` says how far behind
        the workflows it can be), the registrations from visibility (few, always)."""
        filters = dict(overdue=overdue, due_within_days=due_within_days, technician=technician,
                       generation_class=generation_class, next_actor="analyst", open_only=True)
        stored = await asyncio.to_thread(self._store_rows, limit, **filters)
        if stored is None:
            return await self.list_requests(kind=KINDS, limit=limit, on_row=on_row, **filters)
        others = await self.list_requests(kind=("technician", "beneficiaries"), limit=limit, **filters)
        rows = sort_by_due([*stored, *others])[: max(1, limit)]
        if on_row is not None:
            on_row(len(rows))
        return rows

    def _store_rows(self, limit: int, **filters: Any) -> list[RequestSummary] | None:
        """Requests and inquiries from the store; None when it cannot be read from here."""
        from listing import store_select, summary_from_record

        statement = store_select(**filters).limit(max(1, limit))
        url = self.settings.database_url
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            return None  # no store on this machine (and none created by asking)
        try:
            from activities.store import Store

            store = Store(self.settings.database_url)
        except Exception:  # noqa: BLE001 - no store here: visibility answers
            return None
        try:
            with store.connection(write=False) as conn:
                return [summary_from_record(row) for row in conn.execute(statement).mappings()]
        except Exception:  # noqa: BLE001 - a store without the table (another host's), unreachable
            return None
        finally:
            store.dispose()

    # updates: AccessRequest -----------------------------------------------------------

    async def register_apr(
        self,
        request: str,
        actor: ActorLike,
        service_note: str,
        protocol: str,
        documents: Sequence[DocLike] = (),
    ) -> AccessStatus:
        """RT: NS and Protocolo registered in APR Web, with the technical documents."""
        return await self._access(
            request, Updates.REGISTER_APR, RegisterAprArgs, actor,
            service_note=service_note, protocol=protocol, documents=self._docs(documents),
        )  # fmt: skip

    async def approve(
        self,
        request: str,
        actor: ActorLike,
        parecer: DocLike,
        requires_works: bool = False,
        notes: str | None = None,
    ) -> AccessStatus:
        """Analyst: parecer de acesso issued (a PDF of kind ``parecer``)."""
        return await self._access(
            request, Updates.APPROVE, ApproveArgs, actor,
            parecer=_as_dict(parecer), requires_works=requires_works, notes=notes,
        )  # fmt: skip

    async def suspend(self, request: str, actor: ActorLike, pendencies: Sequence[ReasonLike]) -> AccessStatus:
        """Analyst: pendências listed (catalogue codes); the requester has 30 days."""
        return await self._access(request, Updates.SUSPEND, SuspendArgs, actor, pendencies=self._reasons(pendencies))

    async def reprove(self, request: str, actor: ActorLike, reasons: Sequence[ReasonLike]) -> AccessStatus:
        return await self._access(request, Updates.REPROVE, ReproveArgs, actor, reasons=self._reasons(reasons))

    async def attach_corrections(self, request: str, actor: ActorLike, documents: Sequence[DocLike]) -> AccessStatus:
        """RT: corrected documents attached in APR Web after a suspension or reproval."""
        return await self._access(
            request, Updates.ATTACH_CORRECTIONS, AttachCorrectionsArgs, actor, documents=self._docs(documents)
        )

    async def request_reanalysis(
        self,
        request: str,
        actor: ActorLike,
        reproved_service_note: str,
        documents: Sequence[DocLike] = (),
        motive: str = REANALYSIS_MOTIVE,
    ) -> AccessStatus:
        """Requester: a new NS linked to the reproved one, and a new analysis cycle."""
        return await self._access(
            request, Updates.REQUEST_REANALYSIS, RequestReanalysisArgs, actor,
            reproved_service_note=reproved_service_note, motive=motive,
            documents=self._docs(documents),
        )  # fmt: skip

    async def declare_works(self, request: str, actor: ActorLike, reason: str) -> AccessStatus:
        return await self._access(request, Updates.DECLARE_WORKS, DeclareWorksArgs, actor, reason=reason)

    async def pause_clock(self, request: str, actor: ActorLike, reason: str) -> AccessStatus:
        return await self._access(request, Updates.PAUSE_CLOCK, PauseClockArgs, actor, reason=reason)

    async def resume_clock(self, request: str, actor: ActorLike) -> AccessStatus:
        return await self._access(request, Updates.RESUME_CLOCK, ActorArgs, actor)

    async def answer_inquiry(
        self, request: str, actor: ActorLike, answer: str, documents: Sequence[DocLike] = ()
    ) -> AccessStatus:
        return await self._access(
            request, Updates.ANSWER_INQUIRY, AnswerInquiryArgs, actor, answer=answer,
            documents=self._docs(documents),
        )  # fmt: skip

    async def request_inspection(self, request: str, actor: ActorLike, documents: Sequence[DocLike] = ()) -> AccessStatus:
        return await self._access(
            request, Updates.REQUEST_INSPECTION, RequestInspectionArgs, actor, documents=self._docs(documents)
        )

    async def record_inspection(
        self,
        request: str,
        actor: ActorLike,
        result: Literal["approved", "reproved"],
        findings: Sequence[str] = (),
        report: DocLike | None = None,
    ) -> AccessStatus:
        return await self._access(
            request, Updates.RECORD_INSPECTION, RecordInspectionArgs, actor, result=result,
            findings=list(findings), report=_as_dict(report) if report is not None else None,
        )  # fmt: skip

    async def withdraw(self, request: str, actor: ActorLike, reason: str) -> AccessStatus:
        return await self._access(request, Updates.WITHDRAW, WithdrawArgs, actor, reason=reason)

    # updates: TechnicianRegistration and BeneficiaryRegistration ----------------------

    async def approve_technician(self, technician: str, actor: ActorLike) -> TechnicianStatus:
        return await self._update(
            technician_workflow_id(technician), Updates.APPROVE, TechnicianApproveArgs,
            TechnicianStatus, actor,
        )  # fmt: skip

    async def reject_technician(self, technician: str, actor: ActorLike, reasons: Sequence[ReasonLike]) -> TechnicianStatus:
        return await self._update(
            technician_workflow_id(technician), Updates.REJECT, TechnicianRejectArgs,
            TechnicianStatus, actor, reasons=self._reasons(reasons),
        )  # fmt: skip

    # --- the RT's e-mail corrected (workflows/email_change.py) ---------------------------

    async def change_technician_email(self, technician: str, actor: ActorLike, email: str,
                                      update_id: str | None = None) -> EmailChangeStatus:
        """Ask to change the RT's e-mail: a code goes to ``email``, a notice to the current
        address; nothing changes until ``confirm_technician_email``. Starts the RT's
        TechnicianEmailChange (or joins the pending one, whose code it replaces).

        ``update_id`` (the HTTP ``Idempotency-Key``, a web form's nonce) makes a retry
        answer the first outcome without a second code: the server keeps one update per
        id in a run, and a run that has ended (confirmed, expired) is asked first."""
        key = parse_technician_key(technician).key
        args = _dump(_parse(ChangeEmailArgs, {"actor": _dump(parse_actor(actor)), "email": email},
                            Updates.CHANGE_EMAIL))
        workflow_id = ids.email_change_id(key)
        if (first := await self._email_update_outcome(workflow_id, update_id)) is not None:
            return first
        for attempt in (1, 2):
            try:
                handle = await self.client.start_workflow(
                    Workflows.TECHNICIAN_EMAIL_CHANGE, key, id=workflow_id,
                    task_queue=self.settings.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE)
                return await self._email_update(handle, Updates.CHANGE_EMAIL, args, update_id)
            except RPCError as error:
                # The run we joined ended between the start and the update: start anew once.
                if error.status != RPCStatusCode.NOT_FOUND or attempt == 2:
                    raise self._rpc_error(error, workflow_id) from error
        raise AssertionError("unreachable")

    async def confirm_technician_email(self, technician: str, actor: ActorLike, code: str,
                                       update_id: str | None = None) -> EmailChangeStatus:
        """Confirm the RT's new e-mail with the code it received there (``update_id``: as
        in ``change_technician_email``)."""
        key = parse_technician_key(technician).key
        args = _dump(_parse(ConfirmEmailArgs, {"actor": _dump(parse_actor(actor)), "code": code},
                            Updates.CONFIRM_EMAIL))
        workflow_id = ids.email_change_id(key)
        if (first := await self._email_update_outcome(workflow_id, update_id)) is not None:
            return first
        try:
            return await self._email_update(self.client.get_workflow_handle(workflow_id),
                                            Updates.CONFIRM_EMAIL, args, update_id)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise self._rpc_error(error, workflow_id) from error
        # Nothing waits: say why (the last change expired, was locked or confirmed).
        try:
            last = await self._query(workflow_id, EmailChangeStatus)
        except GdNotFound:
            last = None
        if last is not None and last.status == "EXPIRED":
            message = "code: código expirado (vale 72 h); nada mudou; peça uma nova troca (change_email)"
        elif last is not None and last.status == "LOCKED":
            message = "code: tentativas esgotadas; nada mudou; peça uma nova troca (change_email)"
        else:
            message = f"{Updates.CONFIRM_EMAIL}: nenhuma troca de e-mail aguardando confirmação para {key}"
        refusal = GdRefused(message)
        refusal.kind = "StatusRefused" if last is None or last.status not in ("EXPIRED", "LOCKED") else "InputRefused"  # type: ignore[attr-defined]
        raise refusal

    async def _email_update_outcome(self, workflow_id: str, update_id: str | None) -> EmailChangeStatus | None:
        """The outcome of update ``update_id`` in the RT's latest change run, if that run
        already has it (accepted: its status; refused: the same GdRefused); else None
        (always None without an ``update_id``: nothing to look up)."""
        if update_id is None:
            return None
        handle = self.client.get_workflow_handle(workflow_id).get_update_handle(
            update_id, result_type=EmailChangeStatus)
        try:
            return await asyncio.wait_for(handle.result(rpc_timeout=timedelta(seconds=2)), 3.0)
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError):
                refusal = GdRefused(cause.message)
                refusal.kind = cause.type or "InputRefused"  # type: ignore[attr-defined]
                raise refusal from error
            raise
        except Exception:  # noqa: BLE001 - no such run or update (yet): send it
            return None

    async def _email_update(self, handle: Any, name: str, args: dict[str, Any],
                            update_id: str | None = None) -> EmailChangeStatus:
        try:
            return await asyncio.wait_for(
                handle.execute_update(name, args, id=update_id, result_type=EmailChangeStatus),
                UPDATE_TIMEOUT_S)
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError):
                refusal = GdRefused(cause.message)
                refusal.kind = cause.type or "InputRefused"  # type: ignore[attr-defined]
                raise refusal from error
            raise
        except (asyncio.TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as error:
            raise GdUnavailable(
                f"{name} em {handle.id}: nenhuma resposta em {UPDATE_TIMEOUT_S:.0f} s — o worker "
                f"da fila {self.settings.task_queue} está no ar? (rode `make run` ou `gd worker`)"
            ) from error

    async def email_change_status(self, technician: str) -> EmailChangeStatus:
        return await self._query(ids.email_change_id(parse_technician_key(technician).key), EmailChangeStatus)

    async def confirm_beneficiaries(self, request: str, actor: ActorLike) -> BeneficiaryStatus:
        return await self._update(
            beneficiaries_workflow_id(request), Updates.CONFIRM, ConfirmArgs, BeneficiaryStatus, actor
        )

    async def reject_beneficiaries(self, request: str, actor: ActorLike, reasons: Sequence[ReasonLike]) -> BeneficiaryStatus:
        return await self._update(
            beneficiaries_workflow_id(request), Updates.REJECT, RejectArgs, BeneficiaryStatus,
            actor, reasons=self._reasons(reasons),
        )  # fmt: skip

    # update plumbing --------------------------------------------------------------------

    def _docs(self, documents: Sequence[DocLike]) -> list[Any]:
        return [_as_dict(d) for d in documents]

    def _reasons(self, reasons: Sequence[ReasonLike]) -> list[dict[str, Any]]:
        return [_dump(parse_reason(r)) for r in reasons]

    async def _access(self, request: str, name: str, model: type[ActorArgs], actor: ActorLike, **fields: Any) -> AccessStatus:
        return await self._update(request_workflow_id(request), name, model, AccessStatus, actor, **fields)

    async def _update(
        self,
        workflow_id: str,
        name: str,
        model: type[ActorArgs],
        result_type: type[S],
        actor: ActorLike,
        **fields: Any,
    ) -> S:
        """Check the arguments here (every problem at once), then run the update; the
        workflow's validator has the last word and its refusal becomes ``GdRefused``.

        The answer is the ``status`` query read once the update completed, not the update's
        own return value (a workflow may answer an update with a short acknowledgement):
        the handler changed the state before completing, so the query sees it."""
        args = {"actor": _dump(parse_actor(actor)), **{k: v for k, v in fields.items() if v is not None}}
        parsed = _parse(model, args, name)
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            # The update answers a small ack; the caller gets the status it led to.
            await asyncio.wait_for(
                handle.execute_update(name, _dump(parsed), result_type=UpdateAck),
                UPDATE_TIMEOUT_S,
            )
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError):
                raise GdRefused(cause.message) from error
            raise
        except (asyncio.TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as error:
            raise GdUnavailable(
                f"{name} em {workflow_id}: nenhuma resposta em {UPDATE_TIMEOUT_S:.0f} s — o worker "
                f"da fila {self.settings.task_queue} está no ar? (rode `make run` ou `gd worker`)"
            ) from error
        except RPCError as error:
            raise await self._closed_or(error, workflow_id) from error
        return await self._query(workflow_id, result_type)

    async def _closed_or(self, error: RPCError, workflow_id: str) -> Exception:
        """An update on a finished process: say which status it ended in."""
        if error.status == RPCStatusCode.NOT_FOUND and await self._closed(workflow_id):
            try:
                final = await self.status(workflow_id)
                ended = f" ({final.status})"
            except (GdRefused, GdUnavailable, RPCError):
                ended = ""
            return GdRefused(f"{workflow_id}: processo já encerrado{ended}; nenhuma ação é possível")
        return self._rpc_error(error, workflow_id)

    def _rpc_error(self, error: RPCError, workflow_id: str) -> Exception:
        status = error.status
        text = str(error)
        if status == RPCStatusCode.NOT_FOUND:
            return GdNotFound(
                f"{workflow_id}: processo não encontrado no Temporal (confira o id com `gd request list`)"
            )
        if status == RPCStatusCode.UNAVAILABLE:
            return GdUnavailable(
                f"não foi possível conectar ao Temporal em {self.settings.temporal_address} "
                "(rode `make run`)"
            )
        if "workflow task in failed state" in text.lower():
            return GdUnavailable(
                f"{workflow_id}: o worker não consegue executar este processo (tarefa do workflow "
                "falhando); veja o log do worker"
            )
        if status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED) or "timeout" in text.lower():
            return GdUnavailable(
                f"{workflow_id}: o worker não respondeu em {QUERY_TIMEOUT.total_seconds():.0f} s — "
                f"ele está no ar na fila {self.settings.task_queue}? (rode `make run` ou `gd worker`)"
            )
        if status == RPCStatusCode.INVALID_ARGUMENT:
            return GdRefused(f"pedido recusado pelo Temporal: {text}")
        return error


def intake_done(status: TechnicianStatus | BeneficiaryStatus) -> bool:
    """True once intake answered: the status leaves "RECEIVED" (older workflow code read
    PENDING_REVIEW with the system to act meanwhile)."""
    if status.status == "RECEIVED":
        return False
    return status.status != "PENDING_REVIEW" or status.next_actor != "system"
