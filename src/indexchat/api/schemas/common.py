"""Wire shapes shared by every resource."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# Ids we mint use these characters only; anything else cannot name an object (and NUL bytes,
# which PostgreSQL refuses in text, never reach the database).
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
# Names are free text without control characters.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"

# The largest integers the database columns hold (INTEGER, BIGINT): larger inputs compared with
# them are refused (422), not a 500.
MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
# An integer a client sends inside a value we store or compare (metadata, filter values): the
# range of a 64-bit column, declared in the schema so clients and fuzzers see the bound.
Int64 = Annotated[int, Field(ge=-MAX_INT64 - 1, le=MAX_INT64)]

IdField = Annotated[str, Field(pattern=ID_PATTERN)]
IdPath = Annotated[str, Path(pattern=ID_PATTERN)]
OptionalIdQuery = Annotated[str | None, Query(pattern=ID_PATTERN)]
OptionalNameQuery = Annotated[str | None, Query(pattern=NAME_PATTERN)]


def from_row(model: type[M], row: object, **given: Any) -> M:
    """The wire model of a database row: each field not ``given`` is the row's attribute of the
    same name, a datetime (stored as naive UTC) made aware, so it is sent with its offset."""
    values = dict(given)
    for name in model.model_fields.keys() - given.keys():
        value = getattr(row, name)
        values[name] = value.replace(tzinfo=UTC) if isinstance(value, datetime) else value
    return model(**values)


def refuse_nul(value: Any) -> Any:
    """Refuse NUL characters anywhere in a value (PostgreSQL cannot store them in text; both
    backends answer alike): the 422 names the field."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
    elif isinstance(value, list | tuple):
        for item in value:
            refuse_nul(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(key)
            refuse_nul(item)
    return value


# A form field (or any other lone parameter) that is free text.
NoNul = AfterValidator(refuse_nul)


class RequestBody(BaseModel):
    """A request body: no text in it may hold NUL characters."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return refuse_nul(value)


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
