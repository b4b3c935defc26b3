"""``python -m bench.profile_split``: py-spy raw stacks split into where a worker's CPU goes
(a hand-written profile: the shares are worked out from the sample counts below)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.profile_split import main, split

LOOP = ("thread (1): MainThread;run_forever (asyncio/base_events.py:607);"
        "_run_once (asyncio/base_events.py:1922);Handle._run (asyncio/events.py:80)")
SEND = LOOP + (";_ActivityWorker._execute_activity (temporalio/worker/_activity.py:600)"
               ";MailActivities.send_email (activities/mail.py:170)"
               ";SmtpPool.send (activities/mail.py:90)")
RECORD = ("thread (2): ThreadPoolExecutor-0_0;_worker (concurrent/futures/thread.py:83)"
          ";RecordActivities.record_transition (activities/records.py:464)"
          ";Session.flush (sqlalchemy/orm/session.py:4626)")
VISIT = LOOP + (";_WorkflowWorker._handle_activation (temporalio/worker/_workflow.py:500)"
                ";encode_completion (temporalio/bridge/worker.py:362)"
                ";PayloadVisitor.visit (temporalio/bridge/_visitor.py:52)")
OURS = LOOP + (";_WorkflowWorker._handle_activation (temporalio/worker/_workflow.py:385)"
               ";with_status (workflows/access_view.py:160)"
               ";BaseModel.model_dump (pydantic/main.py:400)")
WAITING = ("thread (3): ThreadPoolExecutor-0_1;Thread.run (threading.py:975)"
           ";_worker (concurrent/futures/thread.py:81)")
IDLE_LOOP = ("thread (1): MainThread;run_forever (asyncio/base_events.py:607)"
             ";_run_once (asyncio/base_events.py:1922);EpollSelector.select (selectors.py:468)")


def write(path: Path, counts: dict[str, int]) -> Path:
    path.write_text("".join(f"{stack} {n}\n" for stack, n in counts.items()))
    return path


def test_samples_go_to_the_first_category_and_waiting_threads_are_dropped(tmp_path: Path) -> None:
    counts, total = split(write(tmp_path / "ours-0.txt", {
        SEND: 30, RECORD: 20, VISIT: 10, OURS: 40, WAITING: 500, IDLE_LOOP: 900}))
    assert total == 100  # 500 + 900 samples of threads waiting for work are not CPU
    assert counts["activity: send_email (SMTP, outbox, rendering)"] == 30
    assert counts["activity: record_transition"] == 20
    assert counts["SDK: payload visitors (activation/completion)"] == 10
    # with_status calls pydantic: the sample is the workflow's, not the converter's
    assert counts["workflow code (ours or the floor's)"] == 40
    assert counts["SDK: data converter (JSON, pydantic)"] == 0


def test_shares_become_ms_per_lifecycle_from_the_runs_measured_cpu(tmp_path: Path, capsys) -> None:
    write(tmp_path / "ours-0.txt", {SEND: 30, RECORD: 20, VISIT: 10, OURS: 40, WAITING: 7})
    write(tmp_path / "floor_full-0.txt", {VISIT: 3, IDLE_LOOP: 5, LOOP: 1})
    report = tmp_path / "run.json"
    report.write_text(json.dumps({"runs": [
        {"name": "ours", "round": 0, "worker_cpu_ms_per_lifecycle": 150.0},
        {"name": "ours", "round": 1, "worker_cpu_ms_per_lifecycle": 999.0},
        {"name": "floor_full", "round": 0, "worker_cpu_ms_per_lifecycle": 80.0}]}))
    assert main([str(tmp_path), "--per-ms", str(report)]) == 0
    out = capsys.readouterr().out
    rows = {line[:50].strip(): line[50:].split() for line in out.splitlines()[1:]}
    # columns: floor_full, ours (sorted by file name); 30 of 100 samples x 150 ms = 45.0 ms
    assert rows["activity: send_email (SMTP, outbox, rendering)"] == ["0.0", "%", "0.0", "ms", "30.0", "%", "45.0", "ms"]
    assert rows["SDK: payload visitors (activation/completion)"] == ["75.0", "%", "60.0", "ms", "10.0", "%", "15.0", "ms"]
    assert rows["other (event loop, thread hand-offs)"][:4] == ["25.0", "%", "20.0", "ms"]


def test_an_empty_directory_is_an_error(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path)]) == 1
    assert "bench.lifecycle --py-spy" in capsys.readouterr().err
