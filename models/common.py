"""Shapes shared by every process, and the rules that refuse bad input in pt-BR.

Workflows decode their raw JSON with these models themselves (see
``parse_or_problems``): a payload that fails pydantic inside the SDK's converter
would leave the caller with no message, so every rule answers here, naming the
field and the rule.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError
from stdnum.br import cnpj as stdnum_cnpj
from stdnum.br import cpf as stdnum_cpf

MAX_DOCUMENT_BYTES = 3 * 1024 * 1024

Role = Literal["customer", "technician", "analyst", "supervisor", "inspector", "auditor", "system"]
ROLES: tuple[str, ...] = Role.__args__  # type: ignore[attr-defined]

DOCUMENT_KINDS: tuple[str, ...] = (
    "commercial_id",
    "access_form",
    "electrical_project",
    "art_rrt",
    "single_line_diagram",
    "descriptive_memorial",
    "inverter_datasheet",
    "module_datasheet",
    "inverter_certificate",
    "power_of_attorney",
    "parecer",
    "inspection_report",
    "correction",
    "other",
)
CONTENT_TYPES: tuple[str, ...] = (
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/vnd.dwg",
    "image/vnd.dxf",
)
UFS: tuple[str, ...] = (
    "AC AL AP AM BA CE DF ES GO MA MT MS MG PA PB PR PE PI RJ RN RS RO RR SC SP SE TO"
).split()


class Model(BaseModel):
    """Base of every payload: unknown fields are refused, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _fail(rule: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(rule, message)


def _ascii_only(value: str, what: str) -> None:
    # Look-alike digits (full-width, Arabic-Indic) pass str.isdigit(); refuse them.
    if not value.isascii():
        raise _fail("non_ascii", f"{what} deve conter apenas caracteres ASCII")


def normalize_cpf(value: str) -> str:
    _ascii_only(value, "CPF")
    digits = re.sub(r"[.\-\s]", "", value)
    if not re.fullmatch(r"\d{11}", digits):
        raise _fail("cpf_format", "CPF deve ter 11 dígitos")
    if len(set(digits)) == 1 or not stdnum_cpf.is_valid(digits):
        raise _fail("cpf_check_digits", "CPF inválido: dígitos verificadores não conferem")
    return digits


def normalize_cnpj(value: str) -> str:
    _ascii_only(value, "CNPJ")
    raw = re.sub(r"[.\-/\s]", "", value).upper()
    if not re.fullmatch(r"[0-9A-Z]{12}\d{2}", raw):
        raise _fail(
            "cnpj_format",
            "CNPJ deve ter 14 caracteres (12 letras ou dígitos e 2 dígitos verificadores)",
        )
    if len(set(raw)) == 1 or not stdnum_cnpj.is_valid(raw):
        raise _fail("cnpj_check_digits", "CNPJ inválido: dígitos verificadores não conferem")
    return raw


def normalize_tax_id(value: str) -> str:
    """A CPF or a CNPJ, told apart by length once punctuation is gone."""
    _ascii_only(value, "CPF/CNPJ")
    compact = re.sub(r"[.\-/\s]", "", value)
    if len(compact) == 11:
        return normalize_cpf(compact)
    if len(compact) == 14:
        return normalize_cnpj(compact)
    raise _fail("tax_id_format", "documento deve ser um CPF (11 dígitos) ou CNPJ (14 caracteres)")


def holder_key(tax_id: str) -> str:
    """The part that identifies a holder: a CPF whole, a CNPJ by its 8-character root."""
    return tax_id if len(tax_id) == 11 else tax_id[:8]


def _installation(value: str) -> str:
    _ascii_only(value, "número da instalação")
    if not re.fullmatch(r"\d{10}", value):
        raise _fail("installation_format", "número da instalação deve ter exatamente 10 dígitos")
    return value


def _email(value: str) -> str:
    _ascii_only(value, "e-mail")
    if len(value) > 254 or not re.fullmatch(
        r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+",
        value,
    ):
        raise _fail("email_format", "e-mail inválido (esperado nome@dominio.tld)")
    return value.lower()


def _phone(value: str) -> str:
    _ascii_only(value, "telefone")
    digits = re.sub(r"[()\-\s.]", "", value)
    if digits.startswith("+55"):
        digits = digits[3:]
    if not re.fullmatch(r"[1-9][1-9]\d{8,9}", digits):
        raise _fail("phone_format", "telefone deve ter DDD e 8 ou 9 dígitos (ex.: 31 99999-0000)")
    return digits


def _person_name(value: str) -> str:
    value = unicodedata.normalize("NFC", value)
    if not value or any(unicodedata.category(c).startswith("C") for c in value):
        raise _fail("name_format", "nome não pode ser vazio nem conter caracteres de controle")
    return value


def _registration(value: str) -> str:
    _ascii_only(value, "registro no conselho")
    compact = re.sub(r"[.\-/\s]", "", value).upper()
    if not re.fullmatch(r"[A-Z]{0,2}\d{3,12}[A-Z]?", compact):
        raise _fail(
            "registration_format",
            "registro no conselho deve ter de 3 a 12 dígitos (letras só como prefixo/sufixo)",
        )
    return compact


def _uf(value: str) -> str:
    upper = value.upper()
    if upper not in UFS:
        raise _fail("uf_unknown", "UF desconhecida (use a sigla do estado, ex.: MG)")
    return upper


def _sha256(value: str) -> str:
    lower = value.lower()
    if not re.fullmatch(r"[0-9a-f]{64}", lower):
        raise _fail("sha256_format", "sha256 deve ter 64 caracteres hexadecimais")
    return lower


def _filename(value: str) -> str:
    """A file name as the blob store keeps it (``activities.blobs._clean_filename``): one
    name, no folder, no control character (a CR/LF would break the e-mail's headers)."""
    if any(ord(c) < 32 or ord(c) == 127 or unicodedata.category(c) in ("Zl", "Zp")
           for c in value):
        raise _fail("filename_control", "nome de arquivo não pode conter quebras de linha nem "
                    "caracteres de controle")
    if "/" in value or "\\" in value:
        raise _fail("filename_path", "nome de arquivo não pode conter '/' nem '\\' (só o nome, "
                    "sem pasta)")
    if value in (".", ".."):
        raise _fail("filename_path", "nome de arquivo inválido")
    return value


def valid_workflow_id(value: str) -> bool:
    """What the store and the e-mail headers accept as a workflow id: at most 200
    characters (the store's columns), printable ASCII only (no CR/LF to inject headers)."""
    return 0 < len(value) <= MAX_WORKFLOW_ID and all(32 < ord(c) < 127 for c in value)


MAX_WORKFLOW_ID = 200


def _known(allowed: tuple[str, ...], what: str):
    def check(value: str) -> str:
        if value not in allowed:
            raise _fail(f"{what}_unknown", f"{what} desconhecido; aceitos: {', '.join(allowed)}")
        return value

    return check


Cpf = Annotated[str, Field(max_length=32), AfterValidator(normalize_cpf)]
Cnpj = Annotated[str, Field(max_length=32), AfterValidator(normalize_cnpj)]
TaxId = Annotated[str, Field(max_length=32), AfterValidator(normalize_tax_id)]
InstallationNumber = Annotated[str, Field(max_length=32), AfterValidator(_installation)]
Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
Phone = Annotated[str, Field(max_length=32), AfterValidator(_phone)]
PersonName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_person_name)]
Registration = Annotated[str, Field(max_length=32), AfterValidator(_registration)]
Uf = Annotated[str, Field(max_length=2), AfterValidator(_uf)]
Sha256 = Annotated[str, AfterValidator(_sha256)]
ShortText = Annotated[str, Field(min_length=1, max_length=2000)]
LongText = Annotated[str, Field(min_length=1, max_length=10000)]
ActorId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@:-]+$")]
RequestId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
ServiceNote = Annotated[str, Field(pattern=r"^\d{10}$")]
Protocol = Annotated[str, Field(pattern=r"^\d{4}\d{6,10}$")]


