"""`python -m bench.hotpaths`: the costs behind bench/README.md's "performance pass".

    python -m bench.hotpaths api --n 1000       # the API alone: one client, warm and first reads
    python -m bench.hotpaths imports --n 200    # the workflow modules, imported afresh N times

``api``: the stack of ``tests.api_stack`` (dev server, worker process, ``gd api``, local
JWKS issuer); one client reads one request N times through the API and N times directly
(``handle.query("status")``), then reads once each of 50 requests started directly with
the Temporal client (the API never saw them: its first read of each). Prints p50 of each
path and the ``gd api`` process' CPU per read (``/proc/<pid>/stat``).

``imports``: imports ``workflows.access_request`` (and the ``workflows`` modules it
loads) N times into fresh module objects, as the sandbox does for every workflow run, with
the ordinary loader and with ``worker.SharedCodeLoader``; prints KiB of RSS and ms per
import (the modules are kept, as a cached workflow keeps its own).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


async def api(n: int, cold: int = 50) -> None:
    from bench.lifecycle import request_payload, wait_status
    from models.ids import access_request_id
    from models.names import Queries, Workflows
    from tests.api_stack import running_stack
    from tests.test_api import Who, _under_analysis

    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(Path(tmp), worker_process=True) as stack:
            client, pid = stack.env.client, stack.api_proc.pid
            headers = {"Authorization": f"Bearer {stack.issuer.token('ana.bench', ['analyst'])}"}
            async with stack.http() as http:
                rid = await _under_analysis(http, Who(stack.issuer))
                handle = client.get_workflow_handle(access_request_id(rid))
                for _ in range(20):  # warm: connections, JWKS, caches
                    await http.get(f"/api/v1/requests/{rid}", headers=headers)
                    await handle.query(Queries.STATUS)
                through, direct = [], []
                cpu0 = _cpu_s(pid)
                for _ in range(n):
                    t = time.perf_counter()
                    r = await http.get(f"/api/v1/requests/{rid}", headers=headers)
                    through.append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
                warm_cpu = (_cpu_s(pid) - cpu0) / n
                for _ in range(n):
                    t = time.perf_counter()
                    await handle.query(Queries.STATUS)
                    direct.append(time.perf_counter() - t)
                rids = [f"hot-{uuid.uuid4().hex[:8]}" for _ in range(cold)]
                for other in rids:
                    await client.start_workflow(Workflows.ACCESS_REQUEST, request_payload(other, {"commercial_id": {}}),
                                                id=access_request_id(other), task_queue=stack.settings.task_queue)
                for other in rids:
                    await wait_status(client.get_workflow_handle(access_request_id(other)),
                                      lambda s: s.get("status") != "RECEIVED")
                first = []
                cpu0 = _cpu_s(pid)
                for other in rids:
                    t = time.perf_counter()
                    r = await http.get(f"/api/v1/requests/{other}", headers=headers)
                    first.append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
                first_cpu = (_cpu_s(pid) - cpu0) / cold
    p50 = lambda values: sorted(values)[len(values) // 2] * 1000  # noqa: E731
    print(f"carga (1 min) {os.getloadavg()[0]:.1f}; {n} leituras de um pedido, {cold} primeiras leituras")
    print(f"GET pela API p50 {p50(through):.2f} ms, direto p50 {p50(direct):.2f} ms: a API acrescenta "
          f"{p50(through) - p50(direct):+.2f} ms; CPU do gd api {warm_cpu * 1000:.2f} ms por GET")
    print(f"primeira leitura pela API p50 {p50(first):.2f} ms; CPU do gd api {first_cpu * 1000:.2f} ms por GET")


def imports(n: int) -> None:
    import worker  # noqa: F401 - loads what the workflow modules pass through
    import workflows.access_request  # noqa: F401

    names = [m for m in sys.modules if m == "workflows" or m.startswith("workflows.")]
    specs = {m: sys.modules[m].__spec__ for m in names}
    for shared in (False, True):
        kept = []
        before, started = _rss_mib(), time.perf_counter()
        for _ in range(n):
            for name in names:
                sys.modules.pop(name, None)
            for name in sorted(names, key=lambda m: m.count(".")):
                spec = specs[name]
                loader = worker.SharedCodeLoader(name, spec.origin) if shared else spec.loader
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                exec(loader.get_code(name), module.__dict__)
                kept.append(module)
        per_ms = (time.perf_counter() - started) / n * 1000
        print(f"{'código compartilhado' if shared else 'importação comum':<22} "
              f"{(_rss_mib() - before) / n * 1024:6.0f} KiB e {per_ms:5.1f} ms por importação dos {len(names)} módulos")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("api").add_argument("--n", type=int, default=1000)
    sub.add_parser("imports").add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    if args.what == "api":
        asyncio.run(api(args.n))
    else:
        imports(args.n)


if __name__ == "__main__":
    main()
