"""E-mail rendering: the pt-BR templates (templates/email/), their contexts and filters.

``render`` is pure: the CLI preview, the tests and ``activities/mail.py`` (which sends)
use it. ``TEMPLATES`` says, per template, which sender setting it uses and which context
keys it requires.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import jinja2

from models.settings import GdSettings

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "email"
LOCAL_TZ = ZoneInfo("America/Sao_Paulo")


class TemplateInfo(NamedTuple):
    """What a template needs: the settings field naming its sender, the context keys."""

    sender_setting: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


# A key whose value is None counts as absent; keys no template uses are ignored. Every
# template may also use ``recipient_name`` (greeting; ``customer_name`` if absent).
# ``apr_url``, ``agv_url`` and the sender addresses come from the settings and
# ``attachment_names`` from the request's attachments: the workflow never passes them
# (COMMON_KEYS). Dates are ISO 8601 strings with an offset (``effective_from``: a date).
# ``reasons``/``pendencies`` are lists of Reason ({code, text}); ``findings`` a list of
# str; ``units`` a list of {installation_number, percent|priority}.
TEMPLATES: dict[str, TemplateInfo] = {
    # Access request and inquiry (AccessRequest): to the customer and the RT.
    "request_received": TemplateInfo(
        "sender_agv", ("request_id", "service_note", "protocol", "apr_due_at"),
        ("generation_class",)),
    "inquiry_received": TemplateInfo("sender_agv", ("request_id", "due_at")),
    # due_at: until when the reanalysis may be requested (rule pendencies_answer).
    "apr_lapsed": TemplateInfo(
        "sender_agv", ("request_id", "service_note", "protocol"), ("apr_due_at", "due_at")),
    "analysis_started": TemplateInfo(
        "sender_agv", ("request_id", "service_note", "due_at", "rule", "cycle"),
        ("protocol", "generation_class", "works_declared")),
    # The answers of the analysis of the electrical project come from APR Web's address
    # (the seed: "o sistema encaminhará resposta ... das análises de projeto elétrico/carga
    # para o e-mail cadastrado"); the commercial steps from AGV's.
    # due_at: until when the vistoria must be requested (inspection_request_window).
    "parecer_issued": TemplateInfo(
        "sender_apr", ("request_id", "service_note"), ("due_at", "notes", "requires_works")),
    # due_at: until when the pendências must be answered (pendencies_answer, 30 days).
    "suspended": TemplateInfo(
        "sender_apr", ("request_id", "service_note", "pendencies", "due_at")),
    "reproved": TemplateInfo(
        "sender_apr", ("request_id", "service_note", "reasons"), ("due_at",)),
    "reanalysis_started": TemplateInfo(
        "sender_agv", ("request_id", "service_note", "reproved_service_note", "due_at"),
        ("protocol", "cycle")),
    "inquiry_answered": TemplateInfo("sender_agv", ("request_id", "answer")),
    "inspection_requested": TemplateInfo(
        "sender_agv", ("request_id", "service_note", "due_at"), ("voltage_kv",)),
    "inspection_reproved": TemplateInfo(
        "sender_apr", ("request_id", "service_note", "findings"), ("due_at",)),
    "connected": TemplateInfo("sender_agv", ("request_id", "service_note"), ("connected_at",)),
    # cause: "withdrawn" (desistência) or "lapsed" (prazo esgotado, by policy); without
    # it the text only says "cancelada" and shows ``reason``.
    "cancelled": TemplateInfo(
        "sender_agv", ("request_id",), ("cause", "reason", "service_note")),
    # rule: the paused deadline's rule (REN art. 64).
    "clock_paused": TemplateInfo(
        "sender_agv", ("request_id", "reason"), ("paused_at", "service_note", "rule")),
    "clock_resumed": TemplateInfo(
        "sender_agv", ("request_id", "due_at"), ("service_note", "rule", "reason")),
    # Internal: to the analysts and to the supervisor (``to=["role:analysts"]`` /
    # ``["role:supervisor"]`` are resolved to the settings' addresses). step: a rule name.
    "deadline_reminder": TemplateInfo(
        "sender_agv", ("request_id", "step", "due_at"), ("service_note", "generation_class")),
    "sla_escalation": TemplateInfo(
        "sender_agv", ("request_id", "step", "due_at", "breached_at"),
        ("service_note", "process")),
    # Technician registration: the registration lives in APR Web, so APR's sender.
    "technician_received": TemplateInfo("sender_apr", ("technician",), ("due_at",)),
    "technician_agv_credentials": TemplateInfo(
        "sender_agv", ("login", "password"), ("expires_at",)),
    "technician_apr_approved": TemplateInfo("sender_apr", ("technician", "login")),
    "technician_apr_set_password": TemplateInfo(
        "sender_partweb", ("login", "token", "set_password_url", "expires_at")),
    "technician_rejected": TemplateInfo("sender_apr", ("technician", "reasons")),
    # The RT's e-mail corrected (TechnicianEmailChange): an account matter, so Partweb@ as
    # the set-password e-mail. The code goes to the new address; the notice to the old
    # one (new_email_hint: ``j***@example.com``, never the address in clear).
    "technician_email_change_code": TemplateInfo(
        "sender_partweb", ("technician", "code", "expires_at"), ("confirm_url",)),
    "technician_email_change_notice": TemplateInfo(
        "sender_partweb", ("technician", "new_email_hint", "expires_at"), ("requested_by",)),
    # Cadastramento de UC recebedora (BeneficiaryRegistration).
    "beneficiaries_received": TemplateInfo(
        "sender_agv", ("request_id", "generator_installation", "modality"), ("due_at",)),
    "beneficiaries_registered": TemplateInfo(
        "sender_agv",
        ("request_id", "generator_installation", "modality", "effective_from", "mode", "units")),
    "beneficiaries_rejected": TemplateInfo(
        "sender_agv", ("request_id", "generator_installation", "reasons")),
}

COMMON_KEYS = ("recipient_name", "customer_name", "attachment_names", "apr_url", "agv_url",
               "sender_agv", "sender_apr", "sender_partweb")


class TemplateContextError(ValueError):
    """A template was asked for with an unknown name or a context that does not fit it."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


