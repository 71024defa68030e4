"""A scripted OpenAI-compatible chat model: a real HTTP server on a loopback port.

Tests queue replies with ``script(...)``, point a client at ``base_url`` and read back what
the client sent in ``requests``. Replies stream the way OpenAI's Chat Completions API does
(``data: {chunk}`` frames ending with ``data: [DONE]``); faults reproduce what real providers
do wrong: error statuses, a server that never answers, a stream that stalls, breaks or lies.

What the official ``openai`` SDK (3.x) raises for each fault, pinned by ``test_fake_llm.py``:

    http_500      openai.InternalServerError
    http_429      openai.RateLimitError
    hang          openai.APITimeoutError (once the client's timeout passes)
    stall         openai.APITimeoutError while iterating, after the first deltas
    malformed     json.JSONDecodeError while iterating (the SDK does not wrap it)
    cut           openai.APIConnectionError while iterating (the chunked body ends early)
    stream_error  openai.APIError while iterating (an ``{"error": ...}`` frame mid-stream)
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from loopback import LoopbackServer, ProviderHandler, ScriptedServer

Fault = Literal["http_500", "http_429", "hang", "stall", "malformed", "cut", "stream_error"]

_ARGUMENT_PIECE = 12  # characters per streamed tool-call argument fragment
_ERROR_STATUS = {
    "http_500": (500, "server_error", "The server had an error while processing your request."),
    "http_429": (429, "rate_limit_exceeded", "Rate limit reached. Please try again later."),
}


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] | str  # a str is sent verbatim, so tests can send invalid JSON
    id: str | None = None  # None: the server makes one up ("call_<n>")


@dataclass
class Reply:
    """What the server answers to one ``/v1/chat/completions`` call."""

    text: str | list[str] = ""  # a str is split into word-sized deltas; a list is sent as is
    reasoning: str | list[str] = ""
    # vLLM and DeepSeek stream reasoning as ``reasoning_content``; Ollama and OpenRouter as
    # ``reasoning``.
    reasoning_field: Literal["reasoning_content", "reasoning"] = "reasoning_content"
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: tuple[int, int] | None = (11, 7)  # (prompt_tokens, completion_tokens)
    chunk_delay: float = 0.0  # seconds before each chunk
    fault: Fault | None = None  # stall, malformed, cut and stream_error apply to streams only

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


Script = Reply | Callable[[dict[str, Any]], Reply]  # a callable answers from the request body


def slow_reply(words: int = 100, seconds_per_word: float = 0.1) -> Reply:
    """A long answer streamed one word at a time: a turn that is still running when a test
    cancels it, leaves it, or kills the server running it."""
    return Reply(text=[f"word{i} " for i in range(words)], chunk_delay=seconds_per_word)


class FakeLLM(ScriptedServer[Script]):
    """The server. It starts on construction; ``close()`` (or leaving ``with``) stops it."""

    def __init__(
        self,
        model: str = "fake-model",
        default: Script | None = None,
        on_served: Callable[[dict[str, Any], float], None] | None = None,
    ) -> None:
        """``on_served(body, seconds)`` is called on the handler's thread after each chat
        completion call whose body parsed, with the seconds spent serving it (body read, reply,
        every frame written): a benchmark subtracts the model's own time from what it measured."""
        self.model = model
        self.default: Script = default if default is not None else Reply(text="ok")
        self.on_served = on_served
        self.disconnected = threading.Event()  # set when a client leaves a stream early
        self.disconnects = 0
        self.completed = 0  # responses sent in full
        self.peak_streams = 0  # most streams open at the same time
        self._open_streams = 0
        self._ids = itertools.count(1)
        super().__init__(_Handler)
        self.base_url = f"http://{self.host}:{self.port}/v1"

    def reset(self, default: Script | None = None) -> None:
        """Drop queued replies and set the default (``Reply(text="ok")`` unless given)."""
        self._forget(requests=False)
        self.default = default if default is not None else Reply(text="ok")

    def _take(self, body: dict[str, Any]) -> Reply:
        script = self._record(body)
        if script is None:
            script = self.default
        return script(body) if callable(script) else script

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_{next(self._ids)}"

    def _track_stream(self, change: int) -> None:
        with self._lock:
            self._open_streams += change
            self.peak_streams = max(self.peak_streams, self._open_streams)

    def _count(self, outcome: Literal["completed", "disconnect"]) -> None:
        with self._lock:
            if outcome == "completed":
                self.completed += 1
            else:
                self.disconnects += 1
                self.disconnected.set()


