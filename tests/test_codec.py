"""The AES-GCM payload codec (codec.py) and how worker.data_converter() switches it on.

The end-to-end proof (a worker process with the codec on, histories scanned, replay,
rotation mid-run) is tests/test_privacy.py; these are the codec's own rules.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from codec import AesGcmCodec, CodecConfigError, CodecError, codec_from_env, parse_keys
from models.access import AccessStatus

ROOT = Path(__file__).resolve().parents[1]
K1 = bytes(range(32))
K2 = bytes(range(32, 64))
PII = b'{"document": "52998224725", "email": "maria.souza@example.com.br"}'


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def plain(data: bytes = PII) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


async def test_round_trip_hides_the_data_and_restores_it_exactly():
    c = AesGcmCodec({"k1": K1})
    original = plain()
    [sealed] = await c.encode([original])
    assert sealed.metadata["encoding"] == b"binary/encrypted"
    assert sealed.metadata["encryption-key-id"] == b"k1"
    assert sealed.metadata["encryption-cipher"] == b"AES-256-GCM"
    assert b"52998224725" not in sealed.SerializeToString()
    assert b"json/plain" not in sealed.SerializeToString()  # the metadata is sealed too
    [opened] = await c.decode([sealed])
    assert opened == original


async def test_same_payload_twice_gives_different_ciphertexts():
    c = AesGcmCodec({"k1": K1})
    first, second = await c.encode([plain(), plain()])
    assert first.data != second.data  # a fresh nonce each time


async def test_rotation_old_key_still_decrypts_new_payloads_use_the_new_key():
    old = AesGcmCodec({"k1": K1})
    [sealed_old] = await old.encode([plain()])
    rotated = codec_from_env({"GD_CODEC_KEYS": f"k2:{b64(K2)},k1:{b64(K1)}"})
    assert rotated is not None and rotated.current == "k2" and rotated.key_ids == ["k2", "k1"]
    assert await rotated.decode([sealed_old]) == [plain()]
    [sealed_new] = await rotated.encode([plain()])
    assert sealed_new.metadata["encryption-key-id"] == b"k2"
    # A process that never got the new key cannot read the new payloads, and says why.
    with pytest.raises(CodecError, match="chave 'k2', que não está configurada.*GD_CODEC_KEYS"):
        await old.decode([sealed_new])


async def test_wrong_key_under_the_same_id_is_a_clear_error():
    [sealed] = await AesGcmCodec({"k1": K1}).encode([plain()])
    with pytest.raises(CodecError, match="chave 'k1': chave errada"):
        await AesGcmCodec({"k1": K2}).decode([sealed])


async def test_tampered_or_relabelled_payloads_are_refused():
    c = AesGcmCodec({"k1": K1, "k2": K2})
    [sealed] = await c.encode([plain()])
    flipped = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(CodecError, match="adulterado"):
        await c.decode([flipped])
    # Claiming another key id fails authentication even if that key is known.
    relabelled = Payload(metadata={**sealed.metadata, "encryption-key-id": b"k2"}, data=sealed.data)
    with pytest.raises(CodecError):
        await c.decode([relabelled])
    truncated = Payload(metadata=dict(sealed.metadata), data=sealed.data[:10])
    with pytest.raises(CodecError, match="truncado"):
        await c.decode([truncated])


async def test_payloads_written_before_the_codec_was_on_pass_through():
    c = AesGcmCodec({"k1": K1})
    assert await c.decode([plain()]) == [plain()]


@pytest.mark.parametrize(
    "environ,message",
    [
        ({"GD_CODEC_KEYS": "k1"}, "esperado id:chave_base64"),
        ({"GD_CODEC_KEYS": "k1:não-é-base64"}, "base64 válido"),
        ({"GD_CODEC_KEYS": f"k1:{b64(b'curta')}"}, "32 bytes"),
        ({"GD_CODEC_KEYS": f"k1:{b64(K1)},k1:{b64(K2)}"}, "repetido"),
        ({"GD_CODEC_KEYS": f"chave com espaço:{b64(K1)}"}, "id de chave"),
        ({"GD_CODEC_KEYS": " , "}, "nenhuma chave"),
        ({"GD_CODEC_KEY_ID": "k1"}, "GD_CODEC_KEY_ID definido sem GD_CODEC_KEY"),
        ({"GD_CODEC_KEY": b64(K1)[:-4]}, "GD_CODEC_KEY"),
        ({"GD_CODEC_KEY": b64(K1), "GD_CODEC_KEY_ID": "k1", "GD_CODEC_KEYS": f"k1:{b64(K2)}"}, "repete"),
    ],
)
def test_bad_key_variables_are_refused_naming_the_variable(environ, message):
    with pytest.raises(CodecConfigError, match=message):
        codec_from_env(environ)


def test_key_variables():
    assert codec_from_env({}) is None
    single = codec_from_env({"GD_CODEC_KEY": b64(K1), "GD_CODEC_KEY_ID": "2026a"})
    assert single is not None and single.key_ids == ["2026a"]
    default_id = codec_from_env({"GD_CODEC_KEY": b64(K1)})
    assert default_id is not None and default_id.key_ids == ["k1"]
    both = codec_from_env({"GD_CODEC_KEY": b64(K2), "GD_CODEC_KEY_ID": "new",
                           "GD_CODEC_KEYS": f"old:{b64(K1)}"})
    assert both is not None and both.current == "new" and both.key_ids == ["new", "old"]


def test_new_key_command_prints_a_usable_entry():
    done = subprocess.run([sys.executable, "-m", "codec", "new-key", "k2026"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    [(key_id, key)] = parse_keys(done.stdout.strip())
    assert key_id == "k2026" and len(key) == 32
    bad = subprocess.run([sys.executable, "-m", "codec"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "uso:" in bad.stderr


def test_data_converter_switches_the_codec_on_with_the_variables(monkeypatch):
    from worker import data_converter

    monkeypatch.delenv("GD_CODEC_KEYS", raising=False)
    monkeypatch.delenv("GD_CODEC_KEY", raising=False)
    monkeypatch.delenv("GD_CODEC_KEY_ID", raising=False)
    assert data_converter() is pydantic_data_converter
    monkeypatch.setenv("GD_CODEC_KEYS", f"k1:{b64(K1)}")
    converter = data_converter()
    assert isinstance(converter.payload_codec, AesGcmCodec)
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class
    monkeypatch.setenv("GD_CODEC_KEYS", "k1:quebrada")
    with pytest.raises(CodecConfigError):
        data_converter()


async def test_converter_round_trip_of_a_status_and_of_a_failure(monkeypatch):
    from worker import data_converter

    monkeypatch.setenv("GD_CODEC_KEYS", f"k1:{b64(K1)}")
    converter = data_converter()
    status = AccessStatus(request_id="req-1", kind="request", status="AWAITING_APR",
                          service_note="7000000001")
    [payload] = await converter.encode([status])
    assert b"7000000001" not in payload.SerializeToString()
    assert await converter.decode([payload], [AccessStatus]) == [status]

    # An error text may quote an input: with the codec on it travels encrypted.
    failure = Failure()
    await converter.encode_failure(
        ApplicationError("customer.email: maria.souza@example.com.br recusado", type="Refused"), failure)
    assert b"maria.souza" not in failure.SerializeToString()
    assert failure.message == "Encoded failure"
    decoded = await converter.decode_failure(failure)
    assert "maria.souza@example.com.br" in str(decoded)
    # Without the codec the same failure is in clear (the point of the switch).
    plain_failure = Failure()
    await pydantic_data_converter.encode_failure(ApplicationError("maria.souza@example.com.br"), plain_failure)
    assert b"maria.souza" in plain_failure.SerializeToString()
