"""Golden histories replay with today's code, and a change that breaks them is caught.

The histories in tests/histories/ were written by real workflow runs
(``python -m tests.make_histories``); no server is needed here. See docs/PATCHING.md.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from typing import Any
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.worker import UnsandboxedWorkflowRunner
from typer.testing import CliRunner

from audit import export as exports
from audit import timeline
from audit.cli import audit_app
from audit.replay import auto_jobs, build_replayer, replay, replay_processes, shards
from tests.make_histories import FROZEN, HISTORIES, SCENARIOS
from workflows.access_request import (
    APPROVE_RECORDS_WORKS,
    DEADLINE_WATCH,
    AccessRequestWorkflow,
    AccessState,
)

FILES = exports.export_files(HISTORIES)
REQUIRED_STATUSES = {
    "AccessRequest": {
        "REFUSED", "AWAITING_APR", "LAPSED", "UNDER_ANALYSIS", "SUSPENDED", "REPROVED",
        "APPROVED", "INSPECTION_REQUESTED", "INSPECTION_REPROVED", "CONNECTED",
        "AWAITING_ANSWER", "ANSWERED", "CANCELLED",
    },
    "TechnicianRegistration": {"REFUSED", "PENDING_REVIEW", "APPROVED", "REJECTED"},
    "BeneficiaryRegistration": {"REFUSED", "PENDING_REVIEW", "REGISTERED", "REJECTED"},
    # Its store steps carry the registration's status (the change's own is in its query).
    "TechnicianEmailChange": {"PENDING_REVIEW"},
}
PREPATCH = HISTORIES / "access-connected-works-prepatch.json.gz"
POSTPATCH = HISTORIES / "access-connected-works.json.gz"
# Reminders, lapses and a cancellation by lapse: the deadline watch at work.
BEFORE_WATCH = HISTORIES / "access-lapse-cycles-cancelled-pre-deadline-watch.json.gz"
WITH_WATCH = HISTORIES / "access-lapse-cycles-cancelled.json.gz"


@workflow.defn(name="AccessRequest")
class ApproveWithoutGuard(AccessRequestWorkflow):
    """The patched change with its ``workflow.patched`` guard removed: what a developer
    would write if they forgot that running (and archived) workflows replay old code."""

    @workflow.run
    async def run(self, raw: dict[str, Any], carried: AccessState | None = None):
        return await super().run(raw, carried)

    async def _approve(self, parsed) -> None:
        state = self._current()
        if parsed.requires_works and not state.works_declared:
            self._transition(
                "works_declared",
                actor=parsed.actor,
                data={"reason": "obras exigidas no parecer de acesso", "source": "approve"},
            )
            state.works_declared = True
        await super()._approve(parsed)


@workflow.defn(name="AccessRequest")
class ApproveBeforeThePatch(AccessRequestWorkflow):
    """The code as it was before the patch (a rollback of the deployment)."""

    @workflow.run
    async def run(self, raw: dict[str, Any], carried: AccessState | None = None):
        return await super().run(raw, carried)

    async def _approve(self, parsed) -> None:
        state = self._current()
        state.documents.append(parsed.parecer)
        if parsed.requires_works:
            state.works_declared = True
        self._decide(parsed.actor, "approve", text=parsed.notes, documents=[parsed.parecer])
        await self._set_deadline("inspection_request_window", workflow.now())
        self._move(
            "APPROVED", "approved", actor=parsed.actor, documents=[parsed.parecer],
            email=("parecer_issued", self._requesters()), attachments=[parsed.parecer],
            extra={"requires_works": parsed.requires_works, "notes": parsed.notes},
        )


@workflow.defn(name="AccessRequest")
class WhereItRuns(AccessRequestWorkflow):
    """The current code, noting which thread runs its activations."""

    threads: list[int] = []

    @workflow.run
    async def run(self, raw: dict[str, Any], carried: AccessState | None = None):
        WhereItRuns.threads.append(threading.get_ident())
        return await super().run(raw, carried)


@workflow.defn(name="AccessRequest")
class WatchWithoutGuard(AccessRequestWorkflow):
    """The deadline watch with its ``workflow.patched`` guard removed."""

    @workflow.run
    async def run(self, raw: dict[str, Any], carried: AccessState | None = None):
        if carried is None:
            await self._intake(raw)
        if self.state is None:
            return await self._run_before_watch(raw)
        return await self._run_watching(raw)


@workflow.defn(name="AccessRequest")
class LoopBeforeTheWatch(AccessRequestWorkflow):
    """The main loop as it was before the deadline watch (a rollback)."""

    @workflow.run
    async def run(self, raw: dict[str, Any], carried: AccessState | None = None):
        if carried is None:
            await self._intake(raw)
        return await self._run_before_watch(raw)


def variant_replayer(cls, **kwargs):
    # The variants live in this test module, which the sandbox would re-import together
    # with pytest; nondeterminism is detected by the SDK core either way.
    return build_replayer([cls], workflow_runner=UnsandboxedWorkflowRunner(), **kwargs)


def patch_markers(export: exports.Export, patch_id: str = APPROVE_RECORDS_WORKS) -> list[int]:
    found = []
    for run in export.runs:
        for event in run.history.events:
            if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
                attrs = event.marker_recorded_event_attributes
                data = attrs.details["patch-data"].payloads[0].data if "patch-data" in attrs.details else b""
                if attrs.marker_name == "core_patch" and json.loads(data or b"{}").get("id") == patch_id:
                    found.append(event.event_id)
    return found


def parecer_email_event(export: exports.Export) -> int:
    """Id of the event scheduling the parecer e-mail: the old code's first effect of
    ``approve`` (the unguarded variant records a works_declared step before it)."""
    for event in export.runs[0].history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "send_email":
                if json.loads(attrs.input.payloads[0].data)["template"] == "parecer_issued":
                    return event.event_id
    raise AssertionError("no parecer e-mail in the history")


# --- the golden set -------------------------------------------------------------------


def test_golden_set_is_there_and_small():
    names = {p.name.removesuffix(".json.gz") for p in FILES}
    assert set(SCENARIOS) <= names | {"beneficiaries-registered"}
    assert "technician-email-change-confirmed" in names
    assert FROZEN <= names, "a frozen history (older code) is missing"
    total = sum(p.stat().st_size for p in FILES)
    assert total < 400_000, f"golden histories grew to {total} bytes"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
async def test_golden_history_replays_with_current_code(path: Path):
    export = exports.read(path)
    [outcome] = await replay([export])
    assert outcome.ok, outcome.line()
    assert outcome.workflow_type in REQUIRED_STATUSES


async def test_replay_runs_activations_on_its_own_thread_unless_told_otherwise():
    """The audit replayer skips the worker's thread pool (see build_replayer); the verdict
    is the same either way."""
    export = exports.read(POSTPATCH)
    for kwargs, inline in (({}, True), ({"debug_mode": False}, False)):
        WhereItRuns.threads.clear()
        [outcome] = await replay([export], variant_replayer(WhereItRuns, **kwargs))
        assert outcome.ok, outcome.line()
        assert WhereItRuns.threads, "the workflow did not run"
        assert (set(WhereItRuns.threads) == {threading.get_ident()}) is inline, kwargs


async def test_golden_set_reaches_every_status_of_every_workflow_type():
    reached: dict[str, set[str]] = {name: set() for name in REQUIRED_STATUSES}
    chains = children = 0
    for path in FILES:
        export = exports.read(path)
        line = await timeline.build(export)
        reached[export.workflow_type] |= {s.status for s in line.steps if s.status}
        chains += len(export.runs) > 1
        children += any(s.action == "child_started" for s in line.steps)
    for workflow_type, statuses in REQUIRED_STATUSES.items():
        missing = statuses - reached[workflow_type]
        assert not missing, f"{workflow_type}: no golden history reaches {sorted(missing)}"
    assert chains >= 1, "no continue-as-new chain among the golden histories"
    assert children >= 1, "no child workflow start among the golden histories"


def test_cli_replays_the_golden_directory():
    result = CliRunner().invoke(audit_app, ["replay", "--dir", str(HISTORIES)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith(("OK", "FALHA"))]
    assert len(lines) == len(FILES) and all(line.startswith("OK ") for line in lines)
    assert f"{len(FILES)} processo(s)" in result.output


# --- the patch (docs/PATCHING.md) -----------------------------------------------------


async def test_patch_old_and_new_histories_both_replay():
    old, new = exports.read(PREPATCH), exports.read(POSTPATCH)
    assert patch_markers(old) == [], "the frozen history must predate the patch"
    assert len(patch_markers(new)) == 1
    new_steps = [s.action for s in (await timeline.build(new)).steps]
    old_steps = [s.action for s in (await timeline.build(old)).steps]
    assert "works_declared" in new_steps and "works_declared" not in old_steps
    outcomes = await replay([old, new])
    assert [(o.workflow_id, o.ok) for o in outcomes] == [(e.workflow_id, True) for e in (old, new)], [
        o.line() for o in outcomes]


async def test_removing_the_patch_guard_fails_the_old_history_at_its_event():
    old = exports.read(PREPATCH)
    expected_id = parecer_email_event(old)
    [outcome] = await replay([old], variant_replayer(ApproveWithoutGuard))
    assert not outcome.ok
    failure = outcome.failure
    assert failure.nondeterminism
    assert failure.event_id == expected_id
    assert failure.event == "ActivityTaskScheduled send_email"
    assert "record_transition" in failure.error
    assert f"no evento {expected_id}" in outcome.line()


async def test_patched_histories_need_the_patch_call_kept():
    """Dropping the ``patched`` call (or rolling back to the pre-patch code) fails the
    histories written after the patch: the policy's deprecate-then-remove order."""
    new = exports.read(POSTPATCH)
    marker = patch_markers(new)[0]
    for variant in (ApproveWithoutGuard, ApproveBeforeThePatch):
        [outcome] = await replay([new], variant_replayer(variant))
        assert not outcome.ok and outcome.failure.nondeterminism, variant.__name__
        assert outcome.failure.event_id == marker
        assert APPROVE_RECORDS_WORKS in outcome.failure.error


