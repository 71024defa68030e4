"""Any OpenAI-compatible Chat Completions server (OpenAI, vLLM, Ollama, llama.cpp server, LM
Studio…) through the official ``openai`` SDK, streaming, with tool calls.

Reasoning text, where a server sends it (``reasoning_content`` from vLLM and DeepSeek,
``reasoning`` from Ollama and OpenRouter), becomes thinking. ``base_url`` and ``api_key`` left
unset fall back to the SDK's own ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, cast

import httpx2
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

# Connection pools the model's requests are spread over; together they keep the SDK's own limits.
POOLS = 8
LIMITS = openai.DEFAULT_CONNECTION_LIMITS
DRAIN_SECONDS = 0.1  # how long the end of a body may take to arrive after its last event


class SpreadPools(httpx2.AsyncBaseTransport):
    """Requests handed to several connection pools in turn.

    A pool looks at every connection it holds each time one of its requests starts or ends, and
    probes the socket of every idle one; with hundreds of turns streaming at once that scan cost
    more than reading the replies. Smaller pools make each scan short.
    """

    def __init__(self, pools: int = POOLS, limits: httpx2.Limits = LIMITS) -> None:
        each = httpx2.Limits(
            max_connections=_share(limits.max_connections, pools),
            max_keepalive_connections=_share(limits.max_keepalive_connections, pools),
            keepalive_expiry=limits.keepalive_expiry,
        )
        tls = httpx2.create_ssl_context()  # loading the CA bundle once is enough
        self._pools = [httpx2.AsyncHTTPTransport(verify=tls, limits=each) for _ in range(pools)]
        self._next = itertools.cycle(self._pools)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


def _share(limit: int | None, pools: int) -> int | None:
    """One pool's part of a limit (None: no limit), rounded up."""
    return None if limit is None else -(-limit // pools)


class OpenAIChatModel:
    is_language_model = True

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float = 60.0,
        pools: int = POOLS,
    ) -> None:
        self.model = model
        self.timeout_seconds = timeout_seconds
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            # Local servers (Ollama, vLLM…) need no key, but the SDK insists on one.
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "unused",
            timeout=timeout_seconds,
            max_retries=0,  # a retry would re-run the whole reply; the user sees the error
            http_client=openai.DefaultAsyncHttpxClient(transport=SpreadPools(pools)),
        )

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    async def aclose(self) -> None:
        """Close the pooled connections, on the event loop that opened them."""
        await self._client.close()

    async def stream(
        self, messages: list[Message], tools: list[dict[str, Any]]
    ) -> AsyncIterator[ModelOutput]:
        calls: dict[int, dict[str, str]] = {}
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = tools
        try:
            # The SDK's own request path (auth, headers, status errors), but the streamed body
            # is read here: its event decoder and a pydantic object per chunk were the largest
            # CPU cost of a streamed turn.
            response = await self._client.post(
                "/chat/completions", body=body, cast_to=httpx2.Response, stream=True
            )
            try:
                async with aclosing(_event_data(response.aiter_bytes())) as events:
                    async for data in events:
                        if data.startswith(b"[DONE]"):
                            await _drain(response)
                            break
                        for out in _outputs(json.loads(data), calls):
                            yield out
            finally:
                await response.aclose()
        except (openai.APITimeoutError, httpx2.TimeoutException) as exc:
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
        except httpx2.HTTPError as exc:  # the connection broke mid-reply
            raise ModelError(f"the language model's reply was cut off: {exc!r}") from exc
        for index in sorted(calls):
            call = calls[index]
            if not call["name"]:
                raise ModelError("malformed reply from the language model: tool call without name")
            yield ToolRequest(call["id"] or f"call_{index}", call["name"], call["args"])


async def _drain(response: httpx2.Response) -> None:
    """Read the rest of a body after its last event (the end of its chunked encoding, as a
    rule), so that its connection serves the next request; a server holding it open is not
    waited for."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in cast(AsyncIterator[bytes], response.stream):
                pass
    except (TimeoutError, httpx2.HTTPError):
        pass  # the reply is complete: the connection is simply not kept


async def _event_data(chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """The data of each server-sent event in a body (its ``data:`` lines joined); the other
    fields and comments say nothing a chat completion needs."""
    pieces: list[bytes] = []  # the line being received, while no line end arrives
    data: list[bytes] = []
    ended = False
    while not ended:
        chunk = await anext(chunks, None)
        if chunk is None:
            ended, lines = True, _lines(pieces, final=True) + [b""]
        else:
            pieces.append(chunk)
            if b"\n" not in chunk and b"\r" not in chunk:
                continue
            lines = _lines(pieces, final=False)
        for line in lines:
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b"data: ") else line[5:])


def _lines(pieces: list[bytes], *, final: bool) -> list[bytes]:
    """The whole lines in ``pieces`` (CRLF, LF or CR ends one); what follows the last line end
    is left in ``pieces``, unless ``final``."""
    text = b"".join(pieces)
    if b"\r" in text:
        # A CR at the very end may be the first half of a CRLF: it waits for the rest.
        held = b"\r" if text.endswith(b"\r") and not final else b""
        text = text[: len(text) - len(held)].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        text += held
    *lines, rest = text.split(b"\n")
    pieces[:] = [rest]
    if final and rest:
        lines.append(rest)
    return lines


def _outputs(chunk: object, calls: dict[int, dict[str, str]]) -> list[ModelOutput]:
    """What one streamed chunk says; tool call pieces are gathered into ``calls``."""
    if not isinstance(chunk, dict):
        raise ValueError(f"a streamed chunk is not a JSON object: {str(chunk)[:80]!r}")
    error = chunk.get("error")
    if error:  # a provider's error sent as an event once the stream has begun
        message = error.get("message") if isinstance(error, dict) else None
        raise ValueError(message if isinstance(message, str) and message else str(error)[:200])
    outputs: list[ModelOutput] = []
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        outputs.append(Usage(_count(usage, "prompt_tokens"), _count(usage, "completion_tokens")))
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        reasoning = _reasoning(delta)
        if reasoning:
            outputs.append(ReasoningDelta(reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            outputs.append(TextDelta(content))
        for piece in delta.get("tool_calls") or []:
            _gather_tool_call(piece, calls)
    return outputs


def _gather_tool_call(piece: object, calls: dict[int, dict[str, str]]) -> None:
    if not isinstance(piece, dict) or not isinstance(piece.get("index", 0), int):
        raise ValueError(f"a tool call piece is malformed: {str(piece)[:80]!r}")
    call = calls.setdefault(piece.get("index", 0), {"id": "", "name": "", "args": ""})
    call["id"] = piece.get("id") or call["id"]
    function = piece.get("function")
    if isinstance(function, dict):
        call["name"] += function.get("name") or ""
        call["args"] += function.get("arguments") or ""


def _count(usage: dict[str, Any], field: str) -> int | None:
    value = usage.get(field)
    return value if isinstance(value, int) else None


def _reasoning(delta: dict[str, Any]) -> str | None:
    for field in _REASONING_FIELDS:
        value = delta.get(field)
        if isinstance(value, str) and value:
            return value
    return None
