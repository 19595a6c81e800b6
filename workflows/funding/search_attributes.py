"""Custom search attributes of the funding workflow, registered when Temporal starts.

They let an officer list applications stuck in a stage, e.g.
``temporal workflow list --query "GrantflowStage='review' AND GrantflowStageEnteredAt < '...'"``.
"""

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
