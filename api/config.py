"""Settings of the HTTP API (env names of API.md), checked once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_ISSUER = "gd-orchestrator-dev"


class ConfigError(RuntimeError):
    """A setting that keeps the API from starting: one clear pt-BR line."""


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GD_", extra="ignore")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    auth_mode: Literal["oidc", "dev"] = "oidc"
    auth_issuer: str | None = None
    auth_audience: str = "gd-orchestrator"
    auth_jwks_url: str | None = None
    # Not in API.md: where the dev issuer keeps its private key (dev mode only).
    auth_dev_key: Path = Path("var/dev-auth-key.pem")
    # Not in API.md: the least time between two JWKS fetches caused by an unknown kid,
    # so a flood of made-up kids cannot turn into a flood of fetches.
    auth_jwks_min_refetch_s: float = 1.0

    def check(self) -> "ApiSettings":
        if self.auth_mode == "oidc":
            missing = [
                name
                for name, value in (
                    ("GD_AUTH_ISSUER", self.auth_issuer),
                    ("GD_AUTH_JWKS_URL", self.auth_jwks_url),
                )
                if not value
            ]
            if missing:
                raise ConfigError(
                    f"modo de autenticação oidc exige {' e '.join(missing)} "
                    "(ou use GD_AUTH_MODE=dev para o emissor local de desenvolvimento)"
                )
        return self

    @property
    def issuer(self) -> str:
        return DEV_ISSUER if self.auth_mode == "dev" else str(self.auth_issuer)
