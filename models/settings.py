"""Settings from the environment (the names of CONTRACT.md), read once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class GdSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GD_", extra="ignore")

    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "gd-access"
    database_url: str = "sqlite:///var/gd.db"
    blob_dir: Path = Path("var/blobs")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_timeout_s: float = 10.0
    policy: str = "seed"
    mail_dir: Path = Path("var/mail")
    # Senders named in the distributor's guide (DOMAIN.md, technician registration).
    sender_agv: str = "agv@cemig.com.br"
    sender_apr: str = "part_apr@cemig.com.br"
    sender_partweb: str = "Partweb@cemig.com.br"
    supervisor_email: str = "supervisao.gd@cemig.com.br"
    analysts_email: str = "analise.gd@cemig.com.br"
    apr_url: str = "https://web.cemig.com.br/PARTAPR"
    agv_url: str = "https://atende.cemig.com.br/Login"
    # Months after a confirmation before an allocation takes effect (next billing cycle).
    billing_cycle_months: int = 1
    # Analysis cycles before AccessRequest continues as new (bounded history).
    cycles_per_run: int = 5


@lru_cache(maxsize=1)
def get_settings() -> GdSettings:
    return GdSettings()
