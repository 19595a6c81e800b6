"""Custom search attributes of the funding workflow, registered when Temporal starts.

They let an officer list applications stuck in a stage, e.g.
``temporal workflow list --query "GrantflowStage='review' AND GrantflowStageEnteredAt < '...'"``.
"""

SEARCH_ATTRIBUTES: dict[str, str] = {
    "GrantflowProgram": "Keyword",
    "GrantflowStage": "Keyword",
    "GrantflowStageEnteredAt": "Datetime",
    "GrantflowMember": "Keyword",
}
