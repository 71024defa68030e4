"""The MCP tools: their arguments, how a tool call becomes an API request, and how the API's
answer becomes the tool's result.

A ``Backend`` answers in the API's own JSON (the bodies ``/api/v1/...`` returns), whether it
calls the services in-process or goes over HTTP through the SDK, so both MCP servers give the
same results and the same errors.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

SEARCH_PREFIX = "search_"
FIND_FILES = "find_files"
GREP_FILE = "grep_file"
READ_FILE = "read_file"
ASK = "ask"
# MCP tool names: letters, digits, '_', '-' and '.', at most 128 characters (SEP-986).
_NAME_CHARS = re.compile(r"[^a-z0-9_-]+")
_NAME_MAX = 64

Json = dict[str, Any]


class Backend(Protocol):
    """The API, as the tools reach it. Failures raise ``IndexchatError`` with the server's
    ``detail`` as the message."""

    async def list_indexes(self) -> list[Json]:
        """Every index of the project (``Index`` objects)."""
        ...

    async def retrieve(self, body: Json) -> Json: ...

    async def find(self, body: Json) -> Json: ...

    async def grep(self, body: Json) -> Json: ...

    async def read(self, body: Json) -> Json: ...

    async def ask(self, prompt: str, index_ids: list[str], session_id: str | None) -> Answer:
        """Run one turn and wait for its end: in a new session bound to ``index_ids``, or in
        the session named (``index_ids`` empty: the session's own). Every index must be
        searchable, or the turn fails."""
        ...


@dataclass(frozen=True)
class Answer:
    session_id: str
    events: list[Json]  # the turn's events, deltas left out, ending with stop


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


_INDEX_ID = Field(description="An index id (idx-…), as the search_… tools name them.")
_FILE_ID = Field(description="A file id (dfl-…) from search results or find_files.")


class SearchArguments(_Arguments):
    query: str = Field(min_length=1, max_length=10_000, description="What to look for.")
    top_k: int = Field(default=8, ge=1, le=50, description="How many passages to return.")


class FindArguments(_Arguments):
    index_id: str = _INDEX_ID
    name: str | None = Field(
        default=None,
        max_length=255,
        description="Part of the file name, in any case. Leave out to list every file.",
    )
    page_size: int = Field(default=50, ge=1, le=1000)


class _FileArguments(_Arguments):
    index_id: str = _INDEX_ID
    file_id: str = _FILE_ID


class GrepArguments(_FileArguments):
    pattern: str = Field(min_length=1, max_length=1000, description="A regular expression.")
    context_chars: int = Field(default=100, ge=0, le=10_000)
    page_size: int = Field(default=50, ge=1, le=1000)


class ReadArguments(_FileArguments):
    offset: int = Field(default=0, ge=0, description="First character to read.")
    max_length: int = Field(default=20_000, ge=1, le=1_000_000)


class AskArguments(_Arguments):
    prompt: str = Field(min_length=1, max_length=32_000, description="The question.")
    index_ids: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="Indexes to answer from. Leave out to use every index of the project.",
    )
    session_id: str | None = Field(
        default=None, description="Continue this chat session (ses-…) instead of a new one."
    )


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[_Arguments]

    @property
    def input_schema(self) -> Json:
        return self.arguments.model_json_schema()


STATIC_TOOLS = (
    Tool(
        FIND_FILES,
        "Find files of an index by name (case-insensitive substring); lists every file when no "
        "name is given. Returns file ids for grep_file and read_file.",
        FindArguments,
    ),
    Tool(
        GREP_FILE,
        "Regular-expression search inside one file of an index; each match with context and "
        "its character offsets.",
        GrepArguments,
    ),
    Tool(
        READ_FILE,
        "Read a file's parsed text from a character offset.",
        ReadArguments,
    ),
    Tool(
        ASK,
        "Ask a question and get a written answer from the documents, with the files and pages "
        "it cites. Runs a chat turn: slower than searching, and kept in the chat history.",
        AskArguments,
    ),
)


def search_tools(indexes: Sequence[Json]) -> dict[str, tuple[Tool, Json]]:
    """One search tool per index, by tool name. Names come from index names; two names that
    read alike get the index id appended, so each tool always names the same index."""
    slugs = [_slug(str(index.get("name") or index["id"])) for index in indexes]
    tools = {}
    for index, slug in zip(indexes, slugs, strict=True):
        if slugs.count(slug) > 1:
            slug = f"{slug}_{_slug(index['id'])}"
        name = f"{SEARCH_PREFIX}{slug}"[:128]
        description = (
            f"Search the documents of the index {index.get('name')!r} ({index['id']}): hybrid "
            "full-text and meaning search, best passages first, each with its file id and pages."
        )
        tools[name] = (Tool(name, description, SearchArguments), index)
    return tools


def _slug(text: str) -> str:
    """Letters without their accents, digits, '_' and '-' (non-Latin names fall back to
    "index", and so to the id suffix when there are several)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NAME_CHARS.sub("_", ascii_text.lower()).strip("_")[:_NAME_MAX] or "index"


def search_result(index: Json, answer: Json) -> Json:
    """A retrieve answer, flattened for a reader: text, scores, file, pages."""
    results = []
    for item in answer["results"]:
        fields = item.get("static_fields") or {}
        results.append(
            {
                "content": item["content"],
                "score": item.get("score"),
                "rerank_score": item.get("rerank_score"),
                "file_id": fields.get("parsed_directory_file_id"),
                "page_start": fields.get("page_range_start"),
                "page_end": fields.get("page_range_end"),
                "chunk_index": fields.get("chunk_index"),
                "metadata": item.get("metadata") or {},
            }
        )
    return {"index_id": index["id"], "index_name": index.get("name"), "results": results}


def page_result(key: str, page: Json) -> Json:
    return {key: page["items"], "more": bool(page.get("next_page_token"))}


def read_result(args: ReadArguments, answer: Json) -> Json:
    return {
        "file_id": args.file_id,
        "offset": args.offset,
        "length": len(answer["content"]),
        "content": answer["content"],
    }


def answer_result(answer: Answer) -> tuple[Json, str | None]:
    """The turn's answer and citations, and its error message if it failed."""
    stop = next((e for e in reversed(answer.events) if e.get("type") == "stop"), None)
    text = "\n\n".join(e["content"] for e in answer.events if e.get("type") == "text")
    if stop is None:
        return {}, "the turn ended without a stop event"
    if stop.get("is_error"):
        return {}, str(stop.get("error") or "the turn failed")
    result = {
        "session_id": answer.session_id,
        "answer": text,
        "citations": citations(answer.events, text),
        "skipped_index_ids": stop.get("skipped_index_ids") or [],
    }
    return result, None


def citations(events: Sequence[Json], answer: str) -> list[Json]:
    """The files the turn retrieved from, with their pages, best first; only those the answer
    names when it names any."""
    found: dict[str, Json] = {}
    for event in events:
        if event.get("type") != "tool_result" or not isinstance(event.get("result"), list):
            continue
        for hit in event["result"]:
            if not isinstance(hit, dict) or "file_id" not in hit:
                continue
            cited = found.setdefault(
                hit["file_id"],
                {
                    "file_id": hit["file_id"],
                    "file_name": hit.get("file_name"),
                    "index_id": hit.get("index_id"),
                    "pages": set(),
                },
            )
            start, end = hit.get("page_start"), hit.get("page_end")
            if isinstance(start, int):
                cited["pages"].update(range(start, (end if isinstance(end, int) else start) + 1))
    named = [c for c in found.values() if c["file_name"] and c["file_name"] in answer]
    return [{**c, "pages": sorted(c["pages"])} for c in named or found.values()]