# --- filters ---------------------------------------------------------------------------

STEP_LABELS = {
    "apr_window": "cadastro da solicitação no APR Web (24 horas)",
    "parecer": "emissão do parecer de acesso",
    "inquiry_answer": "resposta à consulta de acesso",
    "technician_review": "análise do cadastro do Responsável Técnico",
    "pendencies_answer": "resposta às pendências",
    "inspection_request_window": "solicitação de vistoria",
    "inspection": "realização da vistoria",
    "beneficiaries_review": "análise do cadastramento de UC recebedora",
}
MODALITY_LABELS = {
    "local": "autoconsumo local",
    "remote": "autoconsumo remoto",
    "shared": "geração compartilhada",
    "multi_unit": "empreendimento com múltiplas unidades consumidoras (EMUC)",
}
CLASS_LABELS = {"micro": "microgeração", "mini": "minigeração"}


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TemplateContextError(f"expected an ISO 8601 date-time, got {value!r}")
    if value.tzinfo is None:
        raise TemplateContextError(f"date-time without offset: {value.isoformat()!r}")
    return value.astimezone(LOCAL_TZ)


def datahora(value: Any) -> str:
    """``2026-04-23T02:59:00+00:00`` → ``22/04/2026 às 23:59 (horário de Brasília)``."""
    return _as_datetime(value).strftime("%d/%m/%Y às %H:%M (horário de Brasília)")


