"""Reading a turn's stream as a client does: SSE lines to events, streaming, following."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
from llama_cloud import LlamaCloud

DELTAS = {"text_delta", "thinking_delta"}


def sse_events(lines: list[str]) -> list[dict]:
    """Parse SSE lines as a client would: ``data:`` lines hold one JSON event each."""
    events = []
    for line in lines:
        assert not line.startswith(("id:", "retry:")), line
        if line.startswith("data:"):
            events.append(json.loads(line[len("data:") :]))
    return events


def stream_turn(client: LlamaCloud, session_id: str, **body: object) -> list[dict]:
    body.setdefault("index_ids", [])
    with client.chat.with_streaming_response.stream(session_id, **body) as response:  # type: ignore[arg-type]
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_events(list(response.iter_lines()))


def stored(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] not in DELTAS]


def history(client: LlamaCloud, session_id: str) -> list[dict]:
    return [e.to_dict() for e in client.chat.retrieve(session_id).events]


def read_until(lines: Iterator[str], kind: str) -> list[dict]:
    """Read events up to the first of ``kind``, leaving the stream open for more."""
    seen = []
    for line in lines:
        if line.startswith("data:"):
            seen += sse_events([line])
            if seen[-1]["type"] == kind:
                return seen
    raise AssertionError(f"no {kind} event")


def follow(client: LlamaCloud, session_id: str, timeout: float = 30) -> list[dict]:
    """Every event of the session's stream, from the start of its history to the stop."""
    with httpx.stream(
        "GET",
        f"{str(client.base_url).rstrip('/')}/api/v1/chat/{session_id}/messages/stream",
        headers={"Authorization": f"Bearer {client.api_key}"},
        timeout=timeout,
    ) as response:
        assert response.status_code == 200
        return sse_events(list(response.iter_lines()))


def cancel_while_following(
    client: LlamaCloud, session_id: str, lines: Iterator[str]
) -> tuple[list[dict], list[dict]]:
    """With the running turn's own stream at ``lines``: follow the turn through ``client``,
    cancel it, and read both streams to the end (the rest of the turn's, the followed one)."""
    followed: list[dict] = []
    follower = threading.Thread(target=lambda: followed.extend(follow(client, session_id)))
    follower.start()
    time.sleep(0.5)
    client.post(f"/api/v1/chat/{session_id}/messages/cancel", cast_to=object)
    rest = sse_events(list(lines))
    follower.join(10)
    return rest, followed
