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
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from models import ids
from models import search_attributes as sa
from models.access import (
    REANALYSIS_MOTIVE,
    AccessRequestInput,
    AccessStatus,
    input_digest,
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
    Model,
    Problem,
    Reason,
    Technician,
    parse_or_problems,
)
from models.names import Queries
from models.settings import GdSettings, get_settings
from models.technician import (
    TechnicianApproveArgs,
    TechnicianInput,
    TechnicianRejectArgs,
    TechnicianStatus,
)

if TYPE_CHECKING:
    from activities.store import Store

AnyStatus = Union[AccessStatus, TechnicianStatus, BeneficiaryStatus]
ActorLike = Union[Actor, dict, str]
ReasonLike = Union[Reason, dict, str]
DocLike = Union[DocumentRef, dict]
S = TypeVar("S", bound=BaseModel)

ACCESS_TYPE = "AccessRequest"
TECHNICIAN_TYPE = "TechnicianRegistration"
BENEFICIARIES_TYPE = "BeneficiaryRegistration"
PREFIXES = {
    "gd-request-": ACCESS_TYPE,
    "gd-technician-": TECHNICIAN_TYPE,
    "gd-beneficiaries-": BENEFICIARIES_TYPE,
}
STATUS_TYPES: dict[str, type[BaseModel]] = {
    ACCESS_TYPE: AccessStatus,
    TECHNICIAN_TYPE: TechnicianStatus,
    BENEFICIARIES_TYPE: BeneficiaryStatus,
}
KINDS = ("inquiry", "request", "technician", "beneficiaries")
CLASSES = ("micro", "mini")
# Every status a search attribute can hold (AccessRequest, RT and beneficiaries).
KNOWN_STATUSES = (
    "RECEIVED", "REFUSED", "AWAITING_APR", "LAPSED", "UNDER_ANALYSIS", "SUSPENDED",
    "REPROVED", "APPROVED", "INSPECTION_REQUESTED", "INSPECTION_REPROVED", "CONNECTED",
    "AWAITING_ANSWER", "ANSWERED", "CANCELLED", "PENDING_REVIEW", "REJECTED", "REGISTERED",
)  # fmt: skip
ACTORS = ("technician", "analyst", "customer", "inspector", "supervisor", "system")

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


# --- errors ------------------------------------------------------------------------------


class GdRefused(ValueError):
    """A refused action or bad input: ``message`` is one pt-BR line, ``problems`` each rule."""

    def __init__(self, message: str | None = None, problems: Sequence[Problem] = ()):
        self.problems = list(problems) or [
            Problem(field="", code="refused", message=message or "ação recusada")
        ]
        self.message = _one_line(message or "; ".join(str(p) for p in self.problems))
        super().__init__(self.message)


class GdNotFound(GdRefused):
    """No process with that id."""


class GdUnavailable(RuntimeError):
    """Temporal cannot be reached, or no worker answers on the task queue."""

    def __init__(self, message: str):
        self.message = _one_line(message)
        super().__init__(self.message)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _refused(prefix: str, problems: list[Problem]) -> GdRefused:
    listed = "; ".join(str(p) for p in problems)
    return GdRefused(f"{prefix}: {listed}" if prefix else listed, problems)


# --- small parsers shared with the CLI ---------------------------------------------------


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
        raise _refused("quem age", problems)
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
        raise _refused("motivo inválido", problems)
    assert parsed is not None
    return parsed


def parse_technician_key(value: str) -> Technician:
    """``CREA-MG-12.345-d`` (or the workflow id) → Technician with the normalised registration."""
    text = value.strip().removeprefix("gd-technician-")
    parts = text.split("-", 2)
    if len(parts) != 3:
        raise GdRefused(
            f"responsável técnico deve ter a forma CONSELHO-UF-REGISTRO (ex.: CREA-MG-12345), "
            f"não {value!r}"
        )
    raw = {"council": parts[0].upper(), "uf": parts[1], "registration": parts[2]}
    parsed, problems = parse_or_problems(Technician, raw, "technician")
    if problems:
        raise _refused("responsável técnico inválido", problems)
    assert parsed is not None
    return parsed


