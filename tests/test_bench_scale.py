"""`python -m bench.scale` end to end on a small scale (a smoke run: no performance claim).
It starts its own dev server, SMTP sink, worker and ``gd api`` processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.scale import SEED_MIX, plan

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("open", "queue_p95_ms", "status_p95_ms", "action_p95_ms", "sla_report_s", "worker_rss_mib",
        "resume_s", "replay_s")


def test_plan_spreads_the_open_processes_over_every_waiting_status() -> None:
    targets = plan(100)
    assert len(targets) == 100
    # 100 split by the weights (18, 25, 10, 5, 12, 10, 5, 13, 2): they add up to 100.
    assert {s: targets.count(s) for s in SEED_MIX} == {
        "AWAITING_APR": 18, "UNDER_ANALYSIS": 25, "SUSPENDED": 10, "REPROVED": 5, "APPROVED": 12,
        "INSPECTION_REQUESTED": 10, "INSPECTION_REPROVED": 5, "AWAITING_ANSWER": 13, "PENDING_REVIEW": 2,
    }
    # 30 does not split evenly: the remainder goes over the mix, every process has a status.
    small = plan(30)
    assert len(small) == 30 and set(small) <= set(SEED_MIX)


def test_smoke_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--open", "30", "--samples", "4", "--lanes", "8",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=540,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    report = json.loads(out.read_text())
    for key in KEYS:
        assert key in report, key
    assert report["failures"] == 0
    # Every seeded process is open on the server, each in the status it was driven to
    # (the technician approved at setup is closed).
    assert report["open"] == 30
    counts = report["open_by_status"]
    assert sum(counts.values()) == 30
    assert counts["UNDER_ANALYSIS"] >= 7 and counts["AWAITING_APR"] >= 5 and counts["INSPECTION_REPROVED"] >= 1
    # The queue lists what waits for an analyst: the API's default view shows requests and
    # inquiries (27 of the 30: not the RT registrations), up to its page of 50.
    assert report["queue_api"]["default"]["items"] == 30 - counts["PENDING_REVIEW"]
    assert report["queue_api"]["status=UNDER_ANALYSIS"]["items"] == counts["UNDER_ANALYSIS"]
    analyst_turn = counts["UNDER_ANALYSIS"] + counts["AWAITING_ANSWER"] + counts["PENDING_REVIEW"]
    assert report["queue_cli"]["default"]["rows"] == analyst_turn
    for key in ("queue_p95_ms", "status_p95_ms", "action_p95_ms"):
        assert 0 < report[key] < 120_000, key
    assert report["action_post"]["errors"] == 0 and report["action_post"]["n"] > 0
    assert 0 < report["sla_report_s"] < 600
    assert 20 < report["worker_rss_mib"] < 4_000
    assert report["resume"]["failed"] == 0 and report["resume"]["queries"] == 30
    assert 0 < report["resume_s"] < 600
    assert report["replay"]["exit"] == 0 and 0 < report["replay_s"] < 600
    assert report["server_db_bytes_per_request"] > 1_000
    assert "queue_p95_ms" in done.stdout