class _Handler(ProviderHandler):
    server: LoopbackServer

    def do_GET(self) -> None:
        fake = self.server.fake
        if self.path.rstrip("/") != "/v1/models":
            self._send_error(404, "not_found", f"no route {self.path}")
            return
        model = {"id": fake.model, "object": "model", "created": 0, "owned_by": "fake"}
        self._send_json(200, {"object": "list", "data": [model]})

    def do_POST(self) -> None:
        fake = self.server.fake
        if self.path != "/v1/chat/completions":
            self._send_error(404, "not_found", f"no route {self.path}")
            return
        started = time.perf_counter()
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        except ValueError:
            self._send_error(400, "invalid_request_error", "body is not JSON")
            return
        try:
            self._answer(fake, body)
        finally:
            if fake.on_served is not None:
                fake.on_served(body, time.perf_counter() - started)

    def _answer(self, fake: FakeLLM, body: dict[str, Any]) -> None:
        reply = fake._take(body)
        if reply.fault in _ERROR_STATUS:
            self._send_error(*_ERROR_STATUS[reply.fault])
            return
        if reply.fault == "hang":
            fake._closing.wait()
            self.close_connection = True
            return
        try:
            if body.get("stream"):
                self._stream(body, reply)
            else:
                self._send_json(200, _completion(fake, body, reply))
        except ConnectionError:  # BrokenPipe or ConnectionReset: the client went away
            self.close_connection = True
            fake._count("disconnect")
            return
        if reply.fault is None:
            fake._count("completed")

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        fake = self.server.fake
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        fake._track_stream(+1)
        try:
            self._write_frames(_frames(fake, body, reply, include_usage), reply)
        finally:
            fake._track_stream(-1)

    def _write_frames(self, frames: Iterator[bytes], reply: Reply) -> None:
        fake = self.server.fake
        for sent, frame in enumerate(frames):
            if reply.chunk_delay:
                time.sleep(reply.chunk_delay)
            if reply.fault in ("cut", "stall") and sent == 2:
                if reply.fault == "stall":
                    fake._closing.wait()
                # No terminating chunk: the client sees the connection end mid-body.
                self.close_connection = True
                return
            if reply.fault == "malformed" and sent == 2:
                self._write_chunk(b'data: {"choices": [{"index": 0, "delta": {"content": "x\n\n')
            if reply.fault == "stream_error" and sent == 2:
                error = {"message": "The model is overloaded.", "type": "server_error"}
                self._write_chunk(_sse({"error": error}))
            self._write_chunk(frame)
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _send_error(self, status: int, code: str, message: str) -> None:
        error = {"message": message, "type": code, "param": None, "code": code}
        self._send_json(status, {"error": error})


def _frames(
    fake: FakeLLM, body: dict[str, Any], reply: Reply, include_usage: bool
) -> Iterator[bytes]:
    """The SSE frames of one streamed reply, ``data: [DONE]`` last."""
    head = {
        "id": fake._next_id("chatcmpl"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", fake.model),
        "system_fingerprint": None,
    }

    def frame(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
        if include_usage:
            chunk["usage"] = None  # OpenAI sends null usage on every chunk but the last
        return _sse(chunk)

    yield frame({"role": "assistant", "content": ""})
    for piece in _pieces(reply.reasoning):
        yield frame({reply.reasoning_field: piece})
    for piece in _pieces(reply.text):
        yield frame({"content": piece})
    for index, call in enumerate(reply.tool_calls):
        arguments = _arguments(call)
        function = {"name": call.name, "arguments": ""}
        call_id = call.id or fake._next_id("call")
        yield frame(
            {
                "tool_calls": [
                    {"index": index, "id": call_id, "type": "function", "function": function}
                ]
            }
        )
        for start in range(0, len(arguments), _ARGUMENT_PIECE):
            fragment = arguments[start : start + _ARGUMENT_PIECE]
            yield frame({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    yield frame({}, reply.finish_reason)
    if include_usage and reply.usage is not None:
        yield _sse({**head, "choices": [], "usage": _usage(reply.usage)})
    yield b"data: [DONE]\n\n"


def _completion(fake: FakeLLM, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """The same reply as one non-streamed ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(_pieces(reply.text)) or None}
    if reply.reasoning:
        message[reply.reasoning_field] = "".join(_pieces(reply.reasoning))
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id or fake._next_id("call"),
                "type": "function",
                "function": {"name": call.name, "arguments": _arguments(call)},
            }
            for call in reply.tool_calls
        ]
    choice = {"index": 0, "message": message, "finish_reason": reply.finish_reason}
    return {
        "id": fake._next_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", fake.model),
        "choices": [choice],
        "usage": _usage(reply.usage) if reply.usage else None,
    }


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _pieces(text: str | list[str]) -> list[str]:
    """Word-sized deltas that join back to ``text`` exactly, whitespace and newlines included."""
    return list(text) if isinstance(text, list) else re.findall(r"\s*\S+|\s+$", text)


def _arguments(call: ToolCall) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


def _usage(usage: tuple[int, int]) -> dict[str, int]:
    prompt, completion = usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
