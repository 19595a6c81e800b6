"""Custom search attributes of the funding workflow, registered by ``grantflow setup``.

They let an officer list applications stuck in a stage, e.g.
``temporal workflow list --query "GrantflowStage='review' AND GrantflowStageEnteredAt < '...'"``.
The bridge starts every workflow with them, so a namespace without them starts none.
"""

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey

SEARCH_ATTRIBUTES: dict[str, str] = {
    "GrantflowProgram": "Keyword",
    "GrantflowStage": "Keyword",
    "GrantflowStageEnteredAt": "Datetime",
    "GrantflowMember": "Keyword",
}

# Typed keys, for the workflow's upserts, the bridge's start options and the officers' search.

PROGRAM = SearchAttributeKey.for_keyword("GrantflowProgram")
STAGE = SearchAttributeKey.for_keyword("GrantflowStage")
STAGE_ENTERED_AT = SearchAttributeKey.for_datetime("GrantflowStageEnteredAt")
MEMBER = SearchAttributeKey.for_keyword("GrantflowMember")

_INDEXED_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}


class SearchAttributeConflictError(Exception):
    """A search attribute exists with another type: the namespace was set up by someone else."""


async def ensure_search_attributes(client: Client) -> str:
    """Add the attributes the namespace of ``client`` lacks; what was found or done."""
    namespace = client.namespace
    present = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    known = {**present.system_attributes, **present.custom_attributes}
    wanted = {name: _INDEXED_TYPES[kind] for name, kind in SEARCH_ATTRIBUTES.items()}
    wrong = [
        f"{name} is {IndexedValueType.Name(known[name])}"
        for name, kind in wanted.items()
        if name in known and known[name] != kind
    ]
    if wrong:
        raise SearchAttributeConflictError(
            f"namespace {namespace}: search attributes of another type: {', '.join(wrong)}"
        )
    missing = {name: kind for name, kind in wanted.items() if name not in known}
    if not missing:
        return f"temporal: the {len(wanted)} search attributes are present in {namespace}"
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
    )
    return f"temporal: search attributes {', '.join(sorted(missing))} added to {namespace}"
