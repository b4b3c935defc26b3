"""`gd api` (serve the HTTP API with uvicorn) and `gd dev token` (mint a dev token).

Both are plain typer callables, registered in starter_cli with one line each.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from api.auth import API_ROLES


def _fail(line: str, code: int = 2) -> None:
    typer.echo(line, err=True)
    raise typer.Exit(code)


def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Endereço (padrão GD_API_HOST, 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Porta (padrão GD_API_PORT, 8000)."),
) -> None:
    """Serve a API HTTP v1 (uvicorn): autenticação por JWT (GD_AUTH_MODE oidc ou dev)."""
    import uvicorn

    from api.app import create_app
    from api.config import ApiSettings, ConfigError

    try:
        api_settings = ApiSettings().check()
    except ConfigError as error:
        _fail(f"gd api: {error}")
    except Exception as error:  # noqa: BLE001 - pydantic: a bad GD_API_PORT, GD_AUTH_MODE…
        _fail(f"gd api: configuração inválida: {' '.join(str(error).split())[:300]}")
    if host:
        api_settings.api_host = host
    if port:
        api_settings.api_port = port
    from observability import LogConfigError, setup_logging

    try:
        setup_logging()  # GD_LOG_FORMAT (text | json), GD_LOG_LEVEL; personal data masked
    except LogConfigError as error:
        _fail(f"gd api: {error}")
    app = create_app(api_settings=api_settings)
    typer.echo(
        f"API HTTP em http://{api_settings.api_host}:{api_settings.api_port}/api/v1/docs "
        f"(autenticação {api_settings.auth_mode})",
        err=True,
    )
    # log_config=None: uvicorn's own lines go through the root handler (same format, masked).
    uvicorn.run(app, host=api_settings.api_host, port=api_settings.api_port, log_level="warning",
                access_log=False, log_config=None)


def dev_token(
    actor_id: str = typer.Option(..., "--as", help="Id de quem age (vira o sub do token)."),
    role: list[str] = typer.Option(..., "--role", help=f"Papel (repita para vários): {', '.join(API_ROLES)}."),
    council_key: Optional[str] = typer.Option(None, "--council-key", help="Chave do RT, ex.: CREA-MG-123456."),
    document: Optional[str] = typer.Option(None, "--document", help="CPF/CNPJ do cliente."),
    ttl: int = typer.Option(12 * 3600, "--ttl", help="Validade em segundos."),
) -> None:
    """Imprime um token do emissor local de desenvolvimento (recusado em GD_AUTH_MODE=oidc)."""
    from api.auth import AuthError, DevIssuer, principal_from
    from api.config import ApiSettings

    if os.environ.get("GD_AUTH_MODE", "").strip().lower() == "oidc":
        _fail("gd dev token: recusado com GD_AUTH_MODE=oidc (os tokens vêm do provedor de identidade)")
    unknown = [r for r in role if r not in API_ROLES]
    if unknown:
        _fail(f"gd dev token: papel desconhecido: {', '.join(unknown)}; aceitos: {', '.join(API_ROLES)}")
    if not 60 <= ttl <= 30 * 86400:
        _fail("gd dev token: --ttl entre 60 s e 30 dias")
    settings = ApiSettings(auth_mode="dev")
    claims = {"sub": actor_id, "roles": role, "gd_council_key": council_key, "gd_document": document}
    try:
        checked = principal_from(claims)
    except AuthError as error:
        _fail(f"gd dev token: {error.message}")
    token = DevIssuer(settings).mint(
        checked.id, list(checked.roles), council_key=checked.council_key, document=checked.document, ttl_s=ttl
    )
    sys.stdout.write(token + "\n")