def data(value: Any) -> str:
    """A date, or a date-time read in Brasília: ``22/04/2026``."""
    if isinstance(value, str) and len(value) == 10:
        value = date.fromisoformat(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.strftime("%d/%m/%Y")
    return _as_datetime(value).strftime("%d/%m/%Y")


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


@cache
def _reason_catalogue() -> dict[str, tuple[str, bool]]:
    """code → (pt-BR text, whether only the analyst's own words mean anything)."""
    try:
        from domain.reasons import catalogue
    except ImportError:  # pragma: no cover - the catalogue is optional for rendering
        return {}
    return {code: (entry.text, entry.requires_text) for code, entry in catalogue().items()}


def motivo(reason: Any) -> str:
    """A Reason as the requester reads it: ``[CODE] catalogue text — analyst's words``."""
    code = _field(reason, "code")
    text = (_field(reason, "text") or "").strip()
    known, free_text = _reason_catalogue().get(code or "", (None, False))
    parts = [text] if free_text and text else [p for p in (known, text) if p]
    if known and text == known.strip():
        parts = [known]
    return f"[{code}] " + (" — ".join(parts) if parts else "(sem descrição)")


def numero(value: Any) -> str:
    """A number as written in pt-BR: ``0.22`` → ``0,22``."""
    return f"{float(value):g}".replace(".", ",")


def percentual(value: Any) -> str:
    return f"{float(value):.2f}".replace(".", ",") + " %"


def etapa(value: str) -> str:
    return STEP_LABELS.get(value, value)


def modalidade(value: str) -> str:
    return MODALITY_LABELS.get(value, value)


def classe(value: str) -> str:
    return CLASS_LABELS.get(value, value)


def _fail(message: str) -> None:
    raise TemplateContextError(message)


@cache
def _environment() -> jinja2.Environment:
    # auto_reload off: each template is read and compiled once per process, and later
    # renders do not stat its file (a changed template needs a worker restart).
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        auto_reload=False,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                            default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(datahora=datahora, data=data, motivo=motivo, percentual=percentual,
                       numero=numero, etapa=etapa, modalidade=modalidade, classe=classe)
    env.globals["fail"] = _fail
    return env


LINK_SETTINGS = ("apr_url", "agv_url", "sender_agv", "sender_apr", "sender_partweb")


def default_links(settings: GdSettings | None = None) -> dict[str, str]:
    """Portal addresses and senders the templates name (settings defaults if none given)."""
    if settings is None:
        return {name: GdSettings.model_fields[name].default for name in LINK_SETTINGS}
    return {name: getattr(settings, name) for name in LINK_SETTINGS}


def sample_context(template: str) -> dict[str, Any]:
    """A plausible context for ``template`` (templates/email/samples.json): previews, tests."""
    return dict(_samples()[template])


@cache
def _samples() -> dict[str, dict[str, Any]]:
    return json.loads((TEMPLATE_DIR / "samples.json").read_text("utf-8"))


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def render(template: str, context: Mapping[str, Any], *,
           links: Mapping[str, str] | None = None) -> RenderedEmail:
    """Subject, text and HTML of ``template`` for ``context``; pure.

    Raises ``TemplateContextError`` for an unknown template, a missing required key, any
    other name a template uses and the context lacks (jinja2 StrictUndefined), or a date
    without offset. A key whose value is None counts as absent. ``links`` (portal URLs,
    sender addresses) default to the settings' defaults; the activity passes its settings.
    """
    info = TEMPLATES.get(template)
    if info is None:
        raise TemplateContextError(f"unknown e-mail template {template!r}")
    context = {key: value for key, value in context.items() if value is not None}
    missing = [key for key in info.required if key not in context]
    if missing:
        raise TemplateContextError(
            f"template {template!r}: missing required context key(s): {', '.join(missing)}")
    values: dict[str, Any] = {**default_links(), **(links or {}), "attachment_names": []}
    values.update(context)
    env = _environment()
    try:
        subject = env.get_template(f"{template}.subject.j2").render(values)
        # A header is one line: values with line breaks cannot inject headers.
        values["subject"] = " ".join(subject.split())
        text = env.get_template(f"{template}.txt.j2").render(values)
        html = env.get_template(f"{template}.html.j2").render(values)
    except (jinja2.UndefinedError, ValueError) as error:  # incl. a date that does not parse
        raise TemplateContextError(f"template {template!r}: {error}") from error
    return RenderedEmail(subject=values["subject"], text=_tidy_text(text), html=html)