CouncilKey = Annotated[
    str, Field(max_length=40, pattern=r"^(CREA|CAU)-[A-Z]{2}-[A-Z0-9]{3,15}$")
]


class Actor(Model):
    id: ActorId
    role: Role
    # Who the actor is, for the party check (CONTRACT.md "Parties"): a technician's
    # council key (e.g. CREA-MG-123456), a customer's CPF/CNPJ (normalised to digits).
    council_key: CouncilKey | None = None
    document: TaxId | None = None


class DocumentRef(Model):
    sha256: Sha256
    kind: Annotated[str, AfterValidator(_known(DOCUMENT_KINDS, "tipo de documento"))]
    filename: Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_filename)]
    size: Annotated[int, Field(gt=0, le=MAX_DOCUMENT_BYTES)]
    content_type: Annotated[str, AfterValidator(_known(CONTENT_TYPES, "tipo de conteúdo"))]


class ActorArgs(Model):
    """Every update takes one object with an ``actor``."""

    actor: Actor


class Reason(Model):
    code: Annotated[str, Field(min_length=1, max_length=64)]
    text: Annotated[str, Field(max_length=2000)] | None = None


class Technician(Model):
    council: Literal["CREA", "CAU"]
    uf: Uf
    registration: Registration

    @property
    def key(self) -> str:
        """Search-attribute form, e.g. ``CREA-MG-12345`` (not personal data)."""
        return f"{self.council}-{self.uf}-{self.registration}"


