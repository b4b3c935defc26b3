"""The search attributes of CONTRACT.md. Never a CPF, CNPJ, name, e-mail or phone."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

GD_STATUS = SearchAttributeKey.for_keyword("GdStatus")
GD_KIND = SearchAttributeKey.for_keyword("GdKind")
GD_CLASS = SearchAttributeKey.for_keyword("GdClass")
GD_SERVICE_NOTE = SearchAttributeKey.for_keyword("GdServiceNote")
GD_PROTOCOL = SearchAttributeKey.for_keyword("GdProtocol")
GD_TECHNICIAN = SearchAttributeKey.for_keyword("GdTechnician")
GD_NEXT_ACTOR = SearchAttributeKey.for_keyword("GdNextActor")
GD_DUE_AT = SearchAttributeKey.for_datetime("GdDueAt")
GD_SLA_BREACHED = SearchAttributeKey.for_bool("GdSlaBreached")
# The analyst who claimed the request (the actor id: never a name or e-mail).
GD_ASSIGNEE = SearchAttributeKey.for_keyword("GdAssignee")

ALL_KEYS = (
    GD_STATUS,
    GD_KIND,
    GD_CLASS,
    GD_SERVICE_NOTE,
    GD_PROTOCOL,
    GD_TECHNICIAN,
    GD_NEXT_ACTOR,
    GD_DUE_AT,
    GD_SLA_BREACHED,
    GD_ASSIGNEE,
)

# The dev server's `--search-attribute Name=Type` spelling of each key.
CLI_TYPES = {
    "GdStatus": "Keyword",
    "GdKind": "Keyword",
    "GdClass": "Keyword",
    "GdServiceNote": "Keyword",
    "GdProtocol": "Keyword",
    "GdTechnician": "Keyword",
    "GdNextActor": "Keyword",
    "GdDueAt": "Datetime",
    "GdSlaBreached": "Bool",
    "GdAssignee": "Keyword",
}


async def register(client, namespace: str) -> None:
    """Register every key on a server that does not know them (the time-skipping one)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
        "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    }
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={name: kinds[kind] for name, kind in CLI_TYPES.items()},
        )
    )
