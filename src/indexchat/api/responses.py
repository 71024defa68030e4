"""JSON responses serialised once, by the model itself, in the worker thread."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Response
from pydantic import BaseModel


def json_response(model: BaseModel | list[BaseModel], status_code: int = 200) -> Response:
    """The route's ``response_model`` still documents the shape; returning a ready Response skips
    FastAPI's second validation pass of an already validated model."""
    if isinstance(model, list):
        body = b"[" + b",".join(m.model_dump_json().encode() for m in model) + b"]"
    else:
        body = model.model_dump_json().encode()
    return Response(body, status_code=status_code, media_type="application/json")


def json_response_of(data: Any, status_code: int = 200) -> Response:
    """A plain JSON value (for the endpoints the SDK types as a free-form object)."""
    return Response(json.dumps(data), status_code=status_code, media_type="application/json")
