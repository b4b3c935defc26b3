"""The root `gd` app and where every group is mounted.

Who acts: `--as ID --role ROLE`, or `GD_ACTOR=role:id`; without a role the command's own
persona is used (analyst for `gd analyst …`, technician for `gd apr …`, …). `--json` on
every command prints machine-readable output on stdout. Exit codes: see `cli.common`.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Annotated, Optional

import typer

from api import cli as api_cli
from audit.cli import audit_app, report_app
from cli import access, demo, dev, installations, ops, registrations
from cli.common import COUNCIL_KEY_ENV, DOCUMENT_ENV, GdGroup, stderr_line

app = typer.Typer(
    name="gd",
    cls=GdGroup,
    help="Acesso de micro e minigeração distribuída (GD) na CEMIG — orquestração com Temporal.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    council_key: Annotated[
        Optional[str],
        typer.Option("--council-key", help="chave do RT que age (ex.: CREA-MG-123456)", envvar=COUNCIL_KEY_ENV),
    ] = None,
    document: Annotated[
        Optional[str],
        typer.Option("--document", help="CPF/CNPJ do cliente que age (só dígitos)", envvar=DOCUMENT_ENV),
    ] = None,
) -> None:
    """Who acts as a party: `gd --council-key CREA-MG-123456 apr register …`."""
    if council_key:
        os.environ[COUNCIL_KEY_ENV] = council_key
    if document:
        os.environ[DOCUMENT_ENV] = document


def mount(sub_app: typer.Typer, name: str) -> None:
    """`gd NAME …`: the group's help is its own (the text given to `cli.common.group`)."""
    app.add_typer(sub_app, name=name, help=sub_app.info.help)


# --- every group and top-level command, in the order `gd --help` lists them ----------------
# Another package adds its own here, one line each, e.g. the HTTP API:
#     mount(api.cli.api_app, "api")                        # gd api …
#     dev.dev_app.command("token")(api.cli.dev_token)      # gd dev token
mount(dev.dev_app, "dev")
mount(access.docs_app, "docs")
mount(access.request_app, "request")
mount(access.inquiry_app, "inquiry")
mount(access.apr_app, "apr")
mount(access.analyst_app, "analyst")
mount(access.reanalysis_app, "reanalysis")
mount(access.inspection_app, "inspection")
mount(registrations.technician_app, "technician")
mount(registrations.beneficiaries_app, "beneficiaries")
mount(audit_app, "audit")
mount(report_app, "report")
mount(ops.db_app, "db")  # gd db upgrade|current (migrations/)
app.command("worker")(dev.worker_cmd)
app.command("api")(api_cli.serve)  # gd api (HTTP API v1)
dev.dev_app.command("token")(api_cli.dev_token)  # gd dev token
app.command("demo")(demo.demo)
mount(installations.installations_app, "installations")  # gd installations (issue 17)


def main() -> None:
    """The `gd` script. It ends with ``os._exit``: the Temporal SDK's native threads may
    still hold the GIL machinery when the interpreter finalizes, which intermittently
    aborts the process ("PyGILState_Release", exit 134) instead of our exit code."""
    code = 0
    try:
        app()
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            code = done.code or 0
        else:
            stderr_line(str(done.code))
            code = 1
    except KeyboardInterrupt:
        stderr_line("interrompido")
        code = 130
    except BaseException:  # noqa: BLE001 - never lose the reason of a crash
        traceback.print_exc()
        code = 1
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    os._exit(code)
