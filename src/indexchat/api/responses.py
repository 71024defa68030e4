"""JSON responses serialised once, by the model itself, in the worker thread."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from fastapi import Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

# Bytes read per step of a download: the memory one download holds, whatever the file's size.
STREAM_CHUNK = 256 * 1024


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


def stream_blob(
    reader: BinaryIO, size: int, media_type: str, headers: dict[str, str] | None = None
) -> StreamingResponse:
    """Send an open blob piece by piece (reads off the event loop), then close it."""

    async def pieces() -> AsyncIterator[bytes]:
        try:
            while piece := await run_in_threadpool(reader.read, STREAM_CHUNK):
                yield piece
        finally:
            reader.close()

    sized = {**(headers or {}), "content-length": str(size)}
    return StreamingResponse(pieces(), media_type=media_type, headers=sized)
