"""Activities that read and write the store: intake validation, NS/Protocolo numbering
and the event log with its projections.

All are synchronous (the worker runs them in a thread pool) and idempotent: a retried
activity returns the same numbers and writes no event twice. Logs carry ids only
(workflow id, event key, counts and codes), never names, CPF/CNPJ, e-mails or phones.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select
from temporalio import activity

from activities import events, installations
from activities.blobs import BlobStore
from activities.digests import document_digest
from activities.documents import resolve
from activities.store import Store
from activities.tables import (
    BeneficiaryAllocation,
    EventRecord,
    IssuedNumber,
    RequestHolder,
    RequestRecord,
    RequestStatus,
    TechnicianRecord,
)
from models.access import AccessRequestInput
from models.activities import (
    AllocationRecord,
    IntakeCheck,
    IntakeResult,
    IssuedNumbers,
    NumberRequest,
    RequestRow,
    TechnicianRow,
    Transition,
)
from models.beneficiaries import BeneficiaryInput
from models.common import (
    MAX_WORKFLOW_ID,
    DocumentRef,
    Problem,
    Technician,
    holder_key,
    parse_or_problems,
    valid_workflow_id,
)
from models.ids import access_request_id
from models.technician import TechnicianInput

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
SERVICE_NOTE_BASE = 7_000_000_000  # NS = base + sequence: always 10 digits
SERVICE_NOTE_SEQUENCE = "service_note"
# Allocation statuses still open to a decision: a transition updates that row in place.
OPEN_ALLOCATION_STATUSES = ("PENDING_REVIEW",)

_STATUS_TEXT = {
    None: "sem cadastro",
    "PENDING_REVIEW": "em análise",
    "REJECTED": "reprovado",
    "REFUSED": "recusado",
}


# An intake refusal lists at most this many problems (a start with thousands of bad
# documents must not produce a result larger than the payload limit).
MAX_PROBLEMS = 50


def cap_problems(problems: list[Problem]) -> list[Problem]:
    """The first ``MAX_PROBLEMS`` problems, and one more line saying how many were left."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    left = len(problems) - MAX_PROBLEMS
    return problems[:MAX_PROBLEMS] + [Problem(
        field="", code="too_many_problems",
        message=f"e mais {left} problema(s) não listado(s): corrija os anteriores e envie "
        "de novo")]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _as_dict(raw: Any) -> dict[str, Any] | None:
    if isinstance(raw, BaseModel):
        return raw.model_dump(mode="json")
    return raw if isinstance(raw, dict) else None


def _parse_alone(model: type[BaseModel], value: Any) -> Any:
    parsed, problems = parse_or_problems(model, value)
    return None if problems else parsed


