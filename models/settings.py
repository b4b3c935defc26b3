"""Settings from the environment (the names of CONTRACT.md), read once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Relays a worker may reach without TLS: this machine only.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class GdSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GD_", extra="ignore")

    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "gd-access"
    database_url: str = "sqlite:///var/gd.db"
    blob_dir: Path = Path("var/blobs")
    # Where document bytes live (activities/blobs.py): "database" (the store's
    # document_blob table), "s3://bucket/prefix" (S3-compatible; credentials from the
    # standard AWS_* variables), "local" (blob_dir: one machine, dev only). Empty: the
    # database when the store is PostgreSQL, else blob_dir.
    blob_url: str | None = None
    # S3-compatible endpoint other than AWS (MinIO, Ceph…), e.g. http://minio:9000.
    s3_endpoint_url: str | None = None
    # The Temporal connection (worker.connect_config): TLS with the system's CAs or
    # temporal_tls_ca; mTLS with a client certificate and key; an API key (Temporal
    # Cloud); the server name the certificate must carry when it is not the address's.
    temporal_tls: bool = False
    temporal_tls_cert: str | None = None
    temporal_tls_key: str | None = None
    temporal_tls_ca: str | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None
    # host:port of the worker's Prometheus endpoint (/metrics); empty: no endpoint.
    metrics_address: str | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_timeout_s: float = 10.0
    # TLS to the relay: STARTTLS on a plain port (587) or implicit TLS (465).
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_local_hostname: str | None = None
    # "dev" (set by `gd dev up` and the tests) allows what production refuses at start-up:
    # a remote relay in clear, payloads in clear (no GD_CODEC_KEYS). Anything else is
    # production.
    env: str = "production"
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
    # Intake checks an installation number against the customer base (table
    # ``installation``, `gd installations import`): "on", or "off" for a distributor
    # without an export yet (README "Base de clientes").
    installations_check: Literal["on", "off"] = "on"
    # The key of the keyed hash (HMAC-SHA256) of a request's customer CPF/CNPJ kept in
    # request_record.customer_digest, so the portal finds a customer's requests without
    # the clear document in the store (activities/digests.py). Set the same value on the
    # worker and the API (``python -c "import secrets; print(secrets.token_urlsafe(32))"``);
    # unset: a fixed public key (dev only: a CPF's hash could then be brute-forced).
    document_key: SecretStr | None = None

    @field_validator(
        "blob_url", "s3_endpoint_url", "temporal_tls_cert", "temporal_tls_key",
        "temporal_tls_ca", "temporal_tls_server_name", "temporal_api_key", "metrics_address",
        "document_key", mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """A variable set to "" (a deploy file's placeholder) means: not set."""
        if isinstance(value, str) and not value.strip():
            return None
        return value


def startup_problems(settings: GdSettings, environ: dict[str, str] | None = None) -> list[str]:
    """Why a worker must not start with these settings (pt-BR, one line each); none in dev.

    Outside dev: e-mails carry credentials and personal data, so a relay that is not this
    machine needs TLS; payloads carry personal data, so GD_CODEC_KEYS must be set; and the
    customer-document digest (activities/digests.py) is keyed by GD_DOCUMENT_KEY, whose
    public dev default would let anyone who reads the store test a CPF against it."""
    import os

    if settings.env.strip().lower() == "dev":
        return []
    environ = os.environ if environ is None else environ
    problems = []
    if settings.smtp_host.strip().lower() not in LOCAL_HOSTS and not (
        settings.smtp_starttls or settings.smtp_ssl
    ):
        problems.append(
            f"GD_SMTP_HOST={settings.smtp_host} não é local e o envio seria sem TLS: defina "
            "GD_SMTP_STARTTLS=true (porta 587) ou GD_SMTP_SSL=true (porta 465), ou GD_ENV=dev"
        )
    if not (environ.get("GD_CODEC_KEYS") or environ.get("GD_CODEC_KEY")):
        problems.append(
            "GD_CODEC_KEYS não definida: fora de GD_ENV=dev os payloads devem ser cifrados "
            "(gere uma chave com `python -m codec new-key`)"
        )
    if settings.document_key is None:
        problems.append(
            "GD_DOCUMENT_KEY não definida: fora de GD_ENV=dev o resumo do CPF/CNPJ do cliente "
            "usa uma chave secreta, a mesma em workers, API e `gd db upgrade`"
        )
    return problems


@lru_cache(maxsize=1)
def get_settings() -> GdSettings:
    return GdSettings()
