"""The offline default: no language model. It retrieves with the user's question as a real
tool call, then answers with the best passages quoted verbatim and cited (file, page), and says
plainly that the answer is extractive. No model runs, so it counts no model calls or tokens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from indexchat.agent.model import Message, ModelError, ModelOutput, TextDelta, ToolRequest
from indexchat.agent.tools import RETRIEVE

PASSAGES = 3
PASSAGE_CHARS = 700
HEADER = (
    "Extractive answer (no language model is configured): the passages that best match your "
    "question, quoted verbatim from your documents."
)
NOTHING_FOUND = "Extractive answer: no passage in the connected documents matches the question."
NO_INDEX = (
    "Extractive answer: this turn has no index to search, so there is nothing to quote. "
    "Connect an index to the session to ask about your documents."
)


class ExtractiveModel:
    name = "extractive"
    is_language_model = False

    async def stream(
        self, messages: list[Message], tools: list[dict[str, Any]]
    ) -> AsyncIterator[ModelOutput]:
        prompt_at = max(i for i, m in enumerate(messages) if m["role"] == "user")
        prompt = str(messages[prompt_at]["content"])
        results = [m for m in messages[prompt_at + 1 :] if m["role"] == "tool"]
        offered = {spec["function"]["name"] for spec in tools}
        if not results and RETRIEVE in offered:
            request = json.dumps({"query": prompt, "top_k": PASSAGES * 2})
            yield ToolRequest(f"call_{len(messages)}", RETRIEVE, request)
            return
        answer = _answer(results[-1]["content"]) if results else NO_INDEX
        parts = answer.split("\n\n")
        for number, part in enumerate(parts, 1):
            yield TextDelta(part if number == len(parts) else f"{part}\n\n")


def _answer(tool_content: str) -> str:
    """Quote the best passages of a ``retrieve`` result. A result that cannot be read is an
    error to report, never a sign that nothing matched."""
    try:
        hits = json.loads(tool_content)
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"the extractive answerer could not read the retrieve result: {exc}"
        ) from exc
    if not isinstance(hits, list):
        raise ModelError("the extractive answerer expected a list of passages from retrieve")
    passages = [h for h in hits if isinstance(h, dict) and h.get("content")][:PASSAGES]
    if not passages:
        return NOTHING_FOUND
    blocks = [HEADER]
    for hit in passages:
        quote = " ".join(str(hit["content"]).split())
        if len(quote) > PASSAGE_CHARS:
            quote = quote[:PASSAGE_CHARS].rsplit(" ", 1)[0] + " …"
        blocks.append(f"> {quote}\n\n[{_citation(hit)}]")
    return "\n\n".join(blocks)


def _citation(hit: dict[str, Any]) -> str:
    name = hit.get("file_name") or hit.get("file_id") or "unknown file"
    start, end = hit.get("page_start"), hit.get("page_end")
    if not start:
        return str(name)
    pages = f"p. {start}" if not end or end == start else f"pp. {start}-{end}"
    return f"{name}, {pages}"
