"""Chat turns with the offline extractive answerer over real synced indexes, through the
official SDK: SSE framing for every way the SDK reads a stream, history, binding rules, skipped
indexes, limits, isolation, and the turn extensions (follow/resume, cancel, export)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from factories import (
    TURN_NOTES,
    LiveServer,
    Tenant,
    add_index,
    make_index,
    make_tenant,
    wait_for_sync,
)
from llama_cloud import ConflictError, NotFoundError, Stream, UnprocessableEntityError
from streams import history, sse_events, stored, stream_turn

from indexchat.agent import loop
from indexchat.agent.extractive import HEADER
from indexchat.api.schemas.turns import MAX_PROMPT_CHARS


@pytest.fixture
def notes(tenant: Tenant) -> str:
    index_id, _, _ = make_index(tenant, {k: v.encode() for k, v in TURN_NOTES.items()})
    wait_for_sync(tenant.client, index_id)
    return index_id


def test_a_turn_streams_in_order_and_is_kept_as_history(tenant: Tenant, notes: str) -> None:
    client = tenant.client
    chat = client.chat.create(index_ids=[notes])
    assert chat.generated_title is None and chat.job_metadata is None
    prompt = "Which cities does the Danube flow through? List them all."
    events = stream_turn(client, chat.session_id, index_ids=[notes], prompt=prompt)

    kinds = [e["type"] for e in events]
    assert kinds[0] == "user_input" and events[0]["content"] == prompt
    assert kinds[-1] == "stop" and kinds.count("stop") == 1
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("text")
    call = events[kinds.index("tool_call")]
    result = events[kinds.index("tool_result")]
    assert call["name"] == result["name"] == "retrieve"
    assert call["call_id"] == result["call_id"] and call["arguments"]["query"] == prompt
    assert result["result"][0]["file_name"] == "rivers.md"
    deltas = "".join(e["content"] for e in events if e["type"] == "text_delta")
    answer = events[kinds.index("text")]["content"]
    assert deltas == answer
    assert "Extractive answer" in answer and "Vienna, Bratislava and Budapest" in answer
    assert "[rivers.md]" in answer  # cited by file; a Markdown file has no pages
    cited = {line.strip("[]") for line in answer.splitlines() if line.startswith("[")}
    assert cited <= {r["file_name"] for r in result["result"]}  # cites only what it was given
    stop = events[-1]
    assert stop["is_error"] is False and stop["error"] is None and stop["skipped_index_ids"] == []
    # No language model ran: no model calls and no tokens, only the time it took.
    assert stop["usage"]["turns"] == 0 and stop["usage"]["duration_ms"] > 0
    assert stop["usage"]["total_input_tokens"] is None
    assert stop["usage"]["total_output_tokens"] is None

    # History holds the complete events (not the deltas), in the same order.
    assert history(client, chat.session_id) == stored(events)
    session = client.chat.get_summary(chat.session_id)
    assert session.generated_title == "Which cities does the Danube flow through?..."
    metadata = session.job_metadata
    assert metadata is not None and metadata.is_error is False and metadata.turns == 0
    assert metadata.total_input_tokens is None and metadata.total_output_tokens is None
    assert metadata.duration_ms == stop["usage"]["duration_ms"]
    assert metadata.export_config_ids == [client.indexes.get(notes).export_config_id]
    assert session.last_updated_at > chat.last_updated_at


def test_every_sdk_way_of_reading_the_stream(tenant: Tenant, notes: str) -> None:
    client = tenant.client
    chat = client.chat.create(index_ids=[notes])
    decoded = list(
        client.post(
            f"/api/v1/chat/{chat.session_id}/messages/stream",
            cast_to=object,
            body={"index_ids": [notes], "prompt": "How long do cats sleep?"},
            stream=True,
            stream_cls=Stream[object],
        )
    )
    assert [e["type"] for e in decoded][0] == "user_input" and decoded[-1]["type"] == "stop"
    assert "twelve to sixteen hours" in next(e for e in decoded if e["type"] == "text")["content"]
    # The plain call waits for the end and returns the raw SSE text.
    raw = client.chat.stream(chat.session_id, index_ids=[notes], prompt="And green tea?")
    assert isinstance(raw, str)
    events = sse_events(raw.splitlines())
    assert events[0] == {"type": "user_input", "content": "And green tea?"}
    assert events[-1]["type"] == "stop" and events[-1]["is_error"] is False
    assert "event: text\n" in raw
    # Whatever Accept says, the answer is an event stream.
    with httpx.Client(base_url=client.base_url.__str__().rstrip("/")) as http:
        response = http.post(
            f"/api/v1/chat/{chat.session_id}/messages/stream",
            json={"index_ids": [], "prompt": "Cats?"},
            headers={"Authorization": f"Bearer {tenant.api_key}", "Accept": "application/json"},
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in response.headers
    assert sse_events(response.text.splitlines())[-1]["type"] == "stop"


def test_bound_session_rejects_another_index_set(tenant: Tenant, notes: str) -> None:
    client = tenant.client
    other = add_index_synced(tenant, {"x.md": b"# X\n\nUnrelated text about lighthouses."})
    chat = client.chat.create(index_ids=[notes])
    for wrong in ([other], [notes, other]):
        with pytest.raises(ConflictError) as caught:
            client.chat.stream(chat.session_id, index_ids=wrong, prompt="Danube?")
        assert caught.value.response.headers["x-should-retry"] == "false"
        assert "bound" in str(caught.value)
    assert history(client, chat.session_id) == []  # a rejected turn leaves nothing behind
    # [] and the same set are both the bound set.
    assert (
        stream_turn(client, chat.session_id, index_ids=[], prompt="Danube?")[-1]["is_error"]
        is False
    )
    after = stream_turn(client, chat.session_id, index_ids=[notes], prompt="Cats?")
    assert after[-1]["is_error"] is False
    assert client.chat.get_summary(chat.session_id).index_ids == [notes]


def add_index_synced(tenant: Tenant, files: dict[str, bytes]) -> str:
    index_id, _, _ = make_index(tenant, files)
    wait_for_sync(tenant.client, index_id)
    return index_id


def test_unbound_session_takes_each_turns_indexes(tenant: Tenant, notes: str) -> None:
    client = tenant.client
    lighthouses = add_index_synced(
        tenant, {"lights.md": b"# Lighthouses\n\nThe Pharos of Alexandria guided ships."}
    )
    chat = client.chat.create()
    first = stream_turn(client, chat.session_id, index_ids=[notes], prompt="Where is the Danube?")
    assert next(e for e in first if e["type"] == "tool_result")["result"][0]["index_id"] == notes
    second = stream_turn(
        client, chat.session_id, index_ids=[lighthouses], prompt="Which lighthouse guided ships?"
    )
    hits = next(e for e in second if e["type"] == "tool_result")["result"]
    assert {h["index_id"] for h in hits} == {lighthouses}
    summary = client.chat.get_summary(chat.session_id)
    assert summary.index_ids is None
    assert summary.job_metadata.export_config_ids == [  # type: ignore[union-attr]
        client.indexes.get(lighthouses).export_config_id
    ]
    # No index at all: no tools, an honest answer, no error.
    bare = stream_turn(client, chat.session_id, index_ids=[], prompt="Hello?")
    assert [e["type"] for e in stored(bare)] == ["user_input", "text", "stop"]
    assert "no index" in stored(bare)[1]["content"]


def test_unqueryable_indexes_are_skipped_or_fail_the_turn(
    server: LiveServer, tenant: Tenant, notes: str
) -> None:
    client = tenant.client
    never_synced = add_index(server, tenant.scope, name="empty")
    foreign = add_index(server, make_tenant(server).scope, name="theirs")
    chat = client.chat.create()
    asked = [notes, never_synced, foreign, "idx-does-not-exist"]
    events = stream_turn(client, chat.session_id, index_ids=asked, prompt="Danube cities?")
    assert events[-1]["is_error"] is False
    assert events[-1]["skipped_index_ids"] == asked[1:]
    assert {
        h["index_id"] for h in next(e for e in events if e["type"] == "tool_result")["result"]
    } == {notes}
    failed = stream_turn(
        client, chat.session_id, index_ids=asked, prompt="Danube cities?", require_all_indexes=True
    )
    assert [e["type"] for e in failed] == ["user_input", "stop"]
    assert failed[-1]["is_error"] is True and never_synced in failed[-1]["error"]
    assert failed[-1]["skipped_index_ids"] == asked[1:]
    metadata = client.chat.get_summary(chat.session_id).job_metadata
    assert metadata is not None and metadata.is_error is True and metadata.turns == 0
    # The session is still usable.
    assert (
        stream_turn(client, chat.session_id, index_ids=[notes], prompt="Cats?")[-1]["is_error"]
        is False
    )


def test_bad_turn_requests_are_rejected_before_anything_runs(tenant: Tenant) -> None:
    client = tenant.client
    chat = client.chat.create()
    for body in (
        {"index_ids": [], "prompt": "x" * (MAX_PROMPT_CHARS + 1)},
        {"index_ids": [], "prompt": "   "},
        {"index_ids": [], "prompt": ""},
        {"prompt": "no index_ids"},
        {"index_ids": "idx-1", "prompt": "not a list"},
        {"index_ids": ["bad id with spaces"], "prompt": "x"},
    ):
        with pytest.raises(UnprocessableEntityError):
            client.post(
                f"/api/v1/chat/{chat.session_id}/messages/stream", cast_to=object, body=body
            )
    with pytest.raises(NotFoundError):
        client.chat.stream("ses-00000000-0000-0000-0000-000000000000", index_ids=[], prompt="x")
    summary = client.chat.get_summary(chat.session_id)
    assert history(client, chat.session_id) == [] and summary.generated_title is None
    assert summary.last_updated_at == chat.last_updated_at


def test_no_turn_reaches_another_projects_session_or_index(
    server: LiveServer, tenant: Tenant, notes: str
) -> None:
    intruder = make_tenant(server)
    chat = tenant.client.chat.create(index_ids=[notes])
    with pytest.raises(NotFoundError):
        intruder.client.chat.stream(chat.session_id, index_ids=[notes], prompt="Danube?")
    theirs = intruder.client.chat.create()
    events = stream_turn(intruder.client, theirs.session_id, index_ids=[notes], prompt="Danube?")
    assert events[-1]["skipped_index_ids"] == [notes]
    assert not any(e["type"] == "tool_result" for e in events)
    assert "Danube" not in json.dumps(events[1:])
    with pytest.raises(NotFoundError):
        intruder.client.get(f"/api/v1/chat/{chat.session_id}/export", cast_to=object)


def test_follow_export_and_cancel_extensions(tenant: Tenant, notes: str) -> None:
    client = tenant.client
    chat = client.chat.create(index_ids=[notes])
    first = stored(stream_turn(client, chat.session_id, index_ids=[notes], prompt="Danube?"))
    second = stored(stream_turn(client, chat.session_id, index_ids=[notes], prompt="Cats?"))
    # Resume from any point: the stored events after it, then the stream ends (no turn runs).
    for after in (0, 2, len(first)):
        response = client.get(
            f"/api/v1/chat/{chat.session_id}/messages/stream",
            cast_to=httpx.Response,
            options={"params": {"after": after}},
        )
        assert sse_events(response.text.splitlines()) == (first + second)[after:]
    markdown = client.get(f"/api/v1/chat/{chat.session_id}/export", cast_to=httpx.Response).text
    assert markdown.startswith("# Danube?\n") and "## You\n\nCats?" in markdown
    assert "Vienna, Bratislava and Budapest" in markdown and "`retrieve`" in markdown
    assert "*no model calls, " in markdown  # the extractive answerer runs no model
    exported = client.get(
        f"/api/v1/chat/{chat.session_id}/export",
        cast_to=object,
        options={"params": {"format": "json"}},
    )
    assert exported["events"] == first + second and exported["session_id"] == chat.session_id
    with pytest.raises(ConflictError) as caught:
        client.post(f"/api/v1/chat/{chat.session_id}/messages/cancel", cast_to=object)
    assert caught.value.response.headers["x-should-retry"] == "false"


def test_tool_result_carries_the_page_screenshot(tenant: Tenant, docs: Path) -> None:
    client = tenant.client
    index_id, _, _ = make_index(
        tenant,
        {"multilang.pdf": (docs / "multilang.pdf").read_bytes()},
        store_attachments=["screenshots"],
    )
    wait_for_sync(client, index_id)
    chat = client.chat.create(index_ids=[index_id])
    events = stream_turn(client, chat.session_id, index_ids=[index_id], prompt="English text")
    result = next(e for e in events if e["type"] == "tool_result")
    image = result["image_attachment"]
    top = result["result"][0]
    assert top["page_start"] >= 1
    assert image == {
        "attachment_name": f"screenshots/page_{top['page_start']}.png",
        "source_id": top["file_id"],
    }
    url = client.beta.attachments.get(image["attachment_name"], source_id=image["source_id"]).url
    png = httpx.get(url)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    answer = next(e for e in events if e["type"] == "text")["content"]
    assert f"[multilang.pdf, p. {top['page_start']}" in answer
    # History keeps the attachment.
    assert (
        next(e for e in history(client, chat.session_id) if e["type"] == "tool_result")[
            "image_attachment"
        ]
        == image
    )


# Questions whose six best passages of tracemonkey.pdf make a retrieve result longer than what
# the model may read: the answer must still quote them.
LONG_RESULT_QUESTIONS = [
    "What are trace trees?",
    "What speedups does TraceMonkey achieve on SunSpider?",
]


def test_extractive_answers_quote_a_long_pdf_when_the_result_is_trimmed(
    tenant: Tenant, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Six PDF passages come close to the default budget; a smaller one (the server runs in this
    # process) makes trimming certain whatever the chunker's exact passage lengths.
    monkeypatch.setattr(loop, "TOOL_RESULT_CHARS", 12_000)
    client = tenant.client
    index_id, _, _ = make_index(
        tenant, {"tracemonkey.pdf": (docs / "tracemonkey.pdf").read_bytes()}
    )
    wait_for_sync(client, index_id)
    chat = client.chat.create(index_ids=[index_id])
    for prompt in LONG_RESULT_QUESTIONS:
        events = stream_turn(client, chat.session_id, index_ids=[index_id], prompt=prompt)
        hits = next(e for e in events if e["type"] == "tool_result")["result"]
        assert len(hits) == 6
        assert len(json.dumps(hits, ensure_ascii=False)) > loop.TOOL_RESULT_CHARS  # trimmed for it
        answer = next(e for e in events if e["type"] == "text")["content"]
        assert answer.startswith(HEADER), answer[:200]
        quotes = [b[2:].removesuffix(" …") for b in answer.split("\n\n") if b.startswith("> ")]
        assert len(quotes) == 3
        passages = [" ".join(h["content"].split()) for h in hits]
        for quote, passage in zip(quotes, passages, strict=False):
            assert passage.startswith(quote), (quote[:80], passage[:80])
        cited = re.findall(r"^\[tracemonkey\.pdf, pp?\. (\d+)", answer, re.M)
        assert cited == [str(h["page_start"]) for h in hits[:3]]
        assert events[-1]["is_error"] is False


def test_keepalives_between_events_do_not_break_the_sdk_decoder() -> None:
    from llama_cloud._streaming import SSEDecoder

    from indexchat.api import sse
    from indexchat.events import Text, UserInput

    events = [{"type": "user_input", "content": "hi"}, {"type": "text", "content": "a\nb"}]
    wire = sse.frame(UserInput("hi")) + sse.KEEPALIVE + sse.KEEPALIVE + sse.frame(Text("a\nb"))
    decoded = list(SSEDecoder().iter_bytes(iter([wire])))  # no empty events in between
    assert [json.loads(e.data) for e in decoded] == events
    assert [e.event for e in decoded] == ["user_input", "text"]
    assert b"id:" not in wire and b"retry:" not in wire


def test_bad_requests_to_the_turn_extensions(tenant: Tenant) -> None:
    client = tenant.client
    chat = client.chat.create()
    with pytest.raises(UnprocessableEntityError):
        client.get(
            f"/api/v1/chat/{chat.session_id}/messages/stream",
            cast_to=httpx.Response,
            options={"params": {"after": -1}},
        )
    with pytest.raises(UnprocessableEntityError):
        client.get(
            f"/api/v1/chat/{chat.session_id}/export",
            cast_to=httpx.Response,
            options={"params": {"format": "pdf"}},
        )
    unknown = "ses-00000000-0000-0000-0000-000000000000"
    for method, path in (
        ("post", f"/api/v1/chat/{unknown}/messages/cancel"),
        ("get", f"/api/v1/chat/{unknown}/messages/stream"),
        ("get", f"/api/v1/chat/{unknown}/export"),
    ):
        with pytest.raises(NotFoundError):
            getattr(client, method)(path, cast_to=httpx.Response)
    summary = client.chat.get_summary(chat.session_id)
    assert (
        history(client, chat.session_id) == [] and summary.last_updated_at == chat.last_updated_at
    )
