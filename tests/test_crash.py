"""Worker crash: ``python -m worker`` SIGKILLed at random moments while lifecycles run.

Everything is real: the dev server on a SQLite file, the worker as a separate process
(killed with SIGKILL — no graceful shutdown, in-flight workflow and activity tasks are
lost with it — and started again), the SQLite store and the SMTP sink. The driver keeps
going the way the CLI would (updates with stable ids, resent after errors).

Checked afterwards (tests/reliability_helpers.audit): every lifecycle CONNECTED; every
e-mail key at the sink exactly once (by X-GD-Key and Message-ID) and none missing; every
NS issued once (IssuedNumber rows == the workflow's NS list, the NS sequence == rows);
the store's RequestRecord agrees with each workflow and its event log holds each step
once, in order.

The one duplicate the design allows (activities/mail.py: a crash between the SMTP
server's 250 and the outbox's ``sent`` commit) is tolerated only when the evidence says
it is that window — same Message-ID, the outbox recorded a retry, the first copy arrived
within 2 s before a SIGKILL — and it is printed as a figure. Any other second copy fails.

``make test`` runs 20 lifecycles / 20 kills; ``make soak`` 100 lifecycles / 100 kills.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.reliability_helpers import ChaosStack, Scenario, audit, plan, summary


async def crash_run(tmp_path, *, lifecycles: int, technicians: int, kills: int, seed: int,
                    gap: tuple[float, float], fast_restarts: bool, technicians_under_fire: bool,
                    concurrency: int | None = None, keep_flowing: bool = False,
                    step_timeout: float = 240.0) -> dict:
    """``kills`` SIGKILLs, each ``gap`` seconds (uniform, seeded) after the previous worker
    started polling. ``keep_flowing``: new lifecycles keep starting (``concurrency`` at a
    time) until the kills are done and at least ``lifecycles`` ran — the soak's steady
    traffic; otherwise exactly ``lifecycles``, all at once."""
    # Steady traffic draws from a pool big enough to outlast every kill: at ~1.4
    # lifecycles/s under chaos, 100 kills 2-10 s apart take ~1000 of them.
    pool = lifecycles * 30 if keep_flowing else lifecycles
    techs, lcs = plan(pool, technicians=technicians, seed=seed, tag=f"crash{seed}")
    rng = random.Random(seed)
    t0 = time.monotonic()
    async with ChaosStack(tmp_path, fast_restarts=fast_restarts) as stack:
        scenario = Scenario(stack, techs, lcs, step_timeout=step_timeout)
        scenario.upload_documents()
        more = (lambda n: n < lifecycles or len(stack.kills) < kills) if keep_flowing else None
        # Work outstanding at every kill, by construction rather than by timing: with a fixed
        # set of lifecycles, all of them stop before their last step until half the kills are
        # done, and the last one until every kill is done (the soak's traffic keeps flowing
        # through ``more`` instead).
        hold_all, hold_last = asyncio.Event(), asyncio.Event()
        if not keep_flowing:
            scenario.gates["record_inspection-final"] = hold_all
            scenario.gates[f"record_inspection-final:{lcs[-1].request_id}"] = hold_last
        if technicians_under_fire:
            work = asyncio.create_task(scenario.run(concurrency=concurrency, more=more))
        else:
            await scenario.run(lifecycles=False)
            work = asyncio.create_task(
                scenario.run(technicians=False, concurrency=concurrency, more=more))
        chaos_t0 = time.monotonic()
        killed_mid_run = 0
        open_at_kill: list[int] = []  # lifecycles not yet connected, at each kill
        try:
            while killed_mid_run < kills:
                await asyncio.sleep(rng.uniform(*gap))
                if work.done():
                    break  # only when it failed (the gates keep it open): raised below
                open_at_kill.append(sum(1 for lc in scenario.started if lc.decided_at is None))
                await stack.kill_worker()
                killed_mid_run += 1
                await stack.start_worker()
                if killed_mid_run >= kills // 2:
                    hold_all.set()
            hold_all.set()
            hold_last.set()
            last_kill = time.monotonic()
            await asyncio.wait_for(asyncio.shield(work), timeout=1800)
        finally:
            if not work.done():
                work.cancel()
        elapsed = time.monotonic() - t0
        ran = scenario.started
        report = audit(stack, techs, ran)
        figures = dict(
            lifecycles=len(ran), technicians=len(techs), kills=len(stack.kills),
            worker_starts=stack.worker_starts, emails=report.messages, keys=report.keys,
            lost=len(report.lost), duplicated=sum(report.duplicates.values()),
            duplicated_unexplained=sum(report.unexplained.values()),
            ns_issued=len(stack.issued_numbers()), update_resends=scenario.driver.retries.updates,
            query_retries=scenario.driver.retries.queries, seconds=round(elapsed, 1),
            kill_phase_s=round(last_kill - chaos_t0, 1),
            after_last_kill_s=round(time.monotonic() - last_kill, 1),
            slowest_lifecycle_s=round(max(lc.seconds for lc in ran), 1),
            open_lifecycles_at_kills=open_at_kill,
        )
        print(summary(test="crash", **figures))
        for key, why in report.explained.items():
            print(f"RELIABILITY documented-window duplicate {key}: {why}")
        for problem in report.problems:
            print(f"RELIABILITY problem {problem}")
        assert not report.lost, f"lost e-mails: {report.lost}"
        assert not report.unexplained, f"duplicated e-mails: {report.unexplained}"
        assert not report.problems, "\n".join(report.problems)
        assert killed_mid_run == kills, (
            f"only {killed_mid_run} of {kills} kills landed before the lifecycles finished")
        assert len(open_at_kill) == kills and all(open_at_kill), open_at_kill
        assert len(ran) >= lifecycles
        return figures


@pytest.mark.timeout(240)
async def test_worker_sigkilled_20_times_during_20_lifecycles(tmp_path):
    """20 lifecycles at once (4 paths: plain, suspend/corrections/reanalysis, reprove +
    inspection reproved, clock paused); the RTs are approved first. Restarts fork a
    pre-imported interpreter (FORK_SERVER) so 20 kills fit the `make test` budget; the
    soak restarts cold."""
    await crash_run(tmp_path, lifecycles=20, technicians=4, kills=20, seed=20260423,
                    gap=(0.3, 1.5), fast_restarts=True, technicians_under_fire=False)


@pytest.mark.soak
@pytest.mark.timeout(3600)
async def test_soak_worker_sigkilled_100_times_during_100_lifecycles(tmp_path):
    """100 cold restarts (`python -m worker`) while traffic keeps flowing — 25 lifecycles
    open at a time, RT registrations included — until the 100th kill; at least 100
    lifecycles. Kills are 2–10 s apart: a worker killed faster than it can replay its
    workflows (~10 s after a restart on 2 cores) makes no progress at all, loses nothing."""
    await crash_run(tmp_path, lifecycles=100, technicians=10, kills=100, seed=100100,
                    gap=(2.0, 10.0), fast_restarts=False, technicians_under_fire=True,
                    concurrency=25, keep_flowing=True, step_timeout=900.0)
