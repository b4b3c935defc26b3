"""The reason catalogue is complete enough and well-formed; lookups behave."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from domain.reasons import (
    OTHER_CODE,
    USES,
    ReasonEntry,
    catalogue,
    codes_for,
    reason_text,
    requires_text,
    unknown_codes,
)

# Situations DOMAIN.md and the analysts' practice require a code for.
EXPECTED = {
    "DOC-ART-AUSENTE": "suspend",
    "DOC-UNIFILAR-DIVERGENTE": "reprove",
    "DOC-INVERSOR-SEM-INMETRO": "reprove",
    "POTENCIA-ACIMA-CLASSE": "refuse_intake",
    "DOC-ILEGIVEL": "suspend",
    "TITULARIDADE-DIVERGENTE": "refuse_intake",
    "DOC-PROCURACAO-AUSENTE": "suspend",
    "DOC-DATASHEET-MODULO-AUSENTE": "suspend",
    "DOC-PROJETO-AUSENTE": "suspend",
    "INSTALACAO-NAO-ENCONTRADA": "refuse_intake",
    "RT-REGISTRO-IRREGULAR": "reject_technician",
    "RT-EMAIL-INVALIDO": "reject_technician",
    "DOC-OUTRA-SOLICITACAO": "reprove",
    "RATEIO-SOMA-DIFERENTE-100": "reject_beneficiaries",
    "UC-RECEBEDORA-OUTRO-TITULAR": "reject_beneficiaries",
    "VISTORIA-MEDICAO-LOCAL-INADEQUADO": "inspection",
    "VISTORIA-PROTECAO-DIVERGENTE": "inspection",
    "VISTORIA-ATERRAMENTO": "inspection",
    OTHER_CODE: "suspend",
}


def raw_entries() -> list[dict]:
    text = resources.files("domain").joinpath("data", "reasons.json").read_text("utf-8")
    return json.loads(text)


def test_at_least_twenty_entries() -> None:
    assert len(catalogue()) >= 20


def test_codes_unique_in_file() -> None:
    codes = [entry["code"] for entry in raw_entries()]
    assert len(codes) == len(set(codes)) == len(catalogue())


def test_codes_uppercase() -> None:
    for code in catalogue():
        assert code == code.upper()
        assert re.fullmatch(r"[A-Z0-9]+(-[A-Z0-9]+)*", code)


@pytest.mark.parametrize("code", sorted(catalogue()))
def test_entry_complete(code: str) -> None:
    entry = catalogue()[code]
    assert isinstance(entry, ReasonEntry)
    assert entry.code == code
    assert entry.text.strip() and entry.reference.strip()
    assert entry.applies_to and set(entry.applies_to) <= set(USES)


@pytest.mark.parametrize("code, use", sorted(EXPECTED.items()))
def test_expected_codes_present(code: str, use: str) -> None:
    assert use in catalogue()[code].applies_to


def test_every_use_has_codes() -> None:
    for use in USES:
        assert len(codes_for(use)) >= 2  # at least one specific code plus OTHER


def test_catalogue_cached() -> None:
    assert catalogue() is catalogue()


def test_unknown_codes() -> None:
    assert unknown_codes([]) == []
    assert unknown_codes(["DOC-ART-AUSENTE", OTHER_CODE]) == []
    assert unknown_codes(["DOC-ART-AUSENTE", "NOPE", "doc-art-ausente", "NOPE"]) == [
        "NOPE",
        "doc-art-ausente",
    ]


def test_unknown_codes_for_a_use() -> None:
    # An inspection finding is not a reason to reject a technician's registration.
    assert unknown_codes(["VISTORIA-ATERRAMENTO"], use="reject_technician") == [
        "VISTORIA-ATERRAMENTO"
    ]
    assert unknown_codes(["VISTORIA-ATERRAMENTO"], use="inspection") == []
    assert unknown_codes(["RT-EMAIL-INVALIDO", "X"], use="reject_technician") == ["X"]


def test_unknown_use_rejected() -> None:
    with pytest.raises(ValueError, match="unknown use 'approve'"):
        unknown_codes(["OTHER"], use="approve")


def test_requires_text() -> None:
    assert requires_text(OTHER_CODE) is True
    assert catalogue()[OTHER_CODE].text == "Outro (descrever)"
    assert all(not requires_text(code) for code in catalogue() if code != OTHER_CODE)
    with pytest.raises(ValueError, match="unknown reason code"):
        requires_text("NOPE")


def test_other_applies_everywhere() -> None:
    assert set(catalogue()[OTHER_CODE].applies_to) == set(USES)


def test_reason_text_is_portuguese_sentence() -> None:
    assert "ART" in reason_text("DOC-ART-AUSENTE")
    with pytest.raises(ValueError):
        reason_text("NOPE")
