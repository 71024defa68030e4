"""Wire shapes shared by every resource."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

T = TypeVar("T")

# Ids we mint use these characters only; anything else cannot name an object (and NUL bytes,
# which PostgreSQL refuses in text, never reach the database).
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
# Names are free text without control characters.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"

IdField = Annotated[str, Field(pattern=ID_PATTERN)]
IdPath = Annotated[str, Path(pattern=ID_PATTERN)]
OptionalIdQuery = Annotated[str | None, Query(pattern=ID_PATTERN)]
OptionalNameQuery = Annotated[str | None, Query(pattern=NAME_PATTERN)]


class CursorPage(BaseModel, Generic[T]):
    """``{"items": [...], "next_page_token": "..."}``; the token is left out on the last page."""

    items: list[T]
    next_page_token: str | None = Field(
        default=None,
        description="Pass as page_token to get the next page. Absent on the last page.",
    )

    @model_serializer(mode="wrap")
    def _omit_missing_token(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("next_page_token") is None:
            data.pop("next_page_token", None)
        return data


class ErrorBody(BaseModel):
    detail: Any = Field(description="What went wrong: a message, or a list of validation errors.")