class SlaBreach(Model):
    step: str
    due_at: datetime
    breached_at: datetime


class Decision(Model):
    at: datetime
    actor: Actor
    action: str
    reasons: list[Reason] = []
    text: str | None = None
    service_note: str | None = None
    documents: list[DocumentRef] = []


class DeadlineRecord(Model):
    """A due date as it was computed, kept forever (DOMAIN.md: recorded once)."""

    rule: str
    start: datetime
    due_at: datetime
    remind_at: datetime | None = None
    cycle: int = 0
    reason: str | None = None


class Notification(Model):
    key: str
    template: str
    status: Literal["sent", "duplicate", "refused"]
    detail: str | None = None


class Problem(Model):
    """One reason an input was refused: the field, the rule, the pt-BR message."""

    field: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


_BUILTIN_MESSAGES: dict[str, str] = {
    "missing": "campo obrigatório",
    "extra_forbidden": "campo não reconhecido",
    "string_type": "deve ser texto",
    "int_type": "deve ser um número inteiro",
    "int_parsing": "deve ser um número inteiro",
    "float_type": "deve ser um número",
    "float_parsing": "deve ser um número",
    "bool_type": "deve ser verdadeiro ou falso",
    "bool_parsing": "deve ser verdadeiro ou falso",
    "list_type": "deve ser uma lista",
    "dict_type": "deve ser um objeto",
    "model_type": "deve ser um objeto",
    "model_attributes_type": "deve ser um objeto",
    "datetime_type": "deve ser data e hora ISO 8601",
    "datetime_parsing": "deve ser data e hora ISO 8601",
    "finite_number": "deve ser um número finito",
    "decimal_parsing": "deve ser um número",
    "decimal_type": "deve ser um número",
}