async def test_pre_patch_code_still_replays_the_old_history():
    """Sanity of the variants above: the pre-patch variant is the code that wrote it."""
    [outcome] = await replay([exports.read(PREPATCH)], variant_replayer(ApproveBeforeThePatch))
    assert outcome.ok, outcome.line()


async def test_deadline_watch_old_and_new_histories_both_replay():
    old, new = exports.read(BEFORE_WATCH), exports.read(WITH_WATCH)
    assert patch_markers(old, DEADLINE_WATCH) == [], "the frozen history must predate the watch"
    assert len(patch_markers(new, DEADLINE_WATCH)) == len(new.runs)  # one per run
    assert [s.action for s in (await timeline.build(old)).steps] == [
        s.action for s in (await timeline.build(new)).steps
    ], "the same scenario takes the same steps before and after the watch"
    outcomes = await replay([old, new])
    assert [(o.workflow_id, o.ok) for o in outcomes] == [(e.workflow_id, True) for e in (old, new)], [
        o.line() for o in outcomes]


async def test_deadline_watch_needs_its_guard_both_ways():
    """Without the guard the old history breaks; without the patch call (or rolled back)
    the new one breaks at its marker; the old loop still explains the old history."""
    old, new = exports.read(BEFORE_WATCH), exports.read(WITH_WATCH)
    [outcome] = await replay([old], variant_replayer(WatchWithoutGuard))
    assert not outcome.ok and outcome.failure.nondeterminism, outcome.line()
    # The unguarded code starts the watch's timer where the old code scheduled a step.
    assert outcome.failure.event_id is not None and "Timer" in outcome.failure.error
    marker = patch_markers(new, DEADLINE_WATCH)[0]
    for variant in (WatchWithoutGuard, LoopBeforeTheWatch):
        [outcome] = await replay([new], variant_replayer(variant))
        assert not outcome.ok and outcome.failure.nondeterminism, variant.__name__
        assert outcome.failure.event_id == marker, outcome.line()
        assert DEADLINE_WATCH in outcome.failure.error
    [outcome] = await replay([old], variant_replayer(LoopBeforeTheWatch))
    assert outcome.ok, outcome.line()


