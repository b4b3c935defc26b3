"""Coded reasons an analyst or inspector gives for a suspension, reproval or refusal.

Codes let other systems and reports group decisions; the pt-BR text is what the requester
reads; the reference says which rule backs the reason. The catalogue is data
(data/reasons.json), read once at import. Used from Temporal workflows: pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

USES = (
    "suspend",
    "reprove",
    "reject_technician",
    "reject_beneficiaries",
    "refuse_intake",
    "inspection",
)
OTHER_CODE = "OTHER"

Use = Literal[
    "suspend",
    "reprove",
    "reject_technician",
    "reject_beneficiaries",
    "refuse_intake",
    "inspection",
]

_CODE_PATTERN = re.compile(r"^[A-Z0-9]+(-[A-Z0-9]+)*$")


class ReasonEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    text: str = Field(min_length=1)
    reference: str = Field(min_length=1)
    applies_to: tuple[Use, ...] = Field(min_length=1)
    # Free-text reasons ("Outro") are useless to the requester without the analyst's words.
    requires_text: bool = False

    @field_validator("code")
    @classmethod
    def _code_is_upper_kebab(cls, code: str) -> str:
        if not _CODE_PATTERN.match(code):
            raise ValueError(f"reason code {code!r} must be uppercase words joined by '-'")
        return code


@cache
def catalogue() -> dict[str, ReasonEntry]:
    """Every reason by code, in file order. Do not mutate: it is shared."""
    text = resources.files("domain").joinpath("data", "reasons.json").read_text("utf-8")
    entries = [ReasonEntry.model_validate(raw) for raw in json.loads(text)]
    by_code = {entry.code: entry for entry in entries}
    if len(by_code) != len(entries):
        raise ValueError("reasons.json has duplicate codes")
    return by_code


def _check_use(use: str | None) -> None:
    if use is not None and use not in USES:
        raise ValueError(f"unknown use {use!r}; known uses: {', '.join(USES)}")


def unknown_codes(codes: Iterable[str], use: str | None = None) -> list[str]:
    """Codes absent from the catalogue, or (when `use` is given) not meant for that use.

    Order of first appearance is kept so an error message lists them as the analyst sent them.
    """
    _check_use(use)
    known = catalogue()
    bad: list[str] = []
    for code in codes:
        entry = known.get(code)
        fits = entry is not None and (use is None or use in entry.applies_to)
        if not fits and code not in bad:
            bad.append(code)
    return bad


def codes_for(use: str) -> list[str]:
    """Codes offered for one use, e.g. to fill the analyst's pick list."""
    _check_use(use)
    return [code for code, entry in catalogue().items() if use in entry.applies_to]


def requires_text(code: str) -> bool:
    """True when the code means nothing without the analyst's own description (OTHER)."""
    entry = catalogue().get(code)
    if entry is None:
        raise ValueError(f"unknown reason code {code!r}")
    return entry.requires_text


def reason_text(code: str) -> str:
    """The pt-BR text shown to the requester."""
    entry = catalogue().get(code)
    if entry is None:
        raise ValueError(f"unknown reason code {code!r}")
    return entry.text


# Load and validate at import (outside any workflow): a broken data file fails the worker's
# start, not an analyst's decision.
catalogue()
