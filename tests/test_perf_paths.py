"""The shortcuts the hot paths take (bench/README.md, "The API's own cost") keep their
promises: an accepted token is taken on trust only while its issuer still publishes its
key and never past its expiry; the workflow modules' shared code is read again when the
file changes and never shares a module's globals between runs."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import pytest

from api.auth import AuthError, Verifier
from api.config import ApiSettings
from tests.oidc_issuer import Issuer
from worker import SharedCodeFinder


@pytest.fixture
def issuer():
    running = Issuer().start()
    yield running
    running.stop()


def _verifier(issuer: Issuer) -> Verifier:
    return Verifier(ApiSettings(auth_mode="oidc", auth_issuer=issuer.url, auth_jwks_url=issuer.jwks_url,
                                auth_jwks_min_refetch_s=0.1).check())


def test_a_token_whose_key_the_issuer_withdrew_is_refused_after_the_next_jwks_fetch(issuer):
    verifier = _verifier(issuer)
    old = issuer.token("ana.silva", ["analyst"], kid="rsa-1")
    assert verifier.verify(f"Bearer {old}").id == "ana.silva"
    assert verifier.verify(f"Bearer {old}").roles == ("analyst",)  # again: remembered
    # The issuer rotates: rsa-1 leaves the JWKS, rsa-2 arrives; the first rsa-2 token
    # makes the API fetch the set again.
    issuer.published.remove("rsa-1")
    issuer.add_key("rsa-2", "RS256")
    time.sleep(0.15)
    new = issuer.token("bia.costa", ["supervisor"], kid="rsa-2")
    assert verifier.verify(f"Bearer {new}").id == "bia.costa"
    with pytest.raises(AuthError) as refused:
        verifier.verify(f"Bearer {old}")
    assert refused.value.code == "unknown_kid"


def test_a_token_is_not_taken_on_trust_past_its_expiry(issuer):
    verifier = _verifier(issuer)
    token = issuer.token("ana.silva", ["analyst"], kid="ec-1", exp_in=2)
    assert verifier.verify(f"Bearer {token}").id == "ana.silva"
    assert verifier.remembered(token) is not None
    time.sleep(2.1)
    assert verifier.remembered(token) is None  # checked again (PyJWT: exp with its leeway)
    refused = issuer.token("ana.silva", ["analyst"], kid="ec-1", exp_in=-3600)
    with pytest.raises(AuthError):
        verifier.verify(f"Bearer {refused}")
    assert verifier.remembered(refused) is None


def _fresh_import(name: str):
    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[loaded]
    return importlib.import_module(f"{name}.mod")


def test_shared_code_gives_each_import_its_own_globals_and_follows_the_file(tmp_path: Path, monkeypatch):
    package = tmp_path / "gd_shared_code_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = package / "mod.py"
    source.write_text("VALUE = 1\nSEEN = []\n\ndef add(x):\n    SEEN.append(x)\n    return len(SEEN)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = SharedCodeFinder(("gd_shared_code_probe",))
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    try:
        first = _fresh_import("gd_shared_code_probe")
        second = _fresh_import("gd_shared_code_probe")
        assert first is not second
        assert first.add.__code__ is second.add.__code__  # one compiled copy
        assert first.add("a") == 1 and first.add("b") == 2
        assert second.SEEN == []  # the other import's state is its own
        # The file changes (as a deploy without restart would do): the next import reads it.
        source.write_text("VALUE = 22\nSEEN = []\n\ndef add(x):\n    return 0\n")
        third = _fresh_import("gd_shared_code_probe")
        assert third.VALUE == 22
    finally:
        for loaded in [m for m in sys.modules if m.startswith("gd_shared_code_probe")]:
            del sys.modules[loaded]
