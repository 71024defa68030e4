"""Any OpenAI-compatible Chat Completions server (OpenAI, vLLM, Ollama, llama.cpp server, LM
Studio…) through the official ``openai`` SDK, streaming, with tool calls.

Reasoning text, where a server sends it (``reasoning_content`` from vLLM and DeepSeek,
``reasoning`` from Ollama and OpenRouter), becomes thinking. ``base_url`` and ``api_key`` left
unset fall back to the SDK's own ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai

from indexchat.agent.model import (
    Message,
    ModelError,
    ModelOutput,
    ReasoningDelta,
    TextDelta,
    ToolRequest,
    Usage,
)

_REASONING_FIELDS = ("reasoning_content", "reasoning")


class OpenAIChatModel:
    is_language_model = True

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float = 60.0,
    ) -> None:
        self.model = model
        self.timeout_seconds = timeout_seconds
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            # Local servers (Ollama, vLLM…) need no key, but the SDK insists on one.
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "unused",
            timeout=timeout_seconds,
            max_retries=0,  # a retry would re-run the whole reply; the user sees the error
        )

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    async def stream(
        self, messages: list[Message], tools: list[dict[str, Any]]
    ) -> AsyncIterator[ModelOutput]:
        calls: dict[int, dict[str, str]] = {}
        try:
            extra: dict[str, Any] = {"tools": tools} if tools else {}
            stream = await self._client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                **extra,
            )
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        yield Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    for choice in chunk.choices:
                        delta = choice.delta
                        reasoning = _reasoning(delta)
                        if reasoning:
                            yield ReasoningDelta(reasoning)
                        if delta.content:
                            yield TextDelta(delta.content)
                        for piece in delta.tool_calls or []:
                            call = calls.setdefault(piece.index, {"id": "", "name": "", "args": ""})
                            call["id"] = piece.id or call["id"]
                            if piece.function is not None:
                                call["name"] += piece.function.name or ""
                                call["args"] += piece.function.arguments or ""
        except openai.APITimeoutError as exc:
            raise ModelError(
                f"the language model did not answer within {self.timeout_seconds:g} s"
            ) from exc
        except openai.APIConnectionError as exc:
            raise ModelError(
                f"cannot reach the language model at {self._client.base_url}: {exc}"
            ) from exc
        except openai.APIStatusError as exc:
            raise ModelError(
                f"the language model answered HTTP {exc.status_code}: {exc.message}"
            ) from exc
        except (openai.APIError, ValueError) as exc:  # e.g. a chunk that is not JSON
            raise ModelError(f"malformed reply from the language model: {exc}") from exc
        except httpx.HTTPError as exc:  # the connection broke mid-reply
            raise ModelError(f"the language model's reply was cut off: {exc!r}") from exc
        for index in sorted(calls):
            call = calls[index]
            if not call["name"]:
                raise ModelError("malformed reply from the language model: tool call without name")
            yield ToolRequest(call["id"] or f"call_{index}", call["name"], call["args"])


def _reasoning(delta: Any) -> str | None:
    extra = delta.model_extra or {}
    for field in _REASONING_FIELDS:
        value = extra.get(field)
        if isinstance(value, str) and value:
            return value
    return None
