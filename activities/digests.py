"""The keyed hash of a customer's CPF/CNPJ (personal data) that the store keeps instead of
the clear document: ``request_record.customer_digest``, what the portal's "Meus pedidos"
looks a customer's requests up by (an index lookup, no scan of start inputs).

HMAC-SHA256 keyed with ``GD_DOCUMENT_KEY`` (models/settings.py), of the document as the
models normalise it (CPF: 11 digits; CNPJ: 14 upper-case characters). A CPF has only 10⁹
values: an unkeyed hash would be reversed by trying them all, hence the key. Without
``GD_DOCUMENT_KEY`` a fixed, public dev key is used (only fit for GD_ENV=dev). Changing
the key orphans the digests already stored (customers would stop seeing older requests).
"""

from __future__ import annotations

import hashlib
import hmac

DEV_KEY = b"gd-orchestrator dev document key (set GD_DOCUMENT_KEY)"


def _key() -> bytes:
    from models.settings import get_settings

    secret = get_settings().document_key
    return secret.get_secret_value().encode() if secret is not None else DEV_KEY


def document_digest(document: str, key: bytes | None = None) -> str:
    """64 hex characters; the same document (already normalised) gives the same digest."""
    return hmac.new(key if key is not None else _key(), document.encode(), hashlib.sha256).hexdigest()
