"""Wire models of chat turns (contract §3.7) and of the turn extensions."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from indexchat.api.schemas.common import IdField, RequestBody
from indexchat.api.schemas.sessions import MAX_INDEX_IDS

MAX_PROMPT_CHARS = 32_000


def _not_blank(prompt: str) -> str:
    if not prompt.strip():
        raise ValueError("prompt must not be blank")
    return prompt


# A question to the model: something besides white space (its length is each field's own).
Prompt = Annotated[str, AfterValidator(_not_blank)]


class TurnRequest(RequestBody):
    index_ids: list[IdField] = Field(
        max_length=MAX_INDEX_IDS,
        description="Indexes to query on this turn. A bound session accepts its own set (in any "
        "order) or []; another set answers 409. An unbound session queries these.",
    )
    prompt: Prompt = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description=f"The user's message, at most {MAX_PROMPT_CHARS:,} characters.",
    )
    require_all_indexes: bool = Field(
        default=False,
        description="Fail the turn when any requested index cannot be queried (unknown, or never "
        "synced) instead of skipping it and listing it in the stop event's skipped_index_ids.",
    )
    continue_on_disconnect: bool = Field(
        default=False,
        description="Extension: keep the turn running if this stream's client goes away (a page "
        "reload, a dropped connection); follow it again with `GET …/messages/stream?after=N`, "
        "stop it with `POST …/messages/cancel`. By default a disconnect cancels the turn.",
    )