class RecordActivities:
    """``validate_intake``, ``issue_numbers`` and ``record_transition`` on one store."""

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        *,
        clock: Callable[[], datetime] | None = None,
        installations_check: bool | None = None,
    ):
        self.store = store
        self.blobs = blobs
        # GD_INSTALLATIONS_CHECK (default on): intake checks installation numbers against
        # the customer base (activities/installations.py).
        if installations_check is None:
            from models.settings import get_settings

            installations_check = get_settings().installations_check != "off"
        self.installations_check = installations_check
        # Wall clock for issued_at (tests inject one to cross a year boundary).
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    # --- intake ---------------------------------------------------------------------

    @activity.defn(name="validate_intake")
    def validate_intake(self, check: IntakeCheck) -> IntakeResult:
        """Every problem of a start payload at once: the model's rules, then the store's.

        Store checks run on every part that is well-formed on its own, even when another
        part failed, so the caller learns everything in one answer.
        """
        if not valid_workflow_id(check.workflow_id):
            # Never echoed: the id is what is wrong, and it may carry line breaks.
            return IntakeResult(problems=[Problem(
                field="workflow_id", code="workflow_id_invalid",
                message=f"id do processo inválido: até {MAX_WORKFLOW_ID} caracteres ASCII "
                "visíveis, sem espaços nem quebras de linha")])
        if check.process == "access":
            model, problems = self._check_access(check.raw, check.workflow_id)
        elif check.process == "technician":
            model, problems = self._check_technician(check.raw)
        else:
            model, problems = self._check_beneficiaries(check.raw)
        activity.logger.info(
            "intake checked: workflow=%s process=%s problems=%d codes=%s",
            check.workflow_id,
            check.process,
            len(problems),
            ",".join(sorted({p.code for p in problems})) or "-",
        )
        if problems or model is None:
            return IntakeResult(problems=cap_problems(problems), normalized=None)
        if check.process == "access":
            # Accepted: the request now holds the documents it cited (claims them).
            resolve(self.store, check.workflow_id, list(model.documents))  # type: ignore[union-attr]
            self._record_holder(check.workflow_id, model)  # type: ignore[arg-type]
            document = model.customer.document  # type: ignore[union-attr]
            return IntakeResult(problems=[], normalized=model.model_dump(mode="json"),
                                customer_digest=document_digest(document) if document else None)
        return IntakeResult(problems=[], normalized=model.model_dump(mode="json"))

    def _check_technician(self, raw: Any) -> tuple[TechnicianInput | None, list[Problem]]:
        model, problems = parse_or_problems(TechnicianInput, raw)
        if model is not None and self.store.technician_status(model.key) == "APPROVED":
            # A finished approval must not be turned back into a review by a new run.
            problems.append(
                Problem(
                    field="registration",
                    code="technician_already_approved",
                    message=f"responsável técnico {model.key} já está aprovado no cadastro",
                )
            )
        return model, problems

    def _check_access(
        self, raw: Any, workflow_id: str
    ) -> tuple[AccessRequestInput | None, list[Problem]]:
        model, problems = parse_or_problems(AccessRequestInput, raw)
        data = _as_dict(raw) or {}
        request_id = model.request_id if model is not None else data.get("request_id")
        if isinstance(request_id, str) and not any(p.field == "request_id" for p in problems):
            expected = access_request_id(request_id)
            # The id is what makes request_by_request_id find this request and no other.
            if expected != workflow_id:
                problems.append(Problem(
                    field="request_id", code="workflow_id_mismatch",
                    message=f"o id do processo deve ser {expected}"))
        if model is not None:
            documents = list(enumerate(model.documents))
            kind = model.kind
            technician = model.technician
        else:
            raw_docs = data.get("documents")
            documents = []
            if isinstance(raw_docs, list):
                for i, item in enumerate(raw_docs[:MAX_PROBLEMS + 1]):
                    ref = _parse_alone(DocumentRef, item)
                    if ref is not None:
                        documents.append((i, ref))
            kind = data.get("kind")
            technician = _parse_alone(Technician, data.get("technician"))
        problems.extend(self._document_problems(documents, workflow_id))
        if model is not None and model.installation_number and model.customer.document:
            problem = self._installation_problem(model.installation_number, model.customer.document)
            if problem:
                problems.append(problem)
        if kind == "request" and technician is not None:
            problem = self._technician_problem(technician)
            if problem:
                problems.append(problem)
        return model, problems

    def _installation_problem(self, number: str, document: str) -> Problem | None:
        """The installation must be in the customer base and be the customer's (same CPF,
        or same CNPJ root): seed, AGV "uma lista de instalações veiculadas ao nome"."""
        if not self.installations_check:
            return None
        found = installations.lookup(self.store, number)
        if found is None:
            return Problem(
                field="installation_number", code="INSTALACAO-NAO-ENCONTRADA",
                message=f"instalação {number} não encontrada na base de clientes: confira o "
                "número na conta de energia, ou deixe-o em branco e informe só o CPF/CNPJ")
        if not installations.holder_matches(found, document):
            return Problem(
                field="installation_number", code="TITULARIDADE-DIVERGENTE",
                message=f"instalação {number} não pertence ao CPF/CNPJ informado em "
                "customer.document (o titular deve ser o mesmo CPF, ou a mesma raiz de CNPJ)")
        return None

    def _record_holder(self, workflow_id: str, model: AccessRequestInput) -> None:
        """Who holds the plant, for the BeneficiaryRegistration start (idempotent)."""
        if model.kind != "request" or not model.customer.document:
            return
        key = holder_key(model.customer.document)
        with self.store.session() as s:
            row = s.get(RequestHolder, workflow_id)
            if row is None:
                s.add(RequestHolder(workflow_id=workflow_id, request_id=model.request_id,
                                    holder_key=key))
            elif row.holder_key != key:
                row.holder_key = key

    def _document_problems(
        self, documents: list[tuple[int, DocumentRef]], workflow_id: str
    ) -> list[Problem]:
        found: list[Problem] = []
        for i, ref in documents[:MAX_PROBLEMS + 1]:
            field = f"documents[{i}]"
            label = f"documento {ref.kind} (sha256 {ref.sha256[:12]}…)"
            if not self.blobs.exists(ref.sha256):
                found.append(
                    Problem(
                        field=field,
                        code="document_missing",
                        message=f"{label} não encontrado no repositório de arquivos: "
                        "envie o arquivo (gd docs upload) antes de referenciá-lo",
                    )
                )
                continue
            actual = self.blobs.size(ref.sha256)
            if actual != ref.size:
                found.append(
                    Problem(
                        field=field,
                        code="document_size_mismatch",
                        message=f"{label}: tamanho informado de {ref.size} bytes difere do "
                        f"arquivo armazenado ({actual} bytes)",
                    )
                )
                continue
            record = self.store.document(ref.sha256)
            if record is not None and record.content_type != ref.content_type:
                found.append(
                    Problem(
                        field=field,
                        code="document_type_mismatch",
                        message=f"{label}: tipo informado {ref.content_type} difere do "
                        f"conteúdo armazenado ({record.content_type})",
                    )
                )
        # A document another request holds may be cited (a customer's second request
        # reuses its files) but is not this request's: it is never mailed out from here.
        return found

    def _technician_problem(self, technician: Technician) -> Problem | None:
        status = self.store.technician_status(technician.key)
        if status == "APPROVED":
            return None
        situation = _STATUS_TEXT.get(status, status)
        return Problem(
            field="technician",
            code="technician_not_approved",
            message=f"responsável técnico {technician.council}-{technician.uf} "
            f"nº {technician.registration} não está aprovado no cadastro de RT "
            f"(situação: {situation}); a solicitação exige um RT aprovado",
        )

    def _check_beneficiaries(self, raw: Any) -> tuple[BeneficiaryInput | None, list[Problem]]:
        model, problems = parse_or_problems(BeneficiaryInput, raw)
        data = _as_dict(raw) or {}
        if model is not None:
            request_id: str | None = model.request_id
            generator: str | None = model.generator_installation
        else:
            request_id = data.get("request_id")
            if not isinstance(request_id, str) or any(p.field == "request_id" for p in problems):
                request_id = None
            generator = data.get("generator_installation")
            if not isinstance(generator, str) or any(
                p.field == "generator_installation" for p in problems
            ):
                generator = None
        if request_id is None:
            return model, problems
        record = self.store.request_by_request_id(request_id, kind="request")
        # A plant connected before this system: the customer base marks it (issue 17).
        base = installations.lookup(self.store, generator) if generator else None
        older_plant = base is not None and base.gd_connected
        holder: str | None = None
        if record is not None and record.status == "CONNECTED":
            if record.installation_number and generator and record.installation_number != generator:
                problems.append(
                    Problem(
                        field="generator_installation",
                        code="generator_installation_mismatch",
                        message=f"UC geradora {generator} difere da instalação "
                        f"{record.installation_number} registrada na solicitação {request_id}",
                    )
                )
            holder = self._holder_of(record.workflow_id)
            if holder is None:  # requests accepted before the holder was recorded
                known = installations.lookup(self.store, record.installation_number or generator or "")
                holder = known.holder_key if known else None
        elif older_plant and base is not None:
            holder = base.holder_key
        else:
            situation = record.status if record else "não encontrada"
            problems.append(
                Problem(
                    field="request_id",
                    code="generator_not_connected",
                    message=f"a solicitação de acesso {request_id} não tem usina conectada "
                    f"(situação: {situation}) e a instalação geradora não consta como GD "
                    "conectada na base de clientes; o cadastro de UC recebedora exige a "
                    "geradora conectada",
                )
            )
            return model, problems
        if model is not None:
            problems.extend(self._holder_problems(model, holder))
        return model, problems

    def _holder_of(self, workflow_id: str) -> str | None:
        with self.store.session(write=False) as s:
            row = s.get(RequestHolder, workflow_id)
            return row.holder_key if row else None

    @staticmethod
    def _holder_problems(model: BeneficiaryInput, holder: str | None) -> list[Problem]:
        """Starting a BeneficiaryRegistration is the plant holder's act, or a system's
        (issue 16): anyone else could redirect a connected plant's credits."""
        found: list[Problem] = []
        if holder is not None and holder_key(model.holder_document) != holder:
            found.append(Problem(
                field="holder_document", code="TITULARIDADE-DIVERGENTE",
                message="holder_document: deve ser o titular da usina (o mesmo CPF, ou a "
                "mesma raiz de CNPJ, do cliente da solicitação)"))
        actor = model.actor
        if actor.role == "system":
            return found
        if holder is None:
            found.append(Problem(
                field="actor", code="holder_unknown",
                message="o titular da usina não pôde ser confirmado (solicitação anterior a "
                "este controle e instalação fora da base de clientes): o cadastro deve ser "
                "iniciado por um sistema (actor.role system)"))
        elif actor.document is None or holder_key(actor.document) != holder:
            found.append(Problem(
                field="actor", code="not_plant_holder",
                message="actor.document: só o titular da usina (mesmo CPF, ou mesma raiz de "
                "CNPJ, do cliente da solicitação) ou um sistema inicia o cadastro de UCs "
                "recebedoras"))
        return found

    # --- numbering ------------------------------------------------------------------

    @activity.defn(name="issue_numbers")
    def issue_numbers(self, req: NumberRequest) -> IssuedNumbers:
        """NS (10 digits) and Protocolo (year + 6-digit yearly sequence), once per step."""
        issued = self._issued(req)
        if issued is not None:
            return issued
        issued_at = _aware(self.clock())
        year = issued_at.astimezone(SAO_PAULO).year
        try:
            with self.store.session() as s:
                row = self._issued_row(s, req)
                if row is None:
                    ns = _next_value(s, SERVICE_NOTE_SEQUENCE)
                    original = self._original_protocol(s, req)
                    if original is not None:
                        # A reanalysis keeps the request's Protocolo (seed: a new NS, the
                        # same request) and burns no number of the yearly sequence; the
                        # column is unique (16 characters), so the row holds
                        # PROTOCOLO-n, n = the NS sequence in base 36 (5 characters: 60 M).
                        protocol = f"{original}-{_base36(ns)}"
                    else:
                        seq = _next_value(s, f"protocol-{year}")
                        protocol = f"{year:04d}{seq:06d}"
                    row = IssuedNumber(
                        workflow_id=req.workflow_id,
                        step=req.step,
                        service_note=f"{SERVICE_NOTE_BASE + ns:010d}",
                        protocol=protocol,
                        issued_at=issued_at,
                    )
                    s.add(row)
                    s.flush()
                    activity.logger.info(
                        "numbers issued: workflow=%s step=%s ns=%s protocol=%s",
                        req.workflow_id, req.step, row.service_note, row.protocol,
                    )
                result = _numbers(row)
            return result
        except IntegrityError:
            # A concurrent twin (same workflow and step) committed first: use its numbers.
            issued = self._issued(req)
            if issued is None:
                raise
            return issued

    @staticmethod
    def _original_protocol(s: Session, req: NumberRequest) -> str | None:
        """The Protocolo issued at intake, for a reanalysis step; None otherwise."""
        if not req.step.startswith("reanalysis"):
            return None
        first = s.exec(select(IssuedNumber).where(
            IssuedNumber.workflow_id == req.workflow_id, IssuedNumber.step == "intake")).first()
        return first.protocol if first is not None else None

    @staticmethod
    def _issued_row(s: Session, req: NumberRequest) -> IssuedNumber | None:
        return s.exec(
            select(IssuedNumber).where(
                IssuedNumber.workflow_id == req.workflow_id, IssuedNumber.step == req.step
            )
        ).first()

    def _issued(self, req: NumberRequest) -> IssuedNumbers | None:
        with self.store.session(write=False) as s:
            row = self._issued_row(s, req)
            return _numbers(row) if row else None

    # --- event log and projections --------------------------------------------------

    @activity.defn(name="record_transition")
    def record_transition(self, t: Transition) -> None:
        """Append the event once and upsert the projections, in one transaction.

        A workflow id the store cannot hold (over 200 characters, control characters)
        is never written: the transition is dropped with a warning (no id in the log).
        The documents an access request cites become its own when nobody holds them."""
        if not valid_workflow_id(t.workflow_id):
            activity.logger.warning(
                "transition dropped: invalid workflow id (%d characters) event=%s",
                len(t.workflow_id), t.event_key[:40].encode("unicode_escape").decode())
            return
        if t.process == "access" and t.documents:
            refused = [r for r in resolve(self.store, t.workflow_id, list(t.documents))
                       if r.problem]
            if refused:
                activity.logger.warning(
                    "transition cites documents it does not hold: workflow=%s event=%s count=%d",
                    t.workflow_id, t.event_key, len(refused))
        try:
            with self.store.session() as s:
                if _event_exists(s, t.workflow_id, t.event_key):
                    activity.logger.info(
                        "transition already recorded: workflow=%s event=%s",
                        t.workflow_id, t.event_key,
                    )
                    return
                dumped = t.model_dump(mode="json", include={"reasons", "documents", "data"})
                s.add(
                    EventRecord(
                        workflow_id=t.workflow_id,
                        event_key=t.event_key,
                        process=t.process,
                        action=t.action,
                        status=t.status,
                        at=_aware(t.at),
                        actor_id=t.actor.id if t.actor else None,
                        actor_role=t.actor.role if t.actor else None,
                        reasons=dumped["reasons"],
                        documents=dumped["documents"],
                        data=dumped["data"],
                    )
                )
                s.flush()  # a concurrent twin fails here, before any projection is touched
                prior = events.before(s, t)  # the projection before this step (for events)
                if t.request is not None:
                    _upsert_request(s, t.request)
                if t.status_snapshot is not None:
                    _upsert_status(s, t.workflow_id, t.status_snapshot, self.store.dialect)
                if t.technician is not None:
                    _upsert_technician(s, t.technician)
                if t.allocation is not None:
                    _upsert_allocation(s, t.allocation, self.store.dialect)
                # Status-change events for other systems, in this same transaction.
                events.append(s, events.derive(t, prior), self.store.dialect)
        except IntegrityError:
            with self.store.session(write=False) as s:
                if _event_exists(s, t.workflow_id, t.event_key):
                    return  # the twin wrote everything
            raise
        activity.logger.info(
            "transition recorded: workflow=%s event=%s action=%s status=%s",
            t.workflow_id, t.event_key, t.action, t.status,
        )


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if not value:
            return out