async def test_technician_deadline_watch_old_and_new_histories_both_replay():
    from workflows.technician import DEADLINE_WATCH as TECHNICIAN_WATCH

    old = exports.read(HISTORIES / "technician-approved-late-pre-deadline-watch.json.gz")
    new = exports.read(HISTORIES / "technician-approved-late.json.gz")
    assert patch_markers(old, TECHNICIAN_WATCH) == []
    assert len(patch_markers(new, TECHNICIAN_WATCH)) == 1
    steps = [[s.action for s in (await timeline.build(e)).steps] for e in (old, new)]
    assert steps[0] == steps[1] and "sla_breach" in steps[0]
    outcomes = await replay([old, new])
    assert [(o.workflow_id, o.ok) for o in outcomes] == [(e.workflow_id, True) for e in (old, new)], [
        o.line() for o in outcomes]


@pytest.mark.parametrize("name, module", [
    ("access-lapse-cycles-cancelled", "workflows.access_request"),
    ("technician-approved-late", "workflows.technician"),
    ("beneficiaries-rejected", "workflows.beneficiaries"),
])
async def test_party_check_old_and_new_histories_both_replay(name: str, module: str):
    """Histories from before the validators checked who the actor is carry no marker; the
    regenerated ones carry their workflow's party-check patch once per run; both replay,
    and the same scenario takes the same steps (a validator changes no command)."""
    import importlib

    patch_id = importlib.import_module(module).PARTY_CHECK
    old = exports.read(HISTORIES / f"{name}-pre-party-check.json.gz")
    new = exports.read(HISTORIES / f"{name}.json.gz")
    assert patch_markers(old, patch_id) == [], "the frozen history must predate the party check"
    assert len(patch_markers(new, patch_id)) == len(new.runs), "one marker per run"
    steps = [[s.action for s in (await timeline.build(e)).steps] for e in (old, new)]
    assert steps[0] == steps[1]
    outcomes = await replay([old, new])
    assert all(o.ok for o in outcomes), [o.line() for o in outcomes]


