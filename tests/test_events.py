"""The event vocabulary against the wire: schemas, stored rows and SSE frames agree."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from indexchat import events
from indexchat.api import sse
from indexchat.api.schemas import events as schemas

SAMPLES: list[events.Event] = [
    events.UserInput("What does the contract say?"),
    events.ThinkingDelta("Let me "),
    events.Thinking("Let me look.\nSecond line."),
    events.ToolCall("call-1", "retrieve", {"query": "contract", "top_k": 3}),
    events.ToolResult("call-1", "retrieve", [{"text": "é ✓", "score": 0.5}]),
    events.ToolResult(
        "call-2", "read", {"pages": 1}, events.ImageAttachment("page-1.png", "dfl-1")
    ),
    events.TextDelta("It says\n\nno."),
    events.Text("It says no."),
    events.Stop(),
    events.Stop(
        "the model failed",
        events.Usage(12.5, 100, 20, 2),
        ["idx-unknown"],
    ),
]


def _schema_classes() -> list[type[BaseModel]]:
    union = typing.get_args(schemas.Event)[0]
    return list(typing.get_args(union))


def test_every_event_class_has_a_schema_with_its_fields_and_back() -> None:
    by_type = {cls.model_fields["type"].default: cls for cls in _schema_classes()}
    assert set(by_type) == {cls.type for cls in events.EVENT_CLASSES}
    assert set(typing.get_args(events.EventType)) == set(by_type)
    for sample in SAMPLES:
        schema = by_type[sample.type]
        wire = sample.to_wire()
        assert set(wire) == set(schema.model_fields), sample.type
        fields = {f.name for f in dataclasses.fields(sample)} | {"type"}
        assert fields <= set(schema.model_fields), sample.type
    assert {s.type for s in SAMPLES} == set(by_type), "a sample of every event type"


def test_usage_and_image_attachment_match_their_schemas() -> None:
    for value, schema in (
        (events.Usage(), schemas.StopUsage),
        (events.ImageAttachment("a.png", "dfl-1"), schemas.ImageAttachment),
    ):
        names = [f.name for f in dataclasses.fields(value)]
        assert names == list(schema.model_fields) == list(value.to_wire())
    assert events.Usage().to_wire() == schemas.StopUsage().model_dump()


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_wire_form_validates_and_reads_back_unchanged(event: events.Event) -> None:
    wire = event.to_wire()
    parsed = TypeAdapter(schemas.Event).validate_python(wire)
    assert parsed.model_dump(mode="json") == wire
    assert events.from_wire(wire) == event
    assert events.from_wire(wire).to_wire() == wire


def test_stop_is_an_error_exactly_when_it_has_one() -> None:
    assert events.Stop().to_wire()["is_error"] is False
    assert events.Stop("boom").to_wire()["is_error"] is True


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown chat event type 'tool_progress'"):
        events.from_wire({"type": "tool_progress"})


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            events.Stop(),
            b'event: stop\ndata: {"type":"stop","is_error":false,"error":null,"usage":'
            b'{"duration_ms":0.0,"total_input_tokens":null,"total_output_tokens":null,'
            b'"turns":0},"skipped_index_ids":[]}\n\n',
        ),
        (
            events.ToolResult("c1", "read", [], events.ImageAttachment("p.png", "dfl-1")),
            b'event: tool_result\ndata: {"type":"tool_result","call_id":"c1","name":"read",'
            b'"result":[],"image_attachment":{"attachment_name":"p.png","source_id":"dfl-1"}}\n\n',
        ),
        (
            events.TextDelta("a\nb é"),
            'event: text_delta\ndata: {"type":"text_delta","content":"a\\nb é"}\n\n'.encode(),
        ),
    ],
    ids=["stop", "tool_result", "text_delta"],
)
def test_sse_frames_keep_their_bytes(event: events.Event, expected: bytes) -> None:
    assert sse.frame(event) == expected


def test_events_are_frozen() -> None:
    event: Any = events.Text("x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.content = "y"


def test_a_sessions_job_metadata_matches_its_schema_and_the_stop() -> None:
    from indexchat.api.schemas.sessions import JobMetadata
    from indexchat.services.turns import job_metadata

    stop = events.Stop("the model failed", events.Usage(12.5, 100, 20, 2), ["idx-unknown"])
    metadata = job_metadata(stop, ["cfg-1"])
    assert set(metadata) == set(JobMetadata.model_fields)
    assert JobMetadata.model_validate(metadata).model_dump() == metadata
    assert {k: metadata[k] for k in stop.usage.to_wire()} == stop.usage.to_wire()
    assert (metadata["is_error"], metadata["error"]) == (True, "the model failed")
