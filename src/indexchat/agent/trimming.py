"""A tool result as JSON text that fits what the model may read, and is still valid JSON.

Cutting the text at a length leaves JSON that no reader can parse. Instead the longest strings
(passages, file text, grep context) are shortened alike, each ending with how much was cut; if
that is not enough, trailing items of a list are left out and a last item says how many.
"""

from __future__ import annotations

import json
from typing import Any

# Strings are never cut shorter than this; a list sheds items first.
MIN_KEPT_CHARS = 200
# A string is only cut when that saves more than its marker adds.
_MARKER_ROOM = 40


def fit_json(value: Any, limit: int) -> str:
    """``value`` as JSON text of at most ``limit`` characters (whole when it fits)."""
    text = _dumps(value)
    if len(text) <= limit:
        return text
    fitted = _fit_by_shortening(value, limit)
    if fitted is not None:
        return fitted
    if isinstance(value, list):
        fitted = _fit_by_dropping(_shorten(value, MIN_KEPT_CHARS), limit)
        if fitted is not None:
            return fitted
    return _dumps({"trimmed": f"the result ({len(text):,} characters) is too long to show"})


def _fit_by_shortening(value: Any, limit: int) -> str | None:
    """The JSON text with every string cut to the longest length that fits (binary search)."""
    low, high = MIN_KEPT_CHARS, max(_string_lengths(value), default=0)
    best = None
    while low <= high:
        keep = (low + high) // 2
        text = _dumps(_shorten(value, keep))
        if len(text) <= limit:
            best, low = text, keep + 1
        else:
            high = keep - 1
    return best


def _fit_by_dropping(items: list[Any], limit: int) -> str | None:
    """The most leading items that fit, with a last item saying how many were left out."""
    for keep in range(len(items) - 1, 0, -1):
        left_out = len(items) - keep
        note = {"trimmed": f"{left_out} more result{'s' if left_out > 1 else ''} left out"}
        text = _dumps([*items[:keep], note])
        if len(text) <= limit:
            return text
    return None


def _shorten(value: Any, keep: int) -> Any:
    if isinstance(value, str):
        if len(value) <= keep + _MARKER_ROOM:
            return value
        return f"{value[:keep]} …[{len(value) - keep:,} more characters]"
    if isinstance(value, list):
        return [_shorten(item, keep) for item in value]
    if isinstance(value, dict):
        return {key: _shorten(item, keep) for key, item in value.items()}
    return value


def _string_lengths(value: Any) -> list[int]:
    if isinstance(value, str):
        return [len(value)]
    if isinstance(value, list):
        return [n for item in value for n in _string_lengths(item)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in _string_lengths(item)]
    return []


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
