"""A chat session's history as a Markdown transcript."""

from __future__ import annotations

import json
from collections.abc import Sequence

from indexchat.domain import wire_timestamp
from indexchat.events import Event, Stop, Text, Thinking, ToolCall, ToolResult, UserInput
from indexchat.storage.tables import ChatSession

ARGUMENTS_CHARS = 200


def markdown(chat: ChatSession, events: Sequence[Event]) -> str:
    lines = [f"# {chat.generated_title or 'Chat session'}", ""]
    facts = [f"Session `{chat.id}`", f"last updated {wire_timestamp(chat.last_updated_at)} UTC"]
    if chat.index_ids:
        facts.append("indexes: " + ", ".join(f"`{i}`" for i in chat.index_ids))
    lines += [" · ".join(facts), ""]
    for event in events:
        if isinstance(event, UserInput):
            lines += ["## You", "", event.content, "", "## Assistant", ""]
        elif isinstance(event, Thinking):
            quoted = "\n".join(f"> {line}" for line in event.content.splitlines())
            lines += ["<details><summary>Thinking</summary>", "", quoted, "", "</details>", ""]
        elif isinstance(event, ToolCall):
            arguments = json.dumps(event.arguments, ensure_ascii=False)
            if len(arguments) > ARGUMENTS_CHARS:
                arguments = arguments[:ARGUMENTS_CHARS] + "…"
            lines += [f"*Tool call:* `{event.name}` {arguments}", ""]
        elif isinstance(event, ToolResult):
            result = event.result
            count = f"{len(result)} results" if isinstance(result, list) else "done"
            lines += [f"*Tool result:* `{event.name}`: {count}", ""]
        elif isinstance(event, Text):
            lines += [event.content, ""]
        elif isinstance(event, Stop):
            lines += [_stop_line(event), ""]
    return "\n".join(lines).rstrip() + "\n"


def _stop_line(stop: Stop) -> str:
    usage = stop.usage
    calls = usage.turns
    parts = [f"{calls} model call{'' if calls == 1 else 's'}" if calls else "no model calls"]
    if usage.total_input_tokens is not None:
        tokens_in, tokens_out = usage.total_input_tokens, usage.total_output_tokens
        parts.append(f"{tokens_in} input / {tokens_out} output tokens")
    parts.append(f"{usage.duration_ms:.0f} ms")
    line = "*" + ", ".join(parts) + "*"
    if stop.is_error:
        line = f"**Stopped with an error:** {stop.error}  \n{line}"
    if stop.skipped_index_ids:
        line += "  \n*Skipped indexes:* " + ", ".join(stop.skipped_index_ids)
    return line
