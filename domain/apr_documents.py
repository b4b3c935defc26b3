"""The technical documents of the APR Web step (seed: "envio dos documentos técnicos por
meio do APR Web": projetos, ART, …; DOMAIN.md 3.3), per generation class.

``register_apr`` refuses a registration without every required kind (within the 24 hours
and, issue 17, for a lapsed NS too); ``request_received`` lists exactly these, required
and recommended. The guide names no other document for minigeração, so both classes
share the list today; a distributor rule that differs per class goes here. Pure.
"""

from __future__ import annotations

REQUIRED_APR_KINDS = ("electrical_project", "art_rrt", "single_line_diagram", "descriptive_memorial")
RECOMMENDED_APR_KINDS = (
    "inverter_datasheet", "module_datasheet", "inverter_certificate", "power_of_attorney",
)
LABELS = {
    "electrical_project": "projeto elétrico",
    "art_rrt": "ART (CREA) ou RRT (CAU) do responsável técnico",
    "single_line_diagram": "diagrama unifilar",
    "descriptive_memorial": "memorial descritivo",
    "inverter_datasheet": "folha de dados dos inversores",
    "module_datasheet": "folha de dados dos módulos",
    "inverter_certificate": "certificado do inversor (INMETRO)",
    "power_of_attorney": "procuração, quando alguém age pelo cliente",
}
BY_CLASS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "micro": (REQUIRED_APR_KINDS, RECOMMENDED_APR_KINDS),
    "mini": (REQUIRED_APR_KINDS, RECOMMENDED_APR_KINDS),
}


def apr_documents(generation_class: str) -> tuple[list[str], list[str]]:
    """(required, recommended) pt-BR labels for the class's APR step."""
    required, recommended = BY_CLASS.get(generation_class, BY_CLASS["micro"])
    return [LABELS[k] for k in required], [LABELS[k] for k in recommended]
