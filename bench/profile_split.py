"""``python -m bench.profile_split DIR``: where a worker's CPU goes, from the py-spy raw
stacks ``bench.lifecycle --py-spy DIR`` writes (one file per measured phase).

Samples of a thread waiting for work are dropped. Each other sample is put in the first category (in the order below) one of its frames matches,
so a category is inclusive of what it calls: ``send_email`` includes its SMTP and outbox
statements, "our workflow code" includes the pydantic work it asks for. With ``--per-ms``
the shares are turned into milliseconds of CPU per lifecycle using the phase's measured
worker CPU (``--json`` of the same run).

    python -m bench.lifecycle --n 100 --concurrency 20 --phases floor_full,ours \\
        --py-spy /tmp/prof --py-spy-bin TOOLS/bin/py-spy --json /tmp/prof/run.json
    python -m bench.profile_split /tmp/prof --per-ms /tmp/prof/run.json
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?):(?P<line>\d+)\)$")

# (category, test on one frame's function and file), first match over the stack wins.
CATEGORIES: list[tuple[str, object]] = [
    ("activity: send_email (SMTP, outbox, rendering)", lambda f, p: f.startswith("MailActivities.")),
    ("activity: record_transition", lambda f, p: f == "RecordActivities.record_transition"),
    ("activity: other store activities (intake, numbers)", lambda f, p: f.startswith("RecordActivities.")),
    ("activity: deadlines (local)", lambda f, p: f.startswith("DeadlineActivities.")),
    ("activity: the floor's no-ops", lambda f, p: p.endswith("bench/floor.py") and "activit" in f.lower()),
    ("SDK: payload visitors (activation/completion)",
     lambda f, p: "PayloadVisitor" in f or f in ("encode_completion", "decode_activation")),
    ("SDK: sandbox serialization context", lambda f, p: "serialization_context" in f or f.endswith("_get_current_dc")),
    ("workflow code (ours or the floor's)",
     lambda f, p: p.startswith(("workflows/", "models/", "domain/")) or p.endswith("bench/floor.py")),
    ("SDK: data converter (JSON, pydantic)", lambda f, p: p.endswith("temporalio/converter.py")
     or p.startswith("pydantic")),
    ("SDK: workflow activation (rest, sandbox)", lambda f, p: "_WorkflowWorker" in f or "_workflow_instance" in p
     or "workflow_sandbox" in p),
    ("SDK: activity worker (rest)", lambda f, p: p.endswith("worker/_activity.py")),
    ("logging", lambda f, p: p.startswith("logging/")),
]
OTHER = "other (event loop, thread hand-offs)"
# A thread waiting for work (py-spy counts a thread blocked in C as active): dropped, as are
# samples of threads with no Python frame (the SDK's Rust core).
_WAITING = {("EpollSelector.select", "selectors.py"), ("_worker", "concurrent/futures/thread.py"),
            ("Condition.wait", "threading.py"), ("Event.wait", "threading.py")}


def frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for raw in stack.split(";"):
        m = _FRAME.match(raw)
        if m:
            path = m.group("file")
            # site-packages/x/y.py -> x/y.py; the project's files are already relative
            path = path.split("site-packages/")[-1]
            out.append((m.group("func"), path))
    return out


def split(path: Path) -> tuple[collections.Counter, int]:
    counts: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        samples = int(n)
        fs = frames(stack)
        if not fs or fs[-1] in _WAITING:
            continue
        total += samples
        for name, test in CATEGORIES:
            if any(test(f, p) for f, p in fs):  # type: ignore[operator]
                counts[name] += samples
                break
        else:
            counts[OTHER] += samples
    return counts, total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--per-ms", metavar="JSON", type=Path,
                    help="bench.lifecycle --json of the same run: shares to ms of worker CPU per lifecycle")
    args = ap.parse_args(argv)
    cpu: dict[str, float] = {}
    if args.per_ms:
        report = json.loads(args.per_ms.read_text())
        for run in report.get("runs", []):
            if run.get("round", 0) == 0 and run.get("worker_cpu_ms_per_lifecycle") is not None:
                cpu[run["name"]] = run["worker_cpu_ms_per_lifecycle"]
    files = sorted(args.dir.glob("*-0.txt"))
    if not files:
        print(f"nenhum perfil em {args.dir} (bench.lifecycle --py-spy DIR)", file=sys.stderr)
        return 1
    splits = {f.name.removesuffix("-0.txt"): split(f) for f in files}
    names = [name for name, _ in CATEGORIES] + [OTHER]
    width = max(len(n) for n in names)
    header = f"{'':{width}}" + "".join(f"{p:>18}" for p in splits)
    print(header)
    for name in names:
        row = f"{name:{width}}"
        for phase, (counts, total) in splits.items():
            share = counts[name] / total if total else 0.0
            row += f"{100 * share:8.1f} %" + (f" {share * cpu[phase]:6.1f} ms" if phase in cpu else " " * 9)
        print(row)
    print(f"{'samples':{width}}" + "".join(f"{total:>18}" for _, total in splits.values()))
    if cpu:
        print(f"{'worker CPU ms/lifecycle (measured)':{width}}" + "".join(
            f"{cpu.get(p, float('nan')):>18.0f}" for p in splits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
