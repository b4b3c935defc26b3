"""``TechnicianEmailChange``: the RT's e-mail corrected (issue 17 item 4).

Every answer of the distributor goes to the RT's registered address (the seed), so a typo
would cut the RT off. ``change_email`` (the RT itself or an analyst; domain.rules.TECHNICIAN)
sends a 6-digit code to the NEW address and a notice to the OLD one; ``confirm_email`` with
that code makes the new address the RT's, in the store's ``TechnicianRecord`` (where every
e-mail to ``technician:KEY`` is resolved) and, while the registration is still in review,
in the TechnicianRegistration workflow too (signal ``email_changed``). Nothing changes
before: a wrong code counts one of 5 tries, the code expires after 72 h (a timer here, in
workflow time), and a new ``change_email`` replaces the pending one with a new code.

Why a workflow of its own: an approved TechnicianRegistration has ended, and histories
of approved RTs must stay as they are; this one works the same while the registration
is open and after approval. One per RT at a time (id ``gd-rt-email-{council_key}``): the
first ``change_email`` starts it (update-with-start), it ends once confirmed, expired or
locked. The status the rules table checks is the registration's, read from the store.

No address in search attributes or logs: the workflow sets none, and its ``status`` query
shows the new address only as ``j***@example.com``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import rules
    from models.activities import (
        EmailChangeFacts,
        EmailCodeCheck,
        EmailCodeRequest,
        EmailRequest,
        EmailResult,
        Transition,
    )
    from models.common import Actor, InputRefused, Notification, StatusRefused, parse_or_refuse
    from models.ids import EMAIL_CHANGE_PREFIX, TECHNICIAN_PREFIX
    from models.names import Activities, Queries, Signals, Updates, Workflows
    from models.technician import (
        EMAIL_CODE_ATTEMPTS,
        EMAIL_CODE_TTL,
        ChangeEmailArgs,
        ConfirmEmailArgs,
        EmailChangeStatus,
        email_hint,
    )

from workflows import common

AWAITING = "AWAITING_CONFIRMATION"
LABELS = {
    "IDLE": "nenhuma troca pedida",
    "CONFIRMED": "a troca já foi confirmada",
    "EXPIRED": "o código expirou",
    "LOCKED": "as tentativas se esgotaram",
}
# A refused first change_email (update-with-start) leaves nothing to wait for.
FIRST_UPDATE_WAIT = timedelta(minutes=10)


def _refusal(refused: InputRefused) -> ApplicationError:
    # The class name is the failure's type: the API maps it to 403/409/422.
    return ApplicationError(str(refused), type=type(refused).__name__, non_retryable=True)


@workflow.defn(name=Workflows.TECHNICIAN_EMAIL_CHANGE)
class TechnicianEmailChangeWorkflow:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.status = "IDLE"
        self.new_email: str | None = None
        self.expires_at: Any = None
        self.attempts = 0
        self.requested_by: Actor | None = None
        self.confirmed_at: Any = None
        self.round = 0
        self.seq = 0
        self.handled = 0
        self.pending: list[Any] = []
        self.notifications: list[Notification] = []

    @property
    def technician(self) -> str:
        return workflow.info().workflow_id.removeprefix(EMAIL_CHANGE_PREFIX)

    @workflow.run
    async def run(self, technician: str) -> EmailChangeStatus:
        try:
            await workflow.wait_condition(lambda: self.handled > 0, timeout=FIRST_UPDATE_WAIT)
        except asyncio.TimeoutError:
            pass
        while True:
            await self._drain()
            if self.status != AWAITING:
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._drain()
                if self.status != AWAITING:
                    break
                continue
            expires = self.expires_at
            remaining = (expires - workflow.now()).total_seconds()
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                await workflow.wait_condition(
                    lambda: bool(self.pending) or self.status != AWAITING or self.expires_at != expires,
                    timeout=timedelta(seconds=remaining),
                )
            except asyncio.TimeoutError:
                async with self.lock:
                    if self.status == AWAITING and workflow.now() >= self.expires_at:
                        self.status = "EXPIRED"
                        self.seq += 1
        return self._snapshot()

    # --- effects -------------------------------------------------------------------

    async def _drain(self) -> None:
        while self.pending:
            effect = self.pending[0]
            if isinstance(effect, EmailCodeRequest):
                note = await _send_code(effect)
            else:
                note = await common.run_effect(effect)
            if note is not None:
                self.notifications.append(note)
            self.pending.pop(0)

    def _record(self, action: str, actor: Actor | None, status: str, data: dict[str, Any],
                at_index: int | None = None) -> None:
        """A step in the RT's own event log (the registration's workflow id: its page and
        timeline show who asked and when it took effect). No address, only the hint."""
        info = workflow.info()
        step = Transition(
            workflow_id=TECHNICIAN_PREFIX + self.technician,
            event_key=f"email-{self.round}-{info.run_id}-{action}",
            process="technician", action=action, status=status, at=workflow.now(),
            actor=common.on_record(actor), data=data)
        self.pending.insert(len(self.pending) if at_index is None else at_index, step)

    # --- updates -------------------------------------------------------------------

    def _parties(self) -> rules.Parties:
        return rules.Parties(technician=self.technician)

    def _check_change(self, args: Any) -> ChangeEmailArgs:
        parsed = parse_or_refuse(ChangeEmailArgs, args)
        rules.check_actor(rules.TECHNICIAN, Updates.CHANGE_EMAIL, parsed.actor, self._parties())
        return parsed

    def _check_confirm(self, args: Any) -> ConfirmEmailArgs:
        parsed = parse_or_refuse(ConfirmEmailArgs, args)
        rules.check_actor(rules.TECHNICIAN, Updates.CONFIRM_EMAIL, parsed.actor, self._parties())
        if self.status == "EXPIRED" or (self.status == AWAITING and workflow.now() >= self.expires_at):
            raise InputRefused("code: código expirado (vale 72 h); nada mudou; peça uma nova "
                               "troca (change_email)")
        if self.status == "LOCKED":
            raise InputRefused("code: tentativas esgotadas; nada mudou; peça uma nova troca "
                               "(change_email)")
        if self.status != AWAITING:
            raise StatusRefused(
                f"confirm_email: nenhuma troca de e-mail aguardando confirmação "
                f"({LABELS[self.status]}); peça uma nova com change_email")
        return parsed

    def _check_status(self, update: str, actor: Actor, facts: EmailChangeFacts) -> None:
        """The rules table against the registration's status (from the store)."""
        if facts.status is None:
            raise StatusRefused(f"{update}: responsável técnico {self.technician} não cadastrado")
        rules.check(rules.TECHNICIAN, update, facts.status, actor, self._parties())

    async def _facts(self) -> EmailChangeFacts:
        return await workflow.execute_activity(
            Activities.TECHNICIAN_EMAIL_FACTS, self.technician,
            result_type=EmailChangeFacts, **common.STORE_OPTIONS)

    @workflow.update(name=Updates.CHANGE_EMAIL)
    async def change_email(self, args: Any) -> EmailChangeStatus:
        self.handled += 1
        async with self.lock:
            try:
                parsed = self._check_change(args)
                facts = await self._facts()
                self._check_status(Updates.CHANGE_EMAIL, parsed.actor, facts)
                if facts.email is not None and facts.email.lower() == parsed.email:
                    raise InputRefused("email: o novo e-mail é igual ao já cadastrado; nada a trocar")
            except InputRefused as refused:
                raise _refusal(refused) from None
            before = len(self.pending)
            self._request(parsed, facts.email)
            # Recorded before its e-mails: a mail outage does not hold the log back.
            self._record("email_change_requested", parsed.actor, facts.status or "", {
                "expires_at": common.iso(self.expires_at),
                "notes": f"código enviado a {email_hint(parsed.email)}; aviso ao endereço atual"},
                at_index=before)
        return self._snapshot()

    @change_email.validator
    def _validate_change(self, args: Any) -> None:
        self._check_change(args)

    def _request(self, parsed: ChangeEmailArgs, current: str | None) -> None:
        """A new code to the new address and a notice to the old; a pending change is
        replaced (its code stops working: one code per RT is stored)."""
        self.round += 1
        self.seq += 1
        self.status = AWAITING
        self.new_email = parsed.email
        self.expires_at = workflow.now() + EMAIL_CODE_TTL
        self.attempts = 0
        self.confirmed_at = None
        self.requested_by = common.on_record(parsed.actor)
        info = workflow.info()
        self.pending.append(EmailCodeRequest(
            key=f"{info.workflow_id}:email-code-{self.round}:{info.run_id}",
            technician=self.technician, email=parsed.email, expires_at=self.expires_at))
        if current:
            by = "pelo próprio RT" if parsed.actor.role == "technician" else "por um analista da Cemig"
            self.pending.append(EmailRequest(
                key=f"{info.workflow_id}:email-notice-{self.round}:{info.run_id}",
                template="technician_email_change_notice", to=[current],
                context={"technician": self.technician, "new_email_hint": email_hint(parsed.email),
                         "expires_at": common.iso(self.expires_at), "requested_by": by}))

    @workflow.update(name=Updates.CONFIRM_EMAIL)
    async def confirm_email(self, args: Any) -> EmailChangeStatus:
        self.handled += 1
        async with self.lock:
            try:
                parsed = self._check_confirm(args)
                facts = await self._facts()
                self._check_status(Updates.CONFIRM_EMAIL, parsed.actor, facts)
            except InputRefused as refused:
                raise _refusal(refused) from None
            assert self.new_email is not None
            ok = await workflow.execute_activity(
                Activities.CONFIRM_EMAIL_CHANGE,
                EmailCodeCheck(technician=self.technician, code=parsed.code,
                               email=self.new_email, at=workflow.now()),
                result_type=bool, **common.STORE_OPTIONS)
            if not ok:
                self.attempts += 1
                self.seq += 1
                left = EMAIL_CODE_ATTEMPTS - self.attempts
                if left <= 0:
                    self.status = "LOCKED"
                    raise _refusal(InputRefused(
                        "code: código incorreto; tentativas esgotadas: a troca foi cancelada e "
                        "nada mudou; peça uma nova troca (change_email)"))
                raise _refusal(InputRefused(
                    f"code: código incorreto; nada mudou; restam {left} tentativa(s)"))
            self.status = "CONFIRMED"
            self.confirmed_at = workflow.now()
            self.seq += 1
            self._record("email_changed", parsed.actor, facts.status or "", {
                "notes": f"novo e-mail {email_hint(self.new_email)} confirmado com o código"})
            if facts.status == "PENDING_REVIEW":
                await self._tell_registration(self.new_email)
        return self._snapshot()

    @confirm_email.validator
    def _validate_confirm(self, args: Any) -> None:
        self._check_confirm(args)

    async def _tell_registration(self, email: str) -> None:
        """A registration still in review sends its later e-mails (rejection, credentials)
        and store rows from its own input: it learns the new address. Best effort: if it
        ended meanwhile, its last row is already in the store, which has the new one."""
        handle = workflow.get_external_workflow_handle(TECHNICIAN_PREFIX + self.technician)
        try:
            await handle.signal(Signals.EMAIL_CHANGED, email)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the registration has ended
            workflow.logger.info("registration of %s already closed", self.technician)

    # --- status --------------------------------------------------------------------

    def _snapshot(self) -> EmailChangeStatus:
        return EmailChangeStatus(
            technician=self.technician,
            status=self.status,  # type: ignore[arg-type]
            new_email_hint=email_hint(self.new_email) if self.new_email else None,
            expires_at=self.expires_at if self.status == AWAITING else None,
            attempts_left=EMAIL_CODE_ATTEMPTS - self.attempts,
            requested_by=self.requested_by,
            confirmed_at=self.confirmed_at,
            notifications=list(self.notifications),
            sequence=self.seq,
        )

    @workflow.query(name=Queries.STATUS)
    def status_query(self) -> EmailChangeStatus:
        return self._snapshot()


async def _send_code(request: EmailCodeRequest) -> Notification:
    try:
        result: EmailResult = await workflow.execute_activity(
            Activities.SEND_EMAIL_CHANGE_CODE, request, result_type=EmailResult,
            **common.MAIL_OPTIONS)
    except ActivityError as error:
        return Notification(key=request.key, template="technician_email_change_code",
                            status="refused", detail=common.activity_failure(error))
    return Notification(key=result.key, template=result.template, status=result.status,
                        detail=result.detail)
