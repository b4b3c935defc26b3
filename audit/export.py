"""Export a workflow's full history: every run of its continue-as-new chain, oldest first.

File format (``gd audit export ID -o FILE``), one JSON document (gzip-compressed when
FILE ends in ``.gz``; readers accept both)::

    {
      "format": "gd-history-export/1",
      "workflow_id": "gd-request-abc",
      "workflow_type": "AccessRequest",
      "exported_at": "2026-03-01T12:00:00+00:00",
      "runs": [
        {"run_id": "…", "history": {"events": [...]}},   # WorkflowHistory.to_json_dict()
        ...
      ]
    }

Each ``history`` is Temporal's own JSON form of the run's events (the same one the Web UI
and ``temporal workflow show --output json`` write), so
``WorkflowHistory.from_json(workflow_id, run["history"])`` reads it back. Payloads stay as
stored on the server: encoded (and encrypted, once a payload codec is configured), so an
export carries no more personal data in clear than the server does.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

FORMAT = "gd-history-export/1"
# A chain longer than this is a bug (a loop in run links), not an audit subject.
MAX_RUNS = 10_000


class ExportError(ValueError):
    """The workflow, run or file asked for does not exist or is not an export."""


@dataclass
class Run:
    run_id: str
    history: WorkflowHistory


@dataclass
class Export:
    workflow_id: str
    runs: list[Run] = field(default_factory=list)
    exported_at: datetime | None = None

    @property
    def workflow_type(self) -> str | None:
        if not self.runs or not self.runs[0].history.events:
            return None
        first = self.runs[0].history.events[0]
        return first.workflow_execution_started_event_attributes.workflow_type.name or None

    @property
    def event_count(self) -> int:
        return sum(len(r.history.events) for r in self.runs)

    def histories(self) -> list[WorkflowHistory]:
        return [r.history for r in self.runs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "workflow_id": self.workflow_id,
            "workflow_type": self.workflow_type,
            "exported_at": (self.exported_at or datetime.now(timezone.utc)).isoformat(),
            "runs": [{"run_id": r.run_id, "history": r.history.to_json_dict()} for r in self.runs],
        }

    def to_json(self) -> str:
        # Compact: the payloads are base64 anyway, and golden histories stay small.
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    def write(self, path: Path) -> None:
        """Write the export; a name ending in ``.gz`` is gzip-compressed (about 8× smaller:
        the payloads are base64 JSON)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (self.to_json() + "\n").encode("utf-8")
        if path.suffix == ".gz":
            # mtime=0: the same history always gives the same bytes.
            data = gzip.compress(data, mtime=0)
        path.write_bytes(data)


def previous_run_id(history: WorkflowHistory) -> str | None:
    """The run this one continued from (None for the first run of a chain)."""
    if not history.events:
        return None
    started = history.events[0].workflow_execution_started_event_attributes
    return started.continued_execution_run_id or None


def next_run_id(history: WorkflowHistory) -> str | None:
    """The run this one continued as (None unless its last event is ContinuedAsNew)."""
    if not history.events:
        return None
    last = history.events[-1]
    if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        return None
    return last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id or None


async def latest_run_id(client: Client, workflow_id: str) -> str:
    """The latest run of ``workflow_id``, from the raw describe: the SDK's describe decodes
    search attributes, and the time-skipping server returns an unset one as a null it
    cannot decode."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest

    raw = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
        )
    )
    return raw.workflow_execution_info.execution.run_id


async def fetch_chain(client: Client, workflow_id: str, run_id: str | None = None) -> Export:
    """Every run of the chain that ends at ``run_id`` (default: the latest run).

    Walks backwards through ``continued_execution_run_id`` of each run's first event, so
    the runs of one chain come out oldest first. Executions that merely reuse the id
    (a new registration after a rejection) are separate chains: export them by run id.
    """
    from temporalio.service import RPCError, RPCStatusCode

    try:
        if run_id is None:
            run_id = await latest_run_id(client, workflow_id)
        runs: list[Run] = []
        seen: set[str] = set()
        current: str | None = run_id
        while current is not None:
            if current in seen or len(runs) >= MAX_RUNS:
                raise ExportError(f"{workflow_id}: encadeamento de execuções em ciclo ({current})")
            seen.add(current)
            history = await client.get_workflow_handle(workflow_id, run_id=current).fetch_history()
            runs.append(Run(run_id=current, history=history))
            current = previous_run_id(history)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise ExportError(f"workflow {workflow_id} não encontrado no servidor") from None
        raise
    runs.reverse()
    return Export(workflow_id=workflow_id, runs=runs, exported_at=datetime.now(timezone.utc))


def from_dict(data: dict[str, Any], source: str = "") -> Export:
    where = f" ({source})" if source else ""
    if not isinstance(data, dict) or data.get("format") != FORMAT or not data.get("workflow_id"):
        raise ExportError(f"arquivo não é uma exportação {FORMAT}{where}")
    workflow_id = data["workflow_id"]
    runs = [
        Run(run_id=run["run_id"], history=WorkflowHistory.from_json(workflow_id, run["history"]))
        for run in data.get("runs") or []
    ]
    if not runs:
        raise ExportError(f"exportação sem execuções{where}")
    exported = data.get("exported_at")
    return Export(
        workflow_id=workflow_id,
        runs=runs,
        exported_at=datetime.fromisoformat(exported) if exported else None,
    )


def read(path: Path) -> Export:
    """Read an export written by ``Export.write`` (plain ``.json`` or ``.json.gz``)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the name says
            raw = gzip.decompress(raw)
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ExportError(f"arquivo {path} não encontrado") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"arquivo {path} não é JSON válido: {error}") from None
    return from_dict(data, str(path))


def export_files(directory: Path) -> list[Path]:
    """The export files directly in ``directory`` (``*.json`` and ``*.json.gz``), by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ExportError(f"diretório {directory} não encontrado")
    return sorted([*directory.glob("*.json"), *directory.glob("*.json.gz")])


def read_dir(directory: Path) -> list[Export]:
    return [read(path) for path in export_files(directory)]