def _numbers(row: IssuedNumber) -> IssuedNumbers:
    # A reanalysis row holds "PROTOCOLO-n": its Protocolo is the request's own.
    return IssuedNumbers(
        service_note=row.service_note, protocol=row.protocol.split("-", 1)[0],
        issued_at=_aware(row.issued_at),
    )


def _next_value(s: Session, name: str) -> int:
    """Advance a named sequence atomically in the session's transaction.

    ``UPDATE … RETURNING`` holds the row lock (PostgreSQL) or the write lock (SQLite,
    ``BEGIN IMMEDIATE``) until commit, so two transactions never get the same value and a
    rolled-back one leaves no gap. A missing row is inserted first; a concurrent insert of
    the same row is tolerated (``ON CONFLICT DO NOTHING``, on both back-ends).
    """
    conn = s.connection()
    bump = sa.text("UPDATE number_sequence SET value = value + 1 WHERE name = :name RETURNING value")
    value = conn.execute(bump, {"name": name}).scalar()
    if value is None:
        conn.execute(
            sa.text(
                "INSERT INTO number_sequence (name, value) VALUES (:name, 0) "
                "ON CONFLICT (name) DO NOTHING"
            ),
            {"name": name},
        )
        value = conn.execute(bump, {"name": name}).scalar_one()
    return int(value)