def _builtin_message(err: dict[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _BUILTIN_MESSAGES:
        return _BUILTIN_MESSAGES[kind]
    if kind == "string_too_short":
        return f"deve ter ao menos {ctx.get('min_length')} caractere(s)"
    if kind == "string_too_long":
        return f"deve ter no máximo {ctx.get('max_length')} caracteres"
    if kind == "string_pattern_mismatch":
        return f"formato inválido (esperado {ctx.get('pattern')})"
    if kind == "too_short":
        return f"deve ter ao menos {ctx.get('min_length')} item(ns)"
    if kind == "too_long":
        return f"deve ter no máximo {ctx.get('max_length')} itens"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        symbol = {"greater_than": ">", "greater_than_equal": "≥",
                  "less_than": "<", "less_than_equal": "≤"}[kind]
        limit = next(iter(ctx.values()), "")
        return f"deve ser {symbol} {limit}"
    if kind == "decimal_max_places":
        return f"deve ter no máximo {ctx.get('decimal_places')} casas decimais"
    if kind in ("decimal_max_digits", "decimal_whole_digits"):
        return "número com dígitos demais"
    if kind in ("literal_error", "enum"):
        return f"valor não aceito; esperado {ctx.get('expected')}"
    return err.get("msg", "valor inválido")


def problems_from(error: ValidationError, prefix: str = "") -> list[Problem]:
    """Every pydantic error as a pt-BR ``Problem`` naming field and rule."""
    found: list[Problem] = []
    for err in error.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        field = ".".join(p for p in (prefix, loc) if p)
        if err["type"] == "value_error":
            message = str(err["ctx"]["error"]) if err.get("ctx") else err["msg"]
            # Cross-field rules name their field as "field: message".
            named = re.match(r"^([a-z_][\w.]*): (.+)$", message, re.S)
            if named:
                field = ".".join(p for p in (field, named.group(1)) if p)
                message = named.group(2)
        elif err["type"] in _BUILTIN_TYPES:
            message = _builtin_message(err)
        else:  # our PydanticCustomError: the message is already pt-BR
            message = err["msg"]
        found.append(Problem(field=field, code=err["type"], message=message))
    return found


_BUILTIN_TYPES = set(_BUILTIN_MESSAGES) | {
    "string_too_short", "string_too_long", "string_pattern_mismatch", "too_short",
    "too_long", "greater_than", "greater_than_equal", "less_than", "less_than_equal",
    "literal_error", "enum", "int_from_float", "json_invalid", "none_required",
    "decimal_max_places", "decimal_max_digits", "decimal_whole_digits",
}


M = TypeVar("M", bound=BaseModel)


def parse_or_problems(model: type[M], raw: Any, prefix: str = "") -> tuple[M | None, list[Problem]]:
    """Decode ``raw`` as ``model``; on failure return every problem instead of raising."""
    try:
        return model.model_validate(raw), []
    except ValidationError as error:
        return None, problems_from(error, prefix)


class InputRefused(ValueError):
    """Raised by update validators and the client: one pt-BR line, every problem in it."""

    def __init__(self, problems: list[Problem] | str):
        self.problems = (
            [Problem(field="", code="refused", message=problems)]
            if isinstance(problems, str)
            else problems
        )
        super().__init__("; ".join(str(p) for p in self.problems))


# Typed refusals. A validator that raises one of these rejects the update; the caller
# receives an ApplicationError whose ``type`` is the class name, so the HTTP API maps
# it to a status code without parsing message text:
#   InputRefused  -> 422 (field errors; also the base class of the others)
#   RoleRefused   -> 403 (the actor's role may not send this update)
#   PartyRefused  -> 403 (role allowed, but the actor is not the request's RT/customer)
#   StatusRefused -> 409 (the update does not fit the current status)
#   LimitRefused  -> 409 (a per-request cap is reached: documents, decisions, pauses)


class RoleRefused(InputRefused):
    """The actor's role may not send this update (HTTP 403)."""


class PartyRefused(InputRefused):
    """The actor's role is allowed but it is not a party of this request (HTTP 403)."""


class StatusRefused(InputRefused):
    """The update does not fit the current status (HTTP 409)."""


class LimitRefused(InputRefused):
    """A per-request cap would be exceeded (HTTP 409)."""


REFUSAL_HTTP_STATUS: dict[str, int] = {
    "InputRefused": 422,
    "RoleRefused": 403,
    "PartyRefused": 403,
    "StatusRefused": 409,
    "LimitRefused": 409,
}


def parse_or_refuse(model: type[M], raw: Any) -> M:
    parsed, problems = parse_or_problems(model, raw)
    if problems:
        raise InputRefused(problems)
    assert parsed is not None
    return parsed
