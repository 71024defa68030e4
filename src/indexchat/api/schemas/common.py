"""Wire shapes shared by every resource."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

T = TypeVar("T")


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
