"""Replay histories with today's workflow code: does the current code still explain them?

One ``Replayer`` (same workflows, data converter and payload codec as the worker, from
``worker.py``) replays every run of every workflow through a few replay streams, so a
batch pays the replay worker's start-up once (the workflow sandbox still costs tens of
milliseconds per run; ``--no-sandbox`` skips it). Activations run on the replayer's own
thread (see ``build_replayer``). A run passes when the code issues exactly the commands
its history recorded; otherwise the result names the nondeterminism and the history
event it was found at.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import AsyncIterator, Iterable, Sequence

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from audit.export import Export, fetch_chain

# Core names the event in some messages: "HistoryEvent(id: 23, …)" or "event_id: 23".
_EVENT_ID = re.compile(r"(?:HistoryEvent\(id: |event_id: )(\d+)")


@dataclass
class RunResult:
    run_id: str
    events: int
    error: str | None = None
    nondeterminism: bool = False
    event_id: int | None = None
    event: str | None = None  # e.g. "ActivityTaskScheduled send_email"


@dataclass
class ReplayOutcome:
    """The verdict for one workflow (all the runs of its chain)."""

    workflow_id: str
    workflow_type: str | None
    runs: list[RunResult]

    @property
    def ok(self) -> bool:
        return all(r.error is None for r in self.runs)

    @property
    def failure(self) -> RunResult | None:
        return next((r for r in self.runs if r.error is not None), None)

    @property
    def events(self) -> int:
        return sum(r.events for r in self.runs)

    def line(self) -> str:
        """The one pt-BR line ``gd audit replay`` prints for this workflow."""
        runs = f"{len(self.runs)} execução" if len(self.runs) == 1 else f"{len(self.runs)} execuções"
        kind = self.workflow_type or "?"
        if self.ok:
            return f"OK     {self.workflow_id} ({kind}; {runs}, {self.events} eventos)"
        bad = self.failure
        assert bad is not None
        what = "não determinismo" if bad.nondeterminism else "erro"
        where = f" no evento {bad.event_id}" if bad.event_id is not None else ""
        if bad.event:
            where += f" ({bad.event})"
        return f"FALHA  {self.workflow_id} ({kind}; execução {bad.run_id}): {what}{where}: {bad.error}"


def build_replayer(workflows: Sequence[type] | None = None, **kwargs) -> Replayer:
    """The replayer the worker would be: same workflows, same converter and codec.

    One difference, by default: each activation runs on the replayer's event-loop thread
    (the SDK's ``debug_mode``), not handed to a thread pool. A worker needs the pool to
    time a stuck activation out (2 s deadlock detection) while it keeps polling; a replay
    has nothing else to do meanwhile, and the hand-off (a thread switch and a GIL exchange
    each way, ~30 per history) cost 15–25 % of a replay. What ``debug_mode`` also changes
    does not touch the verdict: ``breakpoint()`` is allowed through the sandbox, and a
    replay whose code never yields hangs instead of failing after 2 s
    (``debug_mode=False`` restores the worker's behaviour).
    """
    import worker

    kwargs.setdefault("debug_mode", True)
    return Replayer(
        workflows=list(workflows) if workflows is not None else worker.all_workflows(),
        data_converter=worker.data_converter(),
        **kwargs,
    )


async def locate(replayer: Replayer, history: WorkflowHistory) -> int | None:
    """The first history event the current code cannot explain.

    Core names the event in some messages only ("Activity type of scheduled event 'x' does
    not match …" names none), so bisect: the shortest prefix of the history whose replay
    fails ends at the culprit. The prefixes go through one replay stream, each chosen
    from the previous verdict; a few replays, and only for failures.
    """
    events = list(history.events)
    bounds = {"low": 1, "high": len(events), "middle": len(events)}

    async def prefixes() -> AsyncIterator[WorkflowHistory]:
        # The replay stream asks for the next prefix only after its previous verdict
        # was read below, so ``bounds`` is current here.
        while bounds["low"] < bounds["high"]:
            bounds["middle"] = (bounds["low"] + bounds["high"]) // 2
            yield WorkflowHistory(history.workflow_id, events[: bounds["middle"]])

    if not events:
        return None
    async with replayer.workflow_replay_iterator(prefixes()) as verdicts:
        async for verdict in verdicts:
            if isinstance(verdict.replay_failure, NondeterminismError):
                bounds["high"] = bounds["middle"]
            else:
                bounds["low"] = bounds["middle"] + 1
    return events[bounds["high"] - 1].event_id


def event_named(message: str) -> int | None:
    found = _EVENT_ID.search(message)
    return int(found.group(1)) if found else None


_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')


def _describe(error: Exception) -> str:
    """The readable part of a replay failure (core wraps it in a Rust debug dump)."""
    text = str(error).strip() or type(error).__name__
    inner = _CORE_MESSAGE.search(text)
    if inner:
        text = inner.group(1).replace('\\"', '"')
    text = text.replace("[TMPRL1100] ", "")
    return " ".join(text.split())[:600]


def describe_event(history: WorkflowHistory, event_id: int | None) -> str | None:
    """``ActivityTaskScheduled send_email``: the event's type, and what it names."""
    from temporalio.api.enums.v1 import EventType

    event = next((e for e in history.events if e.event_id == event_id), None)
    if event is None:
        return None
    kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").title().replace("_", "")
    which = event.WhichOneof("attributes")
    attrs = getattr(event, which) if which else None
    name = None
    for path in ("activity_type.name", "workflow_type.name", "marker_name", "timer_id", "workflow_id"):
        value = attrs
        for part in path.split("."):
            value = getattr(value, part, None) if value is not None else None
        if isinstance(value, str) and value:
            name = value
            break
    return f"{kind} {name}" if name else kind


async def replay(
    exports: Iterable[Export], replayer: Replayer | None = None, *, lanes: int = 4
) -> list[ReplayOutcome]:
    """Replay every run of every export; one outcome per workflow, in the given order.

    Histories go through ``lanes`` replay streams of the one ``Replayer`` at once, so the
    SDK core's thread works on one while Python activates another (with activations
    inline: 19.4 → 22.0 histories/s from 1 to 4 streams, sandboxed, on this machine).
    Each run is still replayed whole and alone.
    """
    exports = list(exports)
    replayer = replayer or build_replayer()
    pairs = [(index, run) for index, export in enumerate(exports) for run in export.runs]
    found: dict[int, RunResult] = {}

    async def lane(positions: list[int]) -> None:
        async def histories() -> AsyncIterator[WorkflowHistory]:
            for position in positions:
                yield pairs[position][1].history

        async with replayer.workflow_replay_iterator(histories()) as replayed:
            done = 0
            async for result in replayed:
                position = positions[done]
                done += 1
                run = pairs[position][1]
                failure = result.replay_failure
                outcome = RunResult(run_id=run.run_id, events=len(run.history.events))
                if failure is not None:
                    outcome.error = _describe(failure)
                    outcome.nondeterminism = isinstance(failure, NondeterminismError)
                    outcome.event_id = event_named(str(failure))
                found[position] = outcome

    count = max(1, min(lanes, len(pairs)))
    await asyncio.gather(*(lane(list(range(i, len(pairs), count))) for i in range(count)))
    results: dict[int, list[RunResult]] = {index: [] for index in range(len(exports))}
    for position, (index, run) in enumerate(pairs):
        outcome = found[position]
        if outcome.nondeterminism and outcome.event_id is None:
            outcome.event_id = await locate(replayer, run.history)
        if outcome.error is not None:
            outcome.event = describe_event(run.history, outcome.event_id)
        results[index].append(outcome)
    return [
        ReplayOutcome(workflow_id=e.workflow_id, workflow_type=e.workflow_type, runs=results[i])
        for i, e in enumerate(exports)
    ]


# --- several processes ---------------------------------------------------------------

# A replay is CPU-bound Python (the SDK's per-activation work and the sandbox), so one
# process uses one core; a spawned process costs about a second to import the SDK and
# the workflows, worth it from about this many runs per extra process.
RUNS_PER_PROCESS = 100


def auto_jobs(runs: int, cpus: int | None = None) -> int:
    """How many processes ``gd audit replay`` uses by default for ``runs`` histories."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(cpus, runs // RUNS_PER_PROCESS))


def shards(exports: Sequence[Export], jobs: int) -> list[list[int]]:
    """Indexes of ``exports`` split into ``jobs`` groups of about the same number of
    events (a chain's runs stay together), largest first onto the lightest group."""
    groups: list[list[int]] = [[] for _ in range(max(1, jobs))]
    loads = [0] * len(groups)
    for index in sorted(range(len(exports)), key=lambda i: -exports[i].event_count):
        lightest = loads.index(min(loads))
        groups[lightest].append(index)
        loads[lightest] += exports[index].event_count
    return [sorted(group) for group in groups if group]


def _replay_shard(packed: list[tuple[str, list[tuple[str, bytes]]]], sandbox: bool) -> list[ReplayOutcome]:
    """In a child process: rebuild the exports from protobuf bytes and replay them."""
    from temporalio.api.history.v1 import History

    from audit.export import Run

    exports = [
        Export(workflow_id=workflow_id, runs=[
            Run(run_id=run_id, history=WorkflowHistory(workflow_id, list(History.FromString(data).events)))
            for run_id, data in runs
        ])
        for workflow_id, runs in packed
    ]
    kwargs: dict = {}
    if not sandbox:
        from temporalio.worker import UnsandboxedWorkflowRunner

        kwargs["workflow_runner"] = UnsandboxedWorkflowRunner()
    return asyncio.run(replay(exports, build_replayer(**kwargs)))


async def replay_processes(
    exports: Iterable[Export], *, jobs: int | None = None, sandbox: bool = True
) -> list[ReplayOutcome]:
    """``replay`` spread over ``jobs`` processes (default ``auto_jobs``); same outcomes,
    same order. With one job it runs here, in this process."""
    from temporalio.api.history.v1 import History

    exports = list(exports)
    runs = sum(len(e.runs) for e in exports)
    jobs = auto_jobs(runs) if jobs is None else max(1, jobs)
    groups = shards(exports, min(jobs, len(exports) or 1))
    if len(groups) <= 1:
        kwargs: dict = {}
        if not sandbox:
            from temporalio.worker import UnsandboxedWorkflowRunner

            kwargs["workflow_runner"] = UnsandboxedWorkflowRunner()
        return await replay(exports, build_replayer(**kwargs))
    packed = [
        [
            (exports[i].workflow_id, [
                (run.run_id, History(events=run.history.events).SerializeToString())
                for run in exports[i].runs
            ])
            for i in group
        ]
        for group in groups
    ]
    loop = asyncio.get_running_loop()
    # spawn, not fork: this process runs the SDK core's threads.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(groups), mp_context=context) as pool:
        results = await asyncio.gather(
            *(loop.run_in_executor(pool, _replay_shard, shard, sandbox) for shard in packed)
        )
    ordered: dict[int, ReplayOutcome] = {}
    for group, outcomes in zip(groups, results):
        ordered.update(zip(group, outcomes))
    return [ordered[i] for i in range(len(exports))]


async def fetch_exports(client: Client, workflow_ids: Iterable[str]) -> list[Export]:
    return [await fetch_chain(client, workflow_id) for workflow_id in workflow_ids]


async def ids_from_query(client: Client, query: str) -> list[str]:
    """Workflow ids matching a visibility query (``GdStatus="CONNECTED"``), each once."""
    seen: dict[str, None] = {}
    async for execution in client.list_workflows(query):
        seen.setdefault(execution.id, None)
    return list(seen)
