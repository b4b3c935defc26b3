"""The engine's floor: a no-op workflow that makes the server do what a real lifecycle makes
it do (same activities, local activities and updates, in the same places), with no code of
ours in between.

The shape comes from a real ``AccessRequest`` history (``plan_from_history``), so the floor
follows the workflow when it changes:

* ``A``/``a``: an activity (``a``: its real implementation is ``async def``, run on the
  worker's event loop; ``A``: a plain ``def``, run in the activity thread pool);
* ``L``: a local activity (the real ones leave a ``MarkerRecorded`` event);
* ``U``: a search-attribute upsert, performed only with ``upserts=True``; with
  ``timers=True`` every idle wait runs a timer, as the real workflow's deadline waits do
  (the issue's floor counts activities and updates; ``floor_full`` in the bench also pays
  the timers and upserts our design adds).

Intake and each update are a *segment*. A segment's decision ops (``validate_intake``,
``issue_numbers``, local activities) run before its answer; its effects
(``record_transition``, ``send_email``: the queued side effects of the real workflow) run
afterwards in the main loop, as the real workflow drains its queue. The floor is "ready"
(its ``status`` query leaves ``RECEIVED``) where the real intake first upserts its status.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Sequence

from temporalio import activity, workflow
from temporalio.common import RawValue, SearchAttributeKey

from models.names import Activities, Queries

# The real workflow's side effects: queued by a handler, run by the main loop afterwards.
EFFECT_ACTIVITIES = (
    Activities.RECORD_TRANSITION, Activities.SEND_EMAIL, Activities.SEND_TECHNICIAN_CREDENTIALS, "start_child",
)
FLOOR_WORKFLOW = "BenchFloor"
STATUS_KEY = SearchAttributeKey.for_keyword("GdStatus")
OPTIONS: dict[str, Any] = dict(start_to_close_timeout=timedelta(seconds=30))
IDLE_TIMER = timedelta(days=1)


@activity.defn(name="bench_noop")
def noop(step: int) -> None:
    """A sync no-op: runs in the activity thread pool like the store activities."""


@activity.defn(name="bench_noop_async")
async def noop_async(step: int) -> None:
    """An async no-op: runs on the worker's event loop like ``send_email``."""


@activity.defn(name="bench_noop_local")
def noop_local(step: int) -> None:
    """A sync no-op local activity, like ``compute_deadline``."""


FLOOR_ACTIVITIES = [noop, noop_async, noop_local]


@workflow.defn(name=FLOOR_WORKFLOW)
class FloorWorkflow:
    """``plan``: {"intake": {"decide": "AALU", "effects": "aA"},
    "updates": {name: {"decide": "LU", "effects": "aA"}}, "final": name,
    "timers": bool, "upserts": bool}."""

    def __init__(self) -> None:
        self.plan: dict[str, Any] = {}
        self.ready = False
        self.done = False
        self.pending: list[str] = []
        self.step = 0

    @workflow.run
    async def run(self, plan: dict[str, Any]) -> dict[str, Any]:
        self.plan = plan
        intake = plan["intake"]
        await self._ops(intake["decide"])
        self.ready = True
        self.pending.extend(intake["effects"])
        while True:
            while self.pending:
                await self._op(self.pending.pop(0))
            if self.done:
                break
            changed = lambda: bool(self.pending) or self.done  # noqa: E731
            if plan.get("timers"):
                try:
                    await workflow.wait_condition(changed, timeout=IDLE_TIMER)
                except asyncio.TimeoutError:
                    pass
            else:
                await workflow.wait_condition(changed)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return {"status": "DONE", "steps": self.step}

    async def _ops(self, ops: str) -> None:
        for op in ops:
            await self._op(op)

    async def _op(self, op: str) -> None:
        self.step += 1
        if op == "A":
            await workflow.execute_activity("bench_noop", self.step, **OPTIONS)
        elif op == "a":
            await workflow.execute_activity("bench_noop_async", self.step, **OPTIONS)
        elif op == "L":
            await workflow.execute_local_activity("bench_noop_local", self.step, **OPTIONS)
        elif op == "U" and self.plan.get("upserts"):
            workflow.upsert_search_attributes([STATUS_KEY.value_set(f"FLOOR-{self.step}")])

    @workflow.update(dynamic=True)
    async def on_update(self, name: str, args: Sequence[RawValue]) -> dict[str, Any]:
        segment = self.plan["updates"][name]
        await self._ops(segment["decide"])
        self.pending.extend(segment["effects"])
        if name == self.plan["final"]:
            self.done = True
        return {"status": "READY", "update": name, "steps": self.step}

    @on_update.validator
    def _validate(self, name: str, args: Sequence[RawValue]) -> None:
        if not self.ready or self.done or name not in self.plan.get("updates", {}):
            raise ValueError(f"{name}: not expected now")

    @workflow.query(name=Queries.STATUS)
    def status(self) -> dict[str, Any]:
        return {"status": "READY" if self.ready else "RECEIVED", "pending_effects": len(self.pending)}