def _event_exists(s: Session, workflow_id: str, event_key: str) -> bool:
    found = s.exec(
        select(EventRecord.id).where(
            EventRecord.workflow_id == workflow_id, EventRecord.event_key == event_key
        )
    ).first()
    return found is not None


def _upsert_request(s: Session, row: RequestRow) -> None:
    values = row.model_dump()
    values["created_at"] = _aware(row.created_at)
    values["updated_at"] = _aware(row.updated_at)
    record = s.get(RequestRecord, row.workflow_id)
    if record is None:
        s.add(RequestRecord(**values))
    elif _aware(record.updated_at) <= values["updated_at"]:  # never go back in time
        for key, value in values.items():
            setattr(record, key, value)


def _upsert_status(s: Session, workflow_id: str, status: dict[str, Any], dialect: str) -> None:
    """The request's latest ``status`` (its query's answer), only over an older one: a
    lower ``sequence``, or the same with more ``pending_effects`` (two steps recorded
    after one decision carry the same state, the second with its e-mails sent). A retried
    or late activity never puts an older status back. One statement (insert, or update
    when newer), atomic on both back-ends."""
    from sqlalchemy.dialects import postgresql, sqlite

    sequence = int(status.get("sequence") or 0)
    pending = int(status.get("pending_effects") or 0)
    table = RequestStatus.__table__  # type: ignore[attr-defined]
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    values = {"workflow_id": workflow_id, "sequence": sequence, "pending_effects": pending,
              "status": status, "recorded_at": datetime.now(timezone.utc)}
    newer = sa.or_(
        table.c.sequence < insert.excluded.sequence,
        sa.and_(table.c.sequence == insert.excluded.sequence,
                table.c.pending_effects > insert.excluded.pending_effects),
    )
    statement = insert.values(**values).on_conflict_do_update(
        index_elements=[table.c.workflow_id],
        set_={"sequence": insert.excluded.sequence, "pending_effects": insert.excluded.pending_effects,
              "status": insert.excluded.status, "recorded_at": insert.excluded.recorded_at},
        where=newer,
    )
    s.connection().execute(statement)


