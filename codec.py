"""AES-GCM payload codec: the personal data in workflow histories encrypted at rest.

Every payload the worker, the CLI and the replayer write (workflow inputs, activity
arguments and results, update arguments and results, query results, memos) is encrypted
with AES-256-GCM before it leaves the process, so the Temporal server, its database and
its UI hold ciphertext only. Search attributes are *not* payloads the codec sees: the
server indexes them in clear, which is why they never carry a CPF, CNPJ, name, e-mail or
phone (models/search_attributes.py). With the codec on, failure messages and stack
traces are moved into an encoded payload too (``worker.data_converter``), since an error
text may quote an input.

Keys come from the environment, read by ``codec_from_env`` (every process that talks to
Temporal must see the same variables — worker, ``gd`` and the replayer all build their
converter with ``worker.data_converter()``):

``GD_CODEC_KEYS=k2026b:<base64 32 bytes>,k2026a:<base64 32 bytes>``
    Comma-separated ``key_id:key`` pairs. The **first** one encrypts new payloads;
    every one decrypts (old keys stay listed until no open history uses them).
``GD_CODEC_KEY=<base64 32 bytes>`` and ``GD_CODEC_KEY_ID=k2026b``
    The single-key form (key id ``k1`` when ``GD_CODEC_KEY_ID`` is unset). If
    ``GD_CODEC_KEYS`` is set as well, this key encrypts and those only decrypt.

Neither set: no codec (payloads stay JSON, as in tests and ``gd dev up``).
``python -m codec new-key k2026b`` prints a fresh ``GD_CODEC_KEYS`` entry.

Rotation: put the new key first (``GD_CODEC_KEYS=new:…,old:…``) on every process, restart
them; new payloads use ``new``, histories written under ``old`` still decrypt. Drop
``old`` only once every workflow that used it is closed and past retention.

Wire format of an encrypted payload: metadata ``encoding=binary/encrypted``,
``encryption-key-id=<key id>``, ``encryption-cipher=AES-256-GCM``; data = 12-byte random
nonce ‖ AES-GCM(serialized original Payload), with ``gd-codec/v1:<key id>`` as associated
data (a payload relabelled with another key id fails authentication). A payload without
``encoding=binary/encrypted`` passes through undecoded, so histories written before the
codec was switched on stay readable.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENV_KEYS = "GD_CODEC_KEYS"
ENV_KEY = "GD_CODEC_KEY"
ENV_KEY_ID = "GD_CODEC_KEY_ID"
DEFAULT_KEY_ID = "k1"

ENCODING = b"binary/encrypted"
CIPHER = b"AES-256-GCM"
META_ENCODING = "encoding"
META_KEY_ID = "encryption-key-id"
META_CIPHER = "encryption-cipher"
KEY_BYTES = 32
NONCE_BYTES = 12
_AAD_PREFIX = b"gd-codec/v1:"
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class CodecConfigError(ValueError):
    """The key variables are malformed (the message names the variable and the rule)."""


class CodecError(RuntimeError):
    """A payload could not be decrypted: unknown key id, wrong key or tampered data."""


def _parse_key(value: str, variable: str, key_id: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CodecConfigError(
            f"{variable}: a chave '{key_id}' não está em base64 válido"
        ) from None
    if len(key) != KEY_BYTES:
        raise CodecConfigError(
            f"{variable}: a chave '{key_id}' deve ter {KEY_BYTES} bytes (AES-256), "
            f"tem {len(key)}; gere uma com `python -m codec new-key`"
        )
    return key


def _check_key_id(key_id: str, variable: str) -> str:
    if not _KEY_ID.fullmatch(key_id):
        raise CodecConfigError(
            f"{variable}: id de chave {key_id!r} inválido (1 a 64 letras, dígitos, '.', '_' ou '-')"
        )
    return key_id


def parse_keys(spec: str, variable: str = ENV_KEYS) -> list[tuple[str, bytes]]:
    """``"kid:base64,kid:base64"`` → ``[(kid, key), …]`` in the given order."""
    keys: list[tuple[str, bytes]] = []
    for position, item in enumerate((part.strip() for part in spec.split(",")), start=1):
        if not item:
            continue
        key_id, sep, value = item.partition(":")
        if not sep:
            # Never echo any of it: a bare item is most likely the key itself.
            raise CodecConfigError(
                f"{variable}: item {position} sem id; esperado id:chave_base64 "
                f"(ex.: k1:<chave>), recebido um valor de {len(item)} caracteres sem ':'"
            )
        key_id = _check_key_id(key_id.strip(), variable)
        if any(existing == key_id for existing, _ in keys):
            raise CodecConfigError(f"{variable}: id de chave '{key_id}' repetido")
        keys.append((key_id, _parse_key(value, variable, key_id)))
    if not keys:
        raise CodecConfigError(f"{variable}: nenhuma chave informada")
    return keys


class AesGcmCodec(PayloadCodec):
    """Encrypts with the current key, decrypts with any known key (see module docstring)."""

    def __init__(self, keys: Mapping[str, bytes] | Iterable[tuple[str, bytes]], current: str | None = None):
        pairs = list(keys.items()) if isinstance(keys, Mapping) else list(keys)
        if not pairs:
            raise CodecConfigError("o codec precisa de ao menos uma chave")
        self._ciphers: dict[str, AESGCM] = {}
        for key_id, key in pairs:
            _check_key_id(key_id, "codec")
            if len(key) != KEY_BYTES:
                raise CodecConfigError(f"codec: a chave '{key_id}' deve ter {KEY_BYTES} bytes")
            self._ciphers[key_id] = AESGCM(key)
        self.current = current or pairs[0][0]
        if self.current not in self._ciphers:
            raise CodecConfigError(f"codec: chave atual '{self.current}' não informada")

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    # --- PayloadCodec --------------------------------------------------------------

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    # --- one payload ---------------------------------------------------------------

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.current
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(
            nonce, payload.SerializeToString(), _AAD_PREFIX + key_id.encode()
        )
        return Payload(
            metadata={
                META_ENCODING: ENCODING,
                META_KEY_ID: key_id.encode(),
                META_CIPHER: CIPHER,
            },
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get(META_ENCODING) != ENCODING:
            return payload  # written with the codec off: readable as it is
        key_id = payload.metadata.get(META_KEY_ID, b"").decode("utf-8", "replace")
        cipher = payload.metadata.get(META_CIPHER, CIPHER)
        if cipher != CIPHER:
            raise CodecError(
                f"payload cifrado com algoritmo desconhecido {cipher.decode('utf-8', 'replace')!r}"
            )
        aes = self._ciphers.get(key_id)
        if aes is None:
            raise CodecError(
                f"payload cifrado com a chave '{key_id}', que não está configurada "
                f"(conhecidas: {', '.join(self._ciphers)}); inclua-a em {ENV_KEYS}"
            )
        data = payload.data
        if len(data) < NONCE_BYTES + 16:
            raise CodecError(f"payload cifrado com a chave '{key_id}' está truncado")
        try:
            plain = aes.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _AAD_PREFIX + key_id.encode())
        except InvalidTag:
            raise CodecError(
                f"não foi possível decifrar o payload com a chave '{key_id}': chave errada "
                "(mesmo id, outro valor) ou dado adulterado"
            ) from None
        original = Payload()
        original.ParseFromString(plain)
        return original


def codec_from_env(environ: Mapping[str, str] | None = None) -> AesGcmCodec | None:
    """The codec the environment asks for, or None when no key variable is set."""
    env = os.environ if environ is None else environ
    spec = (env.get(ENV_KEYS) or "").strip()
    single = (env.get(ENV_KEY) or "").strip()
    if not spec and not single:
        if (env.get(ENV_KEY_ID) or "").strip():
            raise CodecConfigError(f"{ENV_KEY_ID} definido sem {ENV_KEY}")
        return None
    keys: list[tuple[str, bytes]] = []
    if single:
        key_id = _check_key_id((env.get(ENV_KEY_ID) or DEFAULT_KEY_ID).strip(), ENV_KEY_ID)
        keys.append((key_id, _parse_key(single, ENV_KEY, key_id)))
    if spec:
        for key_id, key in parse_keys(spec):
            if any(existing == key_id for existing, _ in keys):
                raise CodecConfigError(
                    f"{ENV_KEYS}: id de chave '{key_id}' repete o de {ENV_KEY_ID}"
                )
            keys.append((key_id, key))
    return AesGcmCodec(keys)


def new_key_entry(key_id: str = DEFAULT_KEY_ID) -> str:
    """A fresh ``key_id:base64`` entry for ``GD_CODEC_KEYS``."""
    _check_key_id(key_id, "key_id")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "new-key" or len(args) > 2:
        print("uso: python -m codec new-key [id_da_chave]", file=sys.stderr)
        return 2
    try:
        entry = new_key_entry(args[1] if len(args) == 2 else DEFAULT_KEY_ID)
    except CodecConfigError as error:
        print(str(error), file=sys.stderr)
        return 2
    print(entry)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
