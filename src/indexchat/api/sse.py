"""Server-Sent Events framing that the official SDKs can read.

Each event is ``event: <type>`` plus one ``data:`` line of JSON (``type`` included), then a
blank line. No ``id:`` and no ``retry:`` fields: the SDK's decoder remembers the last ``id`` and
then turns the next comment line into an empty event it cannot parse. Keep-alives are comment
lines, safe only because no ``id`` is ever sent; resuming a stream uses a query parameter
(``?after=N``) instead of ``Last-Event-ID``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable

from starlette.responses import StreamingResponse

from indexchat.events import Event

KEEPALIVE_SECONDS = 15.0
KEEPALIVE = b": keep-alive\n\n"
# Proxies must pass events through as they come (no buffering, no compression).
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# One SSE event as OpenAPI tools read a stream: its fields, `data` holding a JSON chat event.
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "description": "The chat event's type."},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "One chat event as JSON (the event union of the session history).",
        },
    },
    "required": ["event", "data"],
}


def frame(event: Event) -> bytes:
    data = json.dumps(event.to_wire(), ensure_ascii=False, separators=(",", ":"))
    return f"event: {event.type}\ndata: {data}\n\n".encode()


def frames(events: Iterable[Event]) -> bytes:
    """The frames of many events at once (a stored history replayed)."""
    return b"".join(frame(event) for event in events)


async def encode(events: AsyncIterator[Event | None]) -> AsyncIterator[bytes]:
    """Frames for events; a keep-alive comment for each ``None``."""
    async for event in events:
        yield KEEPALIVE if event is None else frame(event)


async def encode_batches(
    batches: AsyncIterator[list[Event] | None],
) -> AsyncIterator[bytes]:
    """One piece of frames for each batch of events (one write to the client, not one per
    event); a keep-alive comment for each ``None``."""
    async for batch in batches:
        yield KEEPALIVE if batch is None else b"".join(map(frame, batch))


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"
