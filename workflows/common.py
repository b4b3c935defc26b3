"""What every process workflow shares: activity calls with their retry rules, the event
log, e-mails, deadlines, search attributes and the loop that runs their effects. Who may
send which update in which status is domain/rules.

Only orchestration lives here: the side effects are activities, called by name.
"""

from __future__ import annotations

import asyncio
import inspect
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes

with workflow.unsafe.imports_passed_through():
    from domain.policies import Deadline
    from domain.reasons import catalogue, requires_text, unknown_codes
    from models import search_attributes as sa
    from models.names import Activities
    from models.activities import (
        DeadlineQuery,
        EmailRequest,
        MAIL_MAX_ATTEMPTS,
        EmailResult,
        ResumeQuery,
        Transition,
    )
    from models.common import (
        Actor,
        DeadlineRecord,
        InputRefused,
        Notification,
        Reason,
    )

# Store and e-mail retry with backoff for as long as it takes (an outage must not lose a
# step); a permanent refusal comes back as a result, not as an error.
STORE_OPTIONS: dict[str, Any] = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
    ),
)
# E-mail retries are capped (MAIL_MAX_ATTEMPTS: about 3 days of SMTP outage at the
# 2-minute ceiling): the last attempt records the message refused, as a 5xx does.
MAIL_OPTIONS: dict[str, Any] = dict(
    start_to_close_timeout=timedelta(seconds=60),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=2),
        maximum_attempts=MAIL_MAX_ATTEMPTS,
    ),
)
LOCAL_OPTIONS: dict[str, Any] = dict(start_to_close_timeout=timedelta(seconds=10))


def refuse(message: str) -> None:
    raise InputRefused(message)


def on_record(actor: Actor | None) -> Actor | None:
    """The actor as decisions and the event log keep it: a customer's CPF/CNPJ served the
    party check and is not repeated in every decision."""
    if actor is None or actor.document is None:
        return actor
    return actor.model_copy(update={"document": None})


def require_reasons(reasons: list[Reason], use: str, field: str) -> None:
    unknown = unknown_codes([r.code for r in reasons], use)
    if unknown:
        refuse(
            f"{field}: código(s) fora do catálogo de motivos para esta ação: "
            f"{', '.join(unknown)}"
        )
    for reason in reasons:
        if requires_text(reason.code) and not (reason.text or "").strip():
            refuse(f"{field}: o código {reason.code} exige um texto descrevendo o motivo")


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


async def compute_deadline(
    policy: str,
    rule: str,
    start: datetime,
    *,
    generation_class: str | None = None,
    works: bool = False,
    voltage_kv: float | None = None,
) -> Deadline:
    return await workflow.execute_local_activity(
        Activities.COMPUTE_DEADLINE,
        DeadlineQuery(
            policy=policy,
            rule=rule,
            start=start,
            generation_class=generation_class,
            works=works,
            voltage_kv=voltage_kv,
        ),
        result_type=Deadline,
        **LOCAL_OPTIONS,
    )


async def resume_deadline(due_at: datetime, paused: timedelta) -> datetime:
    return await workflow.execute_local_activity(
        Activities.RESUME_DEADLINE,
        ResumeQuery(due_at=due_at, paused_seconds=paused.total_seconds()),
        result_type=datetime,
        **LOCAL_OPTIONS,
    )


def deadline_record(deadline: Deadline, cycle: int = 0, reason: str | None = None) -> DeadlineRecord:
    return DeadlineRecord(
        rule=deadline.rule,
        start=deadline.start,
        due_at=deadline.due_at,
        remind_at=deadline.remind_at,
        cycle=cycle,
        reason=reason,
    )


async def record(transition: Transition) -> None:
    await workflow.execute_activity(Activities.RECORD_TRANSITION, transition, **STORE_OPTIONS)


async def send_email(request: EmailRequest) -> Notification:
    result = await workflow.execute_activity(
        Activities.SEND_EMAIL, request, result_type=EmailResult, **MAIL_OPTIONS
    )
    return Notification(
        key=result.key, template=request.template, status=result.status, detail=result.detail
    )


def upsert_search_attributes(**values: Any) -> None:
    """Upsert by CONTRACT name (``GdStatus=...``); a None value unsets the attribute."""
    keys = {key.name: key for key in sa.ALL_KEYS}
    workflow.upsert_search_attributes(
        [
            keys[name].value_unset() if value is None else keys[name].value_set(value)
            for name, value in values.items()
        ]
    )


def search_attributes(**values: Any) -> TypedSearchAttributes:
    """The same attributes, for starting a child workflow with them already set."""
    keys = {key.name: key for key in sa.ALL_KEYS}
    return TypedSearchAttributes(
        [SearchAttributePair(keys[n], v) for n, v in values.items() if v is not None]
    )


def upsert_changed(current: dict[str, Any], **values: Any) -> None:
    """Upsert only what changed. A key never set is not "unset" either: the time-skipping
    server stores that as a null value that clients then fail to decode."""
    changed = {name: value for name, value in values.items() if current.get(name) != value}
    if changed:
        upsert_search_attributes(**changed)
        current.update(changed)


def reasons_context(reasons: list[Reason]) -> list[dict[str, str]]:
    """Reasons as the requester reads them: the catalogue text when the analyst gave none."""
    known = catalogue()
    return [
        {"code": r.code, "text": r.text or (known[r.code].text if r.code in known else r.code)}
        for r in reasons
    ]


async def send_quietly(request: EmailRequest) -> Notification:
    # An e-mail that can never go out (bad template, refused address) is noted in the
    # status; it must not fail the registration.
    try:
        return await send_email(request)
    except ActivityError as error:
        return Notification(
            key=request.key, template=request.template, status="refused", detail=activity_failure(error)
        )


