"""Certificates for the compose stack's Mailpit (STARTTLS), made at first start.

The worker refuses, outside dev, to send mail in clear to a relay that is not local, and
inside the compose network `mailpit` is such a relay: so Mailpit offers STARTTLS with a
certificate from a throwaway CA made here, and the workers trust that CA (SSL_CERT_FILE).
Nothing here is committed: the keys are made in the stack's own volumes.

    python make_dev_certs.py CA_DIR SERVER_DIR [HOSTNAME]

writes CA_DIR/ca.crt (public, for the clients) and SERVER_DIR/server.crt, server.key
(for Mailpit). Existing files are kept, so restarts do not change the certificate.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make(ca_dir: Path, server_dir: Path, hostname: str = "mailpit") -> bool:
    """Write the CA certificate and the server pair; False when they already exist."""
    ca_crt = ca_dir / "ca.crt"
    server_crt, server_key = server_dir / "server.crt", server_dir / "server.key"
    if ca_crt.exists() and server_crt.exists() and server_key.exists():
        return False
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("gd-orchestrator compose dev CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                          crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hostname)).issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_dir.mkdir(parents=True, exist_ok=True)
    server_dir.mkdir(parents=True, exist_ok=True)
    server_key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    # Mailpit runs under its own user: the key is readable in its volume, which only the
    # certificate job and Mailpit mount (the CA's key is never written anywhere).
    server_key.chmod(0o644)
    server_crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca_crt.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return True


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("uso: python make_dev_certs.py DIR_CA DIR_SERVIDOR [HOST]", file=sys.stderr)
        return 2
    made = make(Path(argv[0]), Path(argv[1]), *argv[2:])
    print("certificados criados" if made else "certificados já existem: mantidos")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