# --- a broken history ------------------------------------------------------------------


def broken_copy(path: Path, target: Path) -> int:
    """Rewrite one scheduled e-mail activity as another activity; returns its event id."""
    data = json.loads(exports.read(path).to_json())
    events = data["runs"][0]["history"]["events"]
    for event in events:
        attrs = event.get("activityTaskScheduledEventAttributes")
        if attrs and attrs["activityType"]["name"] == "send_email":
            attrs["activityType"]["name"] = "issue_numbers"
            target.write_text(json.dumps(data))
            return int(event["eventId"])
    raise AssertionError("no e-mail activity to break")


async def test_a_tampered_history_is_caught_at_its_event(tmp_path):
    broken = tmp_path / "broken.json"
    event_id = broken_copy(HISTORIES / "access-withdrawn.json.gz", broken)
    [outcome] = await replay([exports.read(broken)])
    assert not outcome.ok and outcome.failure.nondeterminism
    assert outcome.failure.event_id == event_id
    assert outcome.failure.event == "ActivityTaskScheduled issue_numbers"


def test_cli_replay_exits_2_on_a_broken_history(tmp_path):
    good = tmp_path / "good.json.gz"
    exports.read(HISTORIES / "technician-rejected.json.gz").write(good)
    broken = tmp_path / "broken.json"
    event_id = broken_copy(HISTORIES / "access-withdrawn.json.gz", broken)
    result = CliRunner().invoke(audit_app, ["replay", "--file", str(good), "--file", str(broken)])
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("OK ") and "gd-technician-" in lines[0]
    assert lines[1].startswith("FALHA ") and f"não determinismo no evento {event_id}" in lines[1]
    assert "1 com falha" in result.output
    as_json = CliRunner().invoke(audit_app, ["replay", "--file", str(broken), "--json"])
    assert as_json.exit_code == 2
    [row] = json.loads(as_json.output)
    assert row["ok"] is False and row["runs"][0]["event_id"] == event_id


