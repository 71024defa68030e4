"""Keyset pagination over any ordered listing: no OFFSET, so a deep page costs what the first
does, and a walk neither skips nor repeats rows while others are inserted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import QueryableAttribute

from indexchat.errors import InvalidPageToken


@dataclass(frozen=True)
class Keyset:
    """The ordering of a listing: its columns (the last one unique) and their direction."""

    columns: tuple[QueryableAttribute[Any], ...]
    descending: bool = False

    def apply(self, query: Select[Any], after: Sequence[Any] | None, limit: int) -> Select[Any]:
        if after is not None:
            left, right = tuple_(*self.columns), tuple_(*after)
            query = query.where(left < right if self.descending else left > right)
        order = [c.desc() if self.descending else c.asc() for c in self.columns]
        return query.order_by(*order).limit(limit)

    def position(self, row: Any) -> list[Any]:
        """The JSON-safe position of ``row`` (an ORM object or a Row)."""
        values = [getattr(row, c.key) for c in self.columns]
        return [v.isoformat() if isinstance(v, datetime) else v for v in values]

    def parse(self, position: Sequence[Any]) -> list[Any]:
        """Typed values back from a position; raises InvalidPageToken when it does not fit."""
        if len(position) != len(self.columns):
            raise InvalidPageToken("malformed page_token")
        values = []
        for column, value in zip(self.columns, position, strict=True):
            try:
                if column.type.python_type is datetime:
                    value = datetime.fromisoformat(value)
                elif not isinstance(value, column.type.python_type):
                    raise TypeError
            except (TypeError, ValueError, NotImplementedError) as exc:
                raise InvalidPageToken("malformed page_token") from exc
            values.append(value)
        return values


def split_page(
    rows: Sequence[Any], page_size: int, keyset: Keyset
) -> tuple[list[Any], list[Any] | None]:
    """Given up to ``page_size + 1`` rows, the page and the position the next one starts after
    (None on the last page)."""
    if len(rows) <= page_size:
        return list(rows), None
    page = list(rows[:page_size])
    return page, keyset.position(page[-1])