def build_floor_worker(client, task_queue: str, **worker_options):
    """The floor's worker, configured like ``worker.build_worker`` (same executor size)."""
    from temporalio.worker import Worker

    return Worker(
        client,
        task_queue=task_queue,
        workflows=[FloorWorkflow],
        activities=FLOOR_ACTIVITIES,
        activity_executor=ThreadPoolExecutor(max_workers=16),
        **worker_options,
    )


# --- deriving the plan from a real history -------------------------------------------


def history_ops(history, async_activities: set[str]) -> list[tuple[str, str, str]]:
    """The history as (kind, name, op): kind "update" opens a segment; ops A/a/L/U/T."""
    out: list[tuple[str, str, str]] = []
    for event in history.events:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            attrs = event.workflow_execution_update_accepted_event_attributes
            out.append(("update", attrs.accepted_request.input.name, ""))
        elif event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            out.append(("op", name, "a" if name in async_activities else "A"))
        elif event.HasField("marker_recorded_event_attributes"):
            out.append(("op", event.marker_recorded_event_attributes.marker_name, "L"))
        elif event.HasField("upsert_workflow_search_attributes_event_attributes"):
            out.append(("op", "upsert", "U"))
        elif event.HasField("timer_started_event_attributes"):
            out.append(("op", "timer", "T"))
        elif event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            out.append(("op", "start_child", "A"))
    return out


def _segment(ops: list[tuple[str, str]]) -> dict[str, str]:
    decide, effects = [], []
    for name, op in ops:
        if op == "T":
            continue  # the floor's idle wait makes its own timers
        if name in EFFECT_ACTIVITIES or (op == "U" and effects):
            effects.append(op)
        else:
            decide.append(op)
    return {"decide": "".join(decide), "effects": "".join(effects)}


def plan_from_history(history, async_activities: set[str]) -> dict[str, Any]:
    """The floor plan of one real lifecycle (taken with the system idle between updates,
    so each update's effects sit between its acceptance and the next update's)."""
    segments: list[tuple[str, list[tuple[str, str]]]] = [("intake", [])]
    for kind, name, op in history_ops(history, async_activities):
        if kind == "update":
            segments.append((name, []))
        else:
            segments[-1][1].append((name, op))
    plan: dict[str, Any] = {"intake": _segment(segments[0][1]), "updates": {}}
    for name, ops in segments[1:]:
        plan["updates"][name] = _segment(ops)
    plan["final"] = segments[-1][0]
    return plan


def merge_plans(plans: list[dict[str, Any]]) -> dict[str, Any]:
    """One plan covering every update seen (the suspension path adds three); an update
    seen twice with a different shape is an error (the floor would not be the same work)."""
    merged: dict[str, Any] = {"intake": plans[0]["intake"], "updates": {}, "final": plans[0]["final"]}
    for plan in plans:
        if plan["intake"] != merged["intake"] or plan["final"] != merged["final"]:
            raise ValueError(f"intake/final differ between lifecycles: {plans}")
        for name, segment in plan["updates"].items():
            if merged["updates"].setdefault(name, segment) != segment:
                raise ValueError(f"update {name} has two shapes: {merged['updates'][name]} vs {segment}")
    return merged


def plan_counts(plan: dict[str, Any], updates: list[str]) -> dict[str, int]:
    """Activities, local activities and upserts of one floor lifecycle with ``updates``."""
    ops = plan["intake"]["decide"] + plan["intake"]["effects"]
    for name in updates:
        ops += plan["updates"][name]["decide"] + plan["updates"][name]["effects"]
    return {
        "activities": sum(ops.count(c) for c in "Aa"),
        "local_activities": ops.count("L"),
        "upserts": ops.count("U"),
        "updates": len(updates),
    }