def test_cli_replay_refuses_bad_sources(tmp_path):
    runner = CliRunner()
    both = runner.invoke(audit_app, ["replay", "gd-request-x", "--dir", str(tmp_path)])
    assert both.exit_code == 2 and "exatamente uma origem" in both.output
    empty = runner.invoke(audit_app, ["replay", "--dir", str(tmp_path)])
    assert empty.exit_code == 2 and "nenhuma exportação" in empty.output
    (tmp_path / "x.json").write_text('{"not": "an export"}')
    wrong = runner.invoke(audit_app, ["replay", "--file", str(tmp_path / "x.json")])
    assert wrong.exit_code == 2 and "gd-history-export/1" in wrong.output


def test_export_file_round_trips_byte_for_byte(tmp_path):
    """Writing what was read gives the same histories (plain and gzip)."""
    original = exports.read(HISTORIES / "access-continue-as-new.json.gz")
    for name in ("copy.json", "copy.json.gz"):
        again = exports.read(_written(original, tmp_path / name))
        assert [r.run_id for r in again.runs] == [r.run_id for r in original.runs]
        assert [r.history.events for r in again.runs] == [r.history.events for r in original.runs]
    assert exports.previous_run_id(original.runs[1].history) == original.runs[0].run_id
    assert exports.next_run_id(original.runs[0].history) == original.runs[1].run_id


def _written(export: exports.Export, path: Path) -> Path:
    clone = copy.copy(export)
    clone.write(path)
    return path


def test_batch_replay_keeps_the_order_of_its_input():
    """Many histories through one replayer and its parallel lanes: outcomes in input order."""
    small = [p for p in FILES if "refused" in p.name or "rejected" in p.name]
    loaded = [exports.read(path) for path in small] * 3
    outcomes = asyncio.run(replay(loaded, lanes=4))
    assert [o.workflow_id for o in outcomes] == [e.workflow_id for e in loaded]
    assert [len(o.runs) for o in outcomes] == [len(e.runs) for e in loaded]
    assert all(o.ok for o in outcomes)


# --- several processes (gd audit replay --jobs) ---------------------------------------


def test_jobs_replay_gives_the_same_outcomes_in_the_same_order(tmp_path):
    """Two processes, the golden set plus a broken history: the same verdicts, in input
    order, as one process; the broken one still named at its event."""
    broken = tmp_path / "broken.json"
    event_id = broken_copy(HISTORIES / "access-withdrawn.json.gz", broken)
    loaded = [exports.read(path) for path in FILES] + [exports.read(broken)]
    alone = asyncio.run(replay_processes(loaded, jobs=1))
    spread = asyncio.run(replay_processes(loaded, jobs=2))
    assert [o.line() for o in spread] == [o.line() for o in alone]
    assert [o.workflow_id for o in spread] == [e.workflow_id for e in loaded]
    assert [o.ok for o in spread] == [True] * len(FILES) + [False]
    assert spread[-1].failure.event_id == event_id
    chain = next(o for o in spread if len(o.runs) > 1)  # continue-as-new runs stay together
    assert [r.run_id for r in chain.runs] == [
        r.run_id for r in next(e for e in loaded if e.workflow_id == chain.workflow_id).runs]


def test_shards_balance_events_and_keep_every_export_once():
    loaded = [exports.read(path) for path in FILES]
    groups = shards(loaded, 3)
    assert sorted(i for g in groups for i in g) == list(range(len(loaded)))
    loads = [sum(loaded[i].event_count for i in g) for g in groups]
    biggest = max(e.event_count for e in loaded)
    assert max(loads) - min(loads) <= biggest
    assert sorted(shards(loaded[:2], 5)) == [[0], [1]]  # no empty shard
    assert auto_jobs(50, cpus=8) == 1 and auto_jobs(250, cpus=8) == 2 and auto_jobs(10_000, cpus=2) == 2


def test_cli_replay_with_jobs(tmp_path):
    result = CliRunner().invoke(audit_app, ["replay", "--dir", str(HISTORIES), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert f"{len(FILES)} OK, 0 com falha" in result.output
    zero = CliRunner().invoke(audit_app, ["replay", "--dir", str(HISTORIES), "--jobs", "0"])
    assert zero.exit_code == 2 and "--jobs" in zero.output
