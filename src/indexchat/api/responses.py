"""JSON responses serialised once, by the model itself, in the worker thread."""

from __future__ import annotations

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
