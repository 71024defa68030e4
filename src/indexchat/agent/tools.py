"""The tools the agent may call over a turn's indexes, as the model sees them, and what a
tool box implementing them must provide."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

RETRIEVE = "retrieve"
FIND_FILES = "find_files"
GREP_FILE = "grep_file"
READ_FILE = "read_file"


def _function(name: str, description: str, properties: dict[str, Any], required: list[str]):
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


_FILE_ID = {"type": "string", "description": "A file_id from an earlier tool result."}

TOOL_SPECS: list[dict[str, Any]] = [
    _function(
        RETRIEVE,
        "Hybrid search (meaning and keywords) over the documents. Returns the best passages "
        "with file_id, file_name and pages. Start here.",
        {
            "query": {"type": "string", "description": "What to look for, in plain words."},
            "top_k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 8},
            "file_id": {**_FILE_ID, "description": "Only search this file (optional)."},
        },
        ["query"],
    ),
    _function(
        FIND_FILES,
        "Find files by name (case-insensitive substring, or exact).",
        {
            "name": {"type": "string"},
            "exact": {"type": "boolean", "default": False},
        },
        ["name"],
    ),
    _function(
        GREP_FILE,
        "Regular-expression search inside one file; returns each match with context.",
        {
            "file_id": _FILE_ID,
            "pattern": {"type": "string", "description": "A regular expression."},
            "context_chars": {"type": "integer", "minimum": 0, "maximum": 2000, "default": 200},
        },
        ["file_id", "pattern"],
    ),
    _function(
        READ_FILE,
        "Read a file's parsed text, from a character offset.",
        {
            "file_id": _FILE_ID,
            "offset": {"type": "integer", "minimum": 0, "default": 0},
            "max_length": {"type": "integer", "minimum": 1, "maximum": 20000, "default": 6000},
        },
        ["file_id"],
    ),
]


@dataclass(frozen=True)
class ToolOutcome:
    result: Any  # JSON value: shown in the tool_result event and given to the model
    image_attachment: dict[str, str] | None = None  # {attachment_name, source_id}


class ToolError(Exception):
    """A tool call that cannot run (bad arguments, unknown file) or that failed. The message
    is safe to show to the user."""


class ToolBox(Protocol):
    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutcome: ...