def _upsert_technician(s: Session, row: TechnicianRow) -> None:
    updated_at = _aware(row.updated_at)
    record = s.get(TechnicianRecord, row.key)
    if record is None:
        s.add(
            TechnicianRecord(
                key=row.key,
                workflow_id=row.workflow_id,
                status=row.status,
                updated_at=updated_at,
                email=row.email,
            )
        )
    elif _aware(record.updated_at) <= updated_at:
        record.workflow_id = row.workflow_id
        record.status = row.status
        record.updated_at = updated_at
        record.email = row.email or record.email


def _upsert_allocation(s: Session, allocation: AllocationRecord, dialect: str) -> None:
    """Update the open row of this workflow, or add a new one; never delete any.

    REGISTERED makes this row the generator's current allocation and every other row of
    the same generating installation not current (a partial unique index guarantees
    at most one current row).
    """
    generator = allocation.generator_installation
    if dialect == "postgresql":  # serialize registrations of one generator
        s.connection().execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext('gd-allocation:' || :g))"),
            {"g": generator},
        )
    values = allocation.model_dump(mode="json")
    values["effective_from"] = allocation.effective_from
    values["recorded_at"] = _aware(allocation.recorded_at)
    latest = s.exec(
        select(BeneficiaryAllocation)
        .where(BeneficiaryAllocation.workflow_id == allocation.workflow_id)
        .order_by(BeneficiaryAllocation.id.desc())  # type: ignore[union-attr]
    ).first()
    if latest is not None and latest.status in OPEN_ALLOCATION_STATUSES and not latest.current:
        record = latest
        for key, value in values.items():
            setattr(record, key, value)
    else:
        record = BeneficiaryAllocation(**values, current=False)
        s.add(record)
    s.flush()
    if allocation.status == "REGISTERED":
        table = BeneficiaryAllocation.__table__  # type: ignore[attr-defined]
        s.connection().execute(
            sa.update(table)
            .where(table.c.generator_installation == generator, table.c.current.is_(True))
            .values(current=False)
        )
        for other in s.identity_map.values():  # keep loaded objects in step with the row
            if isinstance(other, BeneficiaryAllocation) and other.generator_installation == generator:
                set_committed_value(other, "current", False)
        record.current = True
        s.flush()

