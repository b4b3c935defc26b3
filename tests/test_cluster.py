"""The Temporal connection of a real cluster: `gd worker --check` against a dev server
(connection, namespace, search attributes, the store's schema; the exact `temporal`
commands for what is missing, which the test then runs), and the TLS/mTLS/API-key
settings as they reach ``Client.connect``."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import worker
from models.search_attributes import CLI_TYPES
from models.settings import GdSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPORAL = str(Path(sys.executable).parent / "temporal")
GD = [sys.executable, "-c", "import starter_cli; starter_cli.main()"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def bare_server():
    """A dev server with only two of the nine search attributes registered."""
    port = _free_port()
    server = subprocess.Popen(
        [TEMPORAL, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
         "--http-port", str(_free_port()), "--metrics-port", str(_free_port()),
         "--log-level", "error", "--search-attribute", "GdStatus=Keyword",
         "--search-attribute", "GdKind=Keyword"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([TEMPORAL, "operator", "namespace", "describe", "--address", address,
                              "-n", "default"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline and server.poll() is None, "dev server did not start"
            time.sleep(0.3)
        yield address
    finally:
        server.terminate()
        server.wait(15)


def gd(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GD_", "OTEL_"))}
    clean.update({"PYTHONPATH": str(PROJECT_ROOT), "GD_ENV": "dev", **env})
    return subprocess.run(GD + list(args), cwd=cwd, env=clean, capture_output=True, text=True,
                          timeout=120)


def test_worker_check_prints_the_commands_for_what_is_missing_and_they_fix_it(bare_server, tmp_path):
    env = {"GD_TEMPORAL_ADDRESS": bare_server, "GD_NAMESPACE": "default"}
    first = gd("worker", "--check", cwd=tmp_path, **env)
    assert first.returncode == 1, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == f"✓ conexão com {bare_server} (sem TLS)"
    assert lines[1] == "✓ namespace default"
    assert lines[2] == ("✗ atributos de busca ausentes em default: GdClass, GdServiceNote, "
                        "GdProtocol, GdTechnician, GdNextActor, GdDueAt, GdSlaBreached, GdAssignee; "
                        "crie-os com:")
    commands = [line.strip() for line in lines if line.startswith("  temporal ")]
    assert commands == [
        f"temporal operator search-attribute create --address {bare_server} --namespace default "
        f"--name {name} --type {kind}"
        for name, kind in [("GdClass", "Keyword"), ("GdServiceNote", "Keyword"),
                           ("GdProtocol", "Keyword"), ("GdTechnician", "Keyword"),
                           ("GdNextActor", "Keyword"), ("GdDueAt", "Datetime"),
                           ("GdSlaBreached", "Bool"), ("GdAssignee", "Keyword")]]
    # A new working directory: the store is not migrated yet.
    # The newest revision is the highest-numbered file in migrations/versions.
    head = max(p.name[:4] for p in (PROJECT_ROOT / "migrations" / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert lines[-2] == (f"✗ banco de dados na revisão (nenhuma), o código espera {head}: rode "
                         "`gd db upgrade` antes de iniciar o worker")
    assert lines[-1] == "✓ documentos no disco desta máquina (var/blobs): só para desenvolvimento"

    for command in commands:  # exactly what an operator would paste
        argv = shlex.split(command)
        ran = subprocess.run([TEMPORAL, *argv[1:]], capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
    assert gd("db", "upgrade", cwd=tmp_path, **env).returncode == 0
    second = gd("worker", "--check", cwd=tmp_path, **env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"✓ atributos de busca ({len(CLI_TYPES)})" in second.stdout.splitlines()
    assert f"✓ banco de dados na revisão {head} (a mais nova)" in second.stdout.splitlines()


def test_worker_check_names_a_missing_namespace_and_an_unreachable_server(bare_server, tmp_path):
    missing = gd("worker", "--check", cwd=tmp_path, GD_TEMPORAL_ADDRESS=bare_server,
                 GD_NAMESPACE="gd-producao")
    assert missing.returncode == 1
    assert (f"  temporal operator namespace create --address {bare_server} --namespace gd-producao"
            in missing.stdout.splitlines())
    down = gd("worker", "--check", cwd=tmp_path, GD_TEMPORAL_ADDRESS=f"127.0.0.1:{_free_port()}")
    assert down.returncode == 2
    assert down.stdout.startswith("✗ conexão com 127.0.0.1:")


def _certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for temporal.cemig.local and a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(timezone.utc)

    def make(name: str, issuer=None, issuer_key=None, ca=False, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(issuer.subject if issuer else subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(san)]), critical=False)
        cert = builder.sign(issuer_key or key, hashes.SHA256())
        return cert, key

    ca, ca_key = make("gd-test-ca", ca=True)
    server, server_key = make("temporal.cemig.local", ca, ca_key, san="temporal.cemig.local")
    client, client_key = make("gd-worker", ca, ca_key)
    files = {}
    for name, (cert, key) in {"ca": (ca, ca_key), "server": (server, server_key),
                              "client": (client, client_key)}.items():
        files[f"{name}.crt"] = directory / f"{name}.crt"
        files[f"{name}.crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{name}.key"] = directory / f"{name}.key"
        files[f"{name}.key"].write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    return files


def test_tls_mtls_and_api_key_settings_reach_the_connection(tmp_path, monkeypatch):
    files = _certificates(tmp_path)
    for name, value in {"GD_TEMPORAL_ADDRESS": "temporal.cemig.local:7233",
                        "GD_NAMESPACE": "gd-producao",
                        "GD_TEMPORAL_TLS_CERT": str(files["client.crt"]),
                        "GD_TEMPORAL_TLS_KEY": str(files["client.key"]),
                        "GD_TEMPORAL_TLS_CA": str(files["ca.crt"]),
                        "GD_TEMPORAL_TLS_SERVER_NAME": "temporal.cemig.local",
                        "GD_TEMPORAL_API_KEY": "chave-secreta"}.items():
        monkeypatch.setenv(name, value)
    config = worker.connect_config(GdSettings())
    assert config["target_host"] == "temporal.cemig.local:7233"
    assert config["namespace"] == "gd-producao" and config["api_key"] == "chave-secreta"
    tls = config["tls"]
    assert tls.client_cert == files["client.crt"].read_bytes()
    assert tls.client_private_key == files["client.key"].read_bytes()
    assert tls.server_root_ca_cert == files["ca.crt"].read_bytes()
    assert tls.domain == "temporal.cemig.local"
    flags = " ".join(worker._cli_connection_flags(GdSettings()))
    assert flags == (f"--address temporal.cemig.local:7233 --tls --tls-cert-path {files['client.crt']} "
                     f"--tls-key-path {files['client.key']} --tls-ca-path {files['ca.crt']} "
                     f"--tls-server-name temporal.cemig.local --api-key \"$TEMPORAL_API_KEY\"")

    for name in ("GD_TEMPORAL_TLS_CERT", "GD_TEMPORAL_TLS_KEY", "GD_TEMPORAL_TLS_CA",
                 "GD_TEMPORAL_TLS_SERVER_NAME", "GD_TEMPORAL_API_KEY"):
        monkeypatch.delenv(name)
    # An API key alone (Temporal Cloud) goes over TLS with the system's CAs.
    only_key = worker.connect_config(GdSettings(temporal_api_key="k"))
    assert only_key["tls"].server_root_ca_cert is None and only_key["api_key"] == "k"
    # Nothing set: plain TCP (a dev server, a sidecar).
    assert worker.connect_config(GdSettings(temporal_address="127.0.0.1:7233"))["tls"] is False
    with pytest.raises(worker.ConnectConfigError, match="GD_TEMPORAL_TLS_CERT e GD_TEMPORAL_TLS_KEY juntos"):
        worker.connect_config(GdSettings(temporal_tls_cert=str(files["client.crt"])))
    with pytest.raises(worker.ConnectConfigError, match="GD_TEMPORAL_TLS_CA=/nao/existe: arquivo ilegível"):
        worker.connect_config(GdSettings(temporal_tls_ca="/nao/existe"))