def workflow_type_of(workflow_id: str) -> str:
    for prefix, kind in PREFIXES.items():
        if workflow_id.startswith(prefix):
            return kind
    raise GdNotFound(
        f"id de processo desconhecido: {workflow_id} (esperado gd-request-…, gd-technician-… "
        "ou gd-beneficiaries-…)"
    )


def request_workflow_id(request: str) -> str:
    """A request_id or the full ``gd-request-…`` id → the workflow id."""
    value = request.strip()
    if value.startswith("gd-request-"):
        return value
    _check_request_id(value)
    return ids.access_request_id(value)


def beneficiaries_workflow_id(request: str) -> str:
    value = request.strip()
    if value.startswith("gd-beneficiaries-"):
        return value
    _check_request_id(value.removeprefix("gd-request-"))
    return ids.beneficiaries_id(value.removeprefix("gd-request-"))


def technician_workflow_id(technician: str | Technician) -> str:
    tech = technician if isinstance(technician, Technician) else parse_technician_key(technician)
    return ids.technician_id(tech.council, tech.uf, tech.registration)


def any_workflow_id(value: str) -> str:
    """An id as a person types it: a full workflow id, else a request_id."""
    value = value.strip()
    if any(value.startswith(prefix) for prefix in PREFIXES):
        return value
    return request_workflow_id(value)


