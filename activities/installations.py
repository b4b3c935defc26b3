"""The customer base: the distributor's installations (UCs), their holders and whether a
GD plant is already connected there.

The seed's AGV login lists "as instalações veiculadas ao nome" of a CPF; a request names
one of them. ``import_csv`` loads the distributor's export (``gd installations import``):
every row is validated first and, if any is bad, nothing is written and every bad row is
reported with its line number; a good file is upserted by installation number, so
importing the same file twice changes nothing. Intake (activities/records.py) checks a
request's installation here unless ``GD_INSTALLATIONS_CHECK=off``.

CSV: a header line, then one installation per line, separated by ``;`` (or ``,``),
UTF-8 (a BOM is accepted). Columns, in any order::

    instalacao;documento_titular;endereco;classe;gd_conectada

``gd_conectada``: ``sim``/``nao`` (also ``s``/``n``, ``true``/``false``, ``1``/``0``):
a GD plant connected before this system (its UCs recebedoras may be registered here).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pydantic_core import PydanticCustomError
from sqlmodel import select

from activities.store import Store
from activities.tables import Installation
from models.common import holder_key, normalize_tax_id

DEMO_CSV = Path(__file__).resolve().parent.parent / "domain" / "data" / "installations-demo.csv"
COLUMNS = ("instalacao", "documento_titular", "endereco", "classe", "gd_conectada")
# Classes de consumo (REN 1000/2021 art. 2 and 184).
CLASSES = (
    "residencial", "comercial", "industrial", "rural", "poder_publico",
    "iluminacao_publica", "servico_publico", "consumo_proprio",
)
_YES = ("sim", "s", "true", "1")
_NO = ("nao", "não", "n", "false", "0")
MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_ROWS = 2_000_000
MAX_REPORTED = 100  # bad rows listed; the count says how many more


@dataclass(frozen=True)
class InstallationRow:
    number: str
    holder_document: str
    address: str
    customer_class: str
    gd_connected: bool

    @property
    def holder_key(self) -> str:
        return holder_key(self.holder_document)


@dataclass
class ImportReport:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    # (line number in the file, pt-BR message); nothing was written when not empty.
    problems: list[tuple[int, str]] = field(default_factory=list)
    more_problems: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


class ImportRefused(ValueError):
    """The file as a whole cannot be read (pt-BR message)."""


def _row(line: int, values: dict[str, str], seen: dict[str, int]) -> tuple[InstallationRow | None, list[str]]:
    problems: list[str] = []
    number = (values.get("instalacao") or "").strip()
    if not re.fullmatch(r"[0-9]{10}", number):
        problems.append("instalacao: deve ter exatamente 10 dígitos")
    elif number in seen:
        problems.append(f"instalacao: {number} repetida (já na linha {seen[number]})")
    document = (values.get("documento_titular") or "").strip()
    try:
        document = normalize_tax_id(document)
    except PydanticCustomError as error:
        problems.append(f"documento_titular: {error.message()}")
    address = unicodedata.normalize("NFC", (values.get("endereco") or "").strip())
    if not address or len(address) > 300 or any(
        unicodedata.category(c).startswith("C") for c in address
    ):
        problems.append("endereco: obrigatório, até 300 caracteres, sem caracteres de controle")
    customer_class = (values.get("classe") or "").strip().lower()
    if customer_class not in CLASSES:
        problems.append(f"classe: desconhecida; aceitas: {', '.join(CLASSES)}")
    flag = (values.get("gd_conectada") or "").strip().lower()
    if flag not in _YES + _NO:
        problems.append("gd_conectada: use sim ou nao")
    if problems:
        return None, problems
    seen[number] = line
    return InstallationRow(number, document, address, customer_class, flag in _YES), []


def parse_csv(data: bytes) -> tuple[list[InstallationRow], ImportReport]:
    """Every row of the file, validated; the report lists each bad line."""
    if len(data) > MAX_FILE_BYTES:
        raise ImportRefused(f"arquivo acima de {MAX_FILE_BYTES // 2**20} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportRefused(f"o arquivo deve estar em UTF-8 (byte inválido na posição {error.start})") from None
    first = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ImportRefused("arquivo vazio: esperado um cabeçalho com "
                            f"{';'.join(COLUMNS)}") from None
    missing = [c for c in COLUMNS if c not in header]
    unknown = [h for h in header if h not in COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise ImportRefused(
            f"cabeçalho (linha 1) deve ter as colunas {';'.join(COLUMNS)}"
            + (f"; faltam: {', '.join(missing)}" if missing else "")
            + (f"; desconhecidas: {', '.join(unknown)}" if unknown else ""))
    report = ImportReport()
    rows: list[InstallationRow] = []
    seen: dict[str, int] = {}
    try:
        for values in reader:
            line = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            report.rows += 1
            if report.rows > MAX_ROWS:
                raise ImportRefused(f"arquivo com mais de {MAX_ROWS} linhas: divida-o")
            if len(values) != len(header):
                problems = [f"esperadas {len(header)} colunas, encontradas {len(values)}"]
                row = None
            else:
                row, problems = _row(line, dict(zip(header, values)), seen)
            if problems:
                if len(report.problems) < MAX_REPORTED:
                    report.problems.append((line, "; ".join(problems)))
                else:
                    report.more_problems += 1
            elif row is not None:
                rows.append(row)
    except csv.Error as error:
        raise ImportRefused(f"linha {reader.line_num}: CSV malformado ({error})") from None
    return rows, report


def import_csv(store: Store, data: bytes | Path, *, now: datetime | None = None) -> ImportReport:
    """Validate the whole file, then upsert it in one transaction (nothing if any row is bad)."""
    if isinstance(data, Path):
        data = data.read_bytes()
    rows, report = parse_csv(data)
    if not report.ok:
        return report
    stamp = now or datetime.now(timezone.utc)
    with store.session() as s:
        for row in rows:
            current = s.get(Installation, row.number)
            values = dict(holder_document=row.holder_document, holder_key=row.holder_key,
                          address=row.address, customer_class=row.customer_class,
                          gd_connected=row.gd_connected)
            if current is None:
                s.add(Installation(number=row.number, imported_at=stamp, **values))
                report.inserted += 1
            elif any(getattr(current, k) != v for k, v in values.items()):
                for key, value in values.items():
                    setattr(current, key, value)
                current.imported_at = stamp
                report.updated += 1
            else:
                report.unchanged += 1
    return report


def load_demo(store: Store) -> ImportReport:
    """The small demo base (domain/data/installations-demo.csv): `gd demo`, `gd dev up`, tests."""
    report = import_csv(store, DEMO_CSV)
    assert report.ok, report.problems
    return report


def lookup(store: Store, number: str) -> Installation | None:
    with store.session(write=False) as s:
        row = s.get(Installation, number)
        if row is not None:
            s.expunge(row)
        return row


def of_holder(store: Store, document: str) -> list[Installation]:
    """The installations of a CPF (exactly) or of a CNPJ's root (every branch)."""
    key = holder_key(document)
    with store.session(write=False) as s:
        query = select(Installation).where(Installation.holder_key == key)
        if len(document) == 11:
            query = query.where(Installation.holder_document == document)
        rows = list(s.exec(query.order_by(Installation.number)).all())
        for row in rows:
            s.expunge(row)
        return rows


def holder_matches(installation: Installation, document: str) -> bool:
    """Same CPF, or same CNPJ root (DOMAIN.md: autoconsumo remoto, same holder)."""
    return installation.holder_key == holder_key(document)