def activity_failure(error: ActivityError) -> str:
    return str(error.cause or error)[:500]


# --- the loop every process workflow runs ------------------------------------------------
# Handlers decide under a lock and queue effects; the main loop runs the effects in order
# and the deadline timers in between.


async def decide(lock: asyncio.Lock, check: Callable[[Any], Any], args: Any, act) -> None:
    """Run an accepted update: check again under the lock (two updates validated against
    the same state may both have been accepted), then act (sync or async)."""
    async with lock:
        try:
            parsed = check(args)
        except InputRefused as refused:
            # The refusal's class (StatusRefused, RoleRefused...) is the failure's type.
            raise ApplicationError(str(refused), type=type(refused).__name__, non_retryable=True)
        outcome = act(parsed)
        if inspect.isawaitable(outcome):
            await outcome


def process_update(name: str) -> Any:
    """A workflow update ``name`` of a process workflow, in one line of its class::

        register_apr = common.process_update(Updates.REGISTER_APR)

    Its validator is ``self._check(name, args)`` (the rules table, then the update's own
    rules); its handler ``self._apply(name, args)`` checks again under the lock and runs
    ``self._<name>(parsed)``, then answers a small ``UpdateAck``.
    """

    async def handler(self: Any, args: Any) -> Any:
        return await self._apply(name, args)

    def validator(self: Any, args: Any) -> None:
        self._check(name, args)

    handler.__name__ = handler.__qualname__ = name
    defined = workflow.update(name=name)(handler)
    defined.validator(validator)
    return defined


async def run_effect(effect: Any) -> Notification | None:
    """A queued store transition or e-mail; other kinds are the workflow's own."""
    if isinstance(effect, Transition):
        await record(effect)
        return None
    if isinstance(effect, EmailRequest):
        return await send_quietly(effect)
    raise TypeError(f"unknown effect {type(effect).__name__}")


async def run_watching(
    *,
    lock: asyncio.Lock,
    drain: Callable[[], Awaitable[None]],
    queued: Callable[[], bool],
    finished: Callable[[], bool],
    next_instant: Callable[[], datetime | None],
    act: Callable[[], Any],
    between: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """The main loop of a process workflow (patches ``*deadline-watch-v1``).

    Run the queued side effects in order (``drain``) until ``finished()``, while
    ``watch_deadline`` acts on the deadline in a task of its own. Every change of state
    queues its store transition, so the loop sleeps until something is ``queued()``;
    ``between`` runs before each sleep (``AccessRequest``: continue-as-new). The deadline
    task ends only once finished; if it ever failed, awaiting it fails this workflow task
    (retried, and visible). Returns after the handlers and their last effects are done.
    """
    watch = asyncio.create_task(watch_deadline(lock, next_instant, act, finished))
    while True:
        await drain()
        if finished():
            break
        if between is not None:
            await between()
        await workflow.wait_condition(lambda: queued() or watch.done())
        if watch.done() and not finished():
            await watch
            raise RuntimeError("a vigilância do prazo terminou antes de um status final")
    await watch
    await workflow.wait_condition(workflow.all_handlers_finished)
    await drain()


async def run_before_watch(
    *,
    lock: asyncio.Lock,
    drain: Callable[[], Awaitable[None]],
    queued: Callable[[], bool],
    finished: Callable[[], bool],
    key: Callable[[], Any],
    next_instant: Callable[[], datetime | None],
    act: Callable[[], Any],
    between: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """The loop of histories written before the ``*deadline-watch-v1`` patches (and of a
    refused intake): the timer ran between two side effects, so while one waited out an
    outage a deadline fell due late. ``act`` runs once the timer wins and ``key()`` (what
    the workflow has decided so far) is what it was when the wait began."""
    while True:
        await drain()
        if finished():
            break
        if between is not None:
            await between()
        seen = key()
        if await wait_for_change_or(next_instant(), lambda: queued() or key() != seen):
            async with lock:
                if key() == seen:
                    outcome = act()
                    if inspect.isawaitable(outcome):
                        await outcome
    await workflow.wait_condition(workflow.all_handlers_finished)
    await drain()


async def watch_deadline(
    lock: asyncio.Lock,
    next_instant: Callable[[], datetime | None],
    act: Callable[[], Any],
    finished: Callable[[], bool],
) -> None:
    """A workflow's deadline, watched in a task of its own (the ``*deadline-watch-v1`` patches).

    Sleep until ``next_instant()`` (a reminder, then the due date; None: no timer, as with
    a paused clock) and run ``act()`` (sync or async) under ``lock``, so it never
    interleaves with an update's decision. Start over whenever that instant changes; an
    update may have moved it while this waited for the lock. Return once ``finished()``.
    ``act`` must move ``next_instant()`` on (a reminder marked sent, a breach recorded),
    or it would run again at once.
    """
    while not finished():
        target = next_instant()

        def moved() -> bool:
            return finished() or next_instant() != target

        if not await wait_for_change_or(target, moved):
            continue
        async with lock:
            if not finished() and next_instant() == target:
                outcome = act()
                if inspect.isawaitable(outcome):
                    await outcome


async def wait_for_change_or(target: datetime | None, changed: Callable[[], bool]) -> bool:
    """Wait until ``changed()`` or the ``target`` instant; True when the timer won."""
    if target is None:
        await workflow.wait_condition(changed)
        return False
    remaining = (target - workflow.now()).total_seconds()
    if remaining > 0:
        try:
            await workflow.wait_condition(changed, timeout=timedelta(seconds=remaining))
            return False
        except asyncio.TimeoutError:
            pass
    return True
