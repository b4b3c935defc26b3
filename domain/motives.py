"""The AGV form's "Motivo da Solicitação" (seed: "No item: 'Motivo da Solicitação' escolha
a opção desejada para acessar o respectivo formulário"), as codes and pt-BR labels.

A solicitação de acesso records one at intake (``AccessRequestInput.motive``; default
``new_connection``). The reanalysis has its own two motives (``REANALYSIS_MOTIVES`` in
models/access.py: "Reanálise do projeto/processo elétrico", "Reanálise de carga na rede").
Pure: used from workflows.
"""

from __future__ import annotations

REQUEST_MOTIVES: dict[str, str] = {
    "new_connection": "Conexão de nova micro/minigeração distribuída",
    "power_increase": "Aumento de potência instalada",
    "holder_change": "Troca de titularidade",
    "modality_change": "Alteração da modalidade de compensação",
    "beneficiaries_change": "Cadastramento ou alteração de UC recebedora",
    "source_change": "Alteração da fonte ou dos equipamentos de geração",
}
DEFAULT_MOTIVE = "new_connection"


def label(code: str | None) -> str:
    return REQUEST_MOTIVES.get(code or DEFAULT_MOTIVE, code or "")