def _check_request_id(value: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
        raise GdRefused(
            f"request_id inválido: {value!r} (1 a 64 caracteres A-Z, a-z, 0-9, '.', '_' ou '-')"
        )


def _parse(model: type[S], raw: Any, prefix: str) -> S:
    parsed, problems = parse_or_problems(model, raw)
    if problems:
        raise _refused(prefix, problems)
    assert parsed is not None
    return parsed


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def _as_dict(value: BaseModel | dict) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


# --- list rows ---------------------------------------------------------------------------


class RequestSummary(Model):
    """One process as visibility sees it (search attributes only: no personal data)."""

    workflow_id: str
    workflow_type: str
    request_id: str
    kind: str | None = None
    status: str | None = None
    generation_class: str | None = None
    service_note: str | None = None
    protocol: str | None = None
    technician: str | None = None
    next_actor: str | None = None
    due_at: datetime | None = None
    sla_breached: bool = False
    running: bool = True
    started_at: datetime | None = None
    closed_at: datetime | None = None


def summary_from(execution: WorkflowExecution) -> RequestSummary:
    attrs = execution.typed_search_attributes
    workflow_id = execution.id
    short = workflow_id
    for prefix in PREFIXES:
        short = short.removeprefix(prefix)
    return RequestSummary(
        workflow_id=workflow_id,
        workflow_type=execution.workflow_type,
        request_id=short,
        kind=attrs.get(sa.GD_KIND),
        status=attrs.get(sa.GD_STATUS),
        generation_class=attrs.get(sa.GD_CLASS),
        service_note=attrs.get(sa.GD_SERVICE_NOTE),
        protocol=attrs.get(sa.GD_PROTOCOL),
        technician=attrs.get(sa.GD_TECHNICIAN),
        next_actor=attrs.get(sa.GD_NEXT_ACTOR),
        due_at=attrs.get(sa.GD_DUE_AT),
        sla_breached=bool(attrs.get(sa.GD_SLA_BREACHED)),
        running=execution.status == WorkflowExecutionStatus.RUNNING,
        started_at=execution.start_time,
        closed_at=execution.close_time,
    )


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _listed(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in (x.strip() for x in value.split(",")) if v]
    return [v for v in value if v]


def _in(name: str, values: list[str]) -> str:
    if len(values) == 1:
        return f"{name} = {_quote(values[0])}"
    return f"{name} IN ({', '.join(_quote(v) for v in values)})"


def _known_values(values: list[str], allowed: Sequence[str], what: str) -> list[str]:
    bad = [v for v in values if v not in allowed]
    if bad:
        raise GdRefused(f"{what} desconhecido: {', '.join(bad)}; aceitos: {', '.join(allowed)}")
    return values


def build_list_query(
    *,
    status: str | Iterable[str] | None = None,
    overdue: bool = False,
    due_within_days: int | None = None,
    technician: str | None = None,
    generation_class: str | None = None,
    kind: str | Iterable[str] | None = None,
    next_actor: str | None = None,
    open_only: bool = False,
    now: datetime | None = None,
) -> str:
    """The visibility query over the Gd* search attributes (values checked, then quoted)."""
    now = now or datetime.now(timezone.utc)
    kinds = _known_values(_listed(kind) or ["request", "inquiry"], KINDS, "tipo")
    clauses = [_in("GdKind", kinds)]
    statuses = [s.upper() for s in _listed(status)]
    if statuses:
        clauses.append(_in("GdStatus", _known_values(statuses, KNOWN_STATUSES, "status")))
    if generation_class:
        cls = _known_values([generation_class.lower()], CLASSES, "classe")[0]
        clauses.append(f"GdClass = {_quote(cls)}")
    if technician:
        clauses.append(f"GdTechnician = {_quote(parse_technician_key(technician).key)}")
    if next_actor:
        actor = _known_values([next_actor], ACTORS, "próximo a agir")[0]
        clauses.append(f"GdNextActor = {_quote(actor)}")
    if overdue or due_within_days is not None or open_only:
        clauses.append("ExecutionStatus = 'Running'")
    if overdue:
        clauses.append(f"GdDueAt < {_quote(_rfc3339(now))}")
    if due_within_days is not None:
        if due_within_days < 0:
            raise GdRefused("--due-within deve ser um número de dias ≥ 0")
        from domain.calendar import end_of_day, local_date

        until = end_of_day(local_date(now) + timedelta(days=due_within_days))
        if not overdue:
            clauses.append(f"GdDueAt >= {_quote(_rfc3339(now))}")
        clauses.append(f"GdDueAt <= {_quote(_rfc3339(until))}")
    return " AND ".join(clauses)


def sort_by_due(rows: Iterable[RequestSummary]) -> list[RequestSummary]:
    """Earliest due date first; rows without one last, newest first among them."""
    far = datetime.max.replace(tzinfo=timezone.utc)
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(
        rows,
        key=lambda r: (
            r.due_at is None,
            r.due_at or far,
            -((r.started_at or epoch) - epoch).total_seconds(),
        ),
    )


# --- documents ---------------------------------------------------------------------------


def _store_and_blobs(settings: GdSettings) -> tuple["Store", Any]:
    from activities.blobs import BlobStore
    from activities.store import Store

    store = Store(settings.database_url)
    store.create_schema()  # idempotent; the CLI may run before the first worker did
    return store, BlobStore(settings.blob_dir)


class Documents:
    """Upload and look up files in the configured store and blob directory (no Temporal)."""

    def __init__(self, settings: GdSettings):
        self.settings = settings
        self._opened: tuple[Store, Any] | None = None

    def _open(self) -> tuple["Store", Any]:
        if self._opened is None:
            self._opened = _store_and_blobs(self.settings)
        return self._opened

    @property
    def store(self) -> "Store":
        return self._open()[0]

    def upload(self, path: str | os.PathLike[str] | bytes, kind: str, filename: str | None = None) -> DocumentRef:
        """Store a file once; ``UploadRefused`` (a ValueError, pt-BR) when it breaks a rule."""
        from activities.blobs import UploadRefused, upload

        store, blobs = self._open()
        try:
            return upload(store, blobs, path, kind=kind, filename=filename)
        except UploadRefused as error:
            name = filename or (None if isinstance(path, bytes) else Path(path).name)
            if name and name not in str(error):
                raise UploadRefused(f"{name}: {error}") from None
            raise

    def get(self, sha256: str, kind: str | None = None) -> DocumentRef:
        """The DocumentRef of an uploaded file by its sha256 (optionally under another kind)."""
        digest = sha256.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise GdRefused(f"sha256 inválido: {sha256!r} (64 caracteres hexadecimais)")
        store, blobs = self._open()
        record = store.document(digest)
        if record is None or not blobs.exists(digest, record.size):
            raise GdRefused(
                f"documento {digest[:12]}… não encontrado no repositório de arquivos: "
                "envie-o antes com `gd docs upload`"
            )
        return _parse(
            DocumentRef,
            {
                "sha256": digest,
                "kind": kind or record.kind,
                "filename": record.filename,
                "size": record.size,
                "content_type": record.content_type,
            },
            "documento",
        )

    def resolve(self, spec: str, default_kind: str | None = None, base: Path | None = None) -> DocumentRef:
        """``kind=path``, ``kind=sha256``, ``path`` or ``sha256`` → DocumentRef (uploading a path)."""
        kind, sep, target = spec.partition("=")
        if not sep or not re.fullmatch(r"[a-z_]+", kind.strip()):
            kind, target = default_kind or "", spec
        kind, target = kind.strip(), target.strip()
        path = Path(target).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if re.fullmatch(r"[0-9A-Fa-f]{64}", target) and not path.exists():
            return self.get(target, kind or None)
        if not kind:
            raise GdRefused(f"documento {target!r}: informe o tipo, como tipo=caminho (ex.: art_rrt={target})")
        return self.upload(path, kind)


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
        import worker

        settings = settings or get_settings()
        try:
            client = await worker.connect(settings)
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
            ACCESS_TYPE, raw, workflow_id, reuse=WorkflowIDReusePolicy.REJECT_DUPLICATE
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
            TECHNICIAN_TYPE, _dump(parsed), workflow_id, reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE
        )
        return await self._wait_status(workflow_id, TechnicianStatus, intake_done)

    async def start_beneficiaries(self, inp: BeneficiaryInput | dict) -> BeneficiaryStatus:
        """Register the UCs that receive the credits of a connected generator."""
        parsed = _parse(BeneficiaryInput, _as_dict(inp), "cadastramento recusado")
        workflow_id = ids.beneficiaries_id(parsed.request_id)
        await self._start(
            BENEFICIARIES_TYPE, _dump(parsed), workflow_id, reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE
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
            return await handle.query("status", result_type=model, rpc_timeout=QUERY_TIMEOUT)
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
            if kind == ACCESS_TYPE:
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
        from temporalio.api.common.v1 import WorkflowExecution as ExecutionRef
        from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest

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
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

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
        """What waits for an analyst: requests, inquiries, RT and beneficiary registrations."""
        return await self.list_requests(
            overdue=overdue,
            due_within_days=due_within_days,
            technician=technician,
            generation_class=generation_class,
            kind=KINDS,
            limit=limit,
            next_actor="analyst",
            open_only=True,
            on_row=on_row,
        )

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
            request, "register_apr", RegisterAprArgs, actor,
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
            request, "approve", ApproveArgs, actor,
            parecer=_as_dict(parecer), requires_works=requires_works, notes=notes,
        )  # fmt: skip

    async def suspend(self, request: str, actor: ActorLike, pendencies: Sequence[ReasonLike]) -> AccessStatus:
        """Analyst: pendências listed (catalogue codes); the requester has 30 days."""
        return await self._access(request, "suspend", SuspendArgs, actor, pendencies=self._reasons(pendencies))

    async def reprove(self, request: str, actor: ActorLike, reasons: Sequence[ReasonLike]) -> AccessStatus:
        return await self._access(request, "reprove", ReproveArgs, actor, reasons=self._reasons(reasons))

    async def attach_corrections(self, request: str, actor: ActorLike, documents: Sequence[DocLike]) -> AccessStatus:
        """RT: corrected documents attached in APR Web after a suspension or reproval."""
        return await self._access(
            request, "attach_corrections", AttachCorrectionsArgs, actor, documents=self._docs(documents)
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
            request, "request_reanalysis", RequestReanalysisArgs, actor,
            reproved_service_note=reproved_service_note, motive=motive,
            documents=self._docs(documents),
        )  # fmt: skip

    async def declare_works(self, request: str, actor: ActorLike, reason: str) -> AccessStatus:
        return await self._access(request, "declare_works", DeclareWorksArgs, actor, reason=reason)

    async def pause_clock(self, request: str, actor: ActorLike, reason: str) -> AccessStatus:
        return await self._access(request, "pause_clock", PauseClockArgs, actor, reason=reason)

    async def resume_clock(self, request: str, actor: ActorLike) -> AccessStatus:
        return await self._access(request, "resume_clock", ActorArgs, actor)

    async def answer_inquiry(
        self, request: str, actor: ActorLike, answer: str, documents: Sequence[DocLike] = ()
    ) -> AccessStatus:
        return await self._access(
            request, "answer_inquiry", AnswerInquiryArgs, actor, answer=answer,
            documents=self._docs(documents),
        )  # fmt: skip

    async def request_inspection(self, request: str, actor: ActorLike, documents: Sequence[DocLike] = ()) -> AccessStatus:
        return await self._access(
            request, "request_inspection", RequestInspectionArgs, actor, documents=self._docs(documents)
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
            request, "record_inspection", RecordInspectionArgs, actor, result=result,
            findings=list(findings), report=_as_dict(report) if report is not None else None,
        )  # fmt: skip

    async def withdraw(self, request: str, actor: ActorLike, reason: str) -> AccessStatus:
        return await self._access(request, "withdraw", WithdrawArgs, actor, reason=reason)

    # updates: TechnicianRegistration and BeneficiaryRegistration ----------------------

    async def approve_technician(self, technician: str, actor: ActorLike) -> TechnicianStatus:
        return await self._update(
            technician_workflow_id(technician), "approve", TechnicianApproveArgs,
            TechnicianStatus, actor,
        )  # fmt: skip

    async def reject_technician(self, technician: str, actor: ActorLike, reasons: Sequence[ReasonLike]) -> TechnicianStatus:
        return await self._update(
            technician_workflow_id(technician), "reject", TechnicianRejectArgs,
            TechnicianStatus, actor, reasons=self._reasons(reasons),
        )  # fmt: skip

    async def confirm_beneficiaries(self, request: str, actor: ActorLike) -> BeneficiaryStatus:
        return await self._update(
            beneficiaries_workflow_id(request), "confirm", ConfirmArgs, BeneficiaryStatus, actor
        )

    async def reject_beneficiaries(self, request: str, actor: ActorLike, reasons: Sequence[ReasonLike]) -> BeneficiaryStatus:
        return await self._update(
            beneficiaries_workflow_id(request), "reject", RejectArgs, BeneficiaryStatus,
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
        workflow's validator has the last word and its refusal becomes ``GdRefused``."""
        args = {"actor": _dump(parse_actor(actor)), **{k: v for k, v in fields.items() if v is not None}}
        parsed = _parse(model, args, name)
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            # The update answers a small ack; the caller gets the status it led to.
            await asyncio.wait_for(
                handle.execute_update(name, _dump(parsed), result_type=UpdateAck),
                UPDATE_TIMEOUT_S,
            )
            return await handle.query(Queries.STATUS, result_type=result_type, rpc_timeout=QUERY_TIMEOUT)
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
