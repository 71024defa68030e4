"""The stdio MCP server's side of ``indexchat mcp``: the tools' calls made with the official
async SDK against a running indexchat server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llama_cloud import APIStatusError, AsyncLlamaCloud, LlamaCloudError
from mcp.server.stdio import stdio_server

from indexchat import __version__
from indexchat.cli.sdk import Scope, describe, explain
from indexchat.errors import IndexchatError
from indexchat.mcp.server import build_server
from indexchat.mcp.tools import Answer, Json


async def serve(api_key: str | None, url: str, project: Scope) -> None:
    async with AsyncLlamaCloud(api_key=api_key, base_url=url, max_retries=2) as sdk:
        backend = SdkBackend(sdk, url, project)

        async def backend_for(_ctx: Any) -> SdkBackend:
            return backend

        server = build_server(backend_for, version=__version__)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


class SdkBackend:
    """The tools' API calls, made with the official SDK against a running server."""

    def __init__(self, sdk: AsyncLlamaCloud, url: str, project: Scope) -> None:
        self.sdk = sdk
        self.url = url
        self.project = project

    async def list_indexes(self) -> list[Json]:
        with self._failures():
            return [
                index.model_dump(mode="json")
                async for index in self.sdk.indexes.list(page_size=100, **self.project)
            ]

    async def retrieve(self, body: Json) -> Json:
        with self._failures():
            answer = await self.sdk.retrieval.retrieve(**body, **self.project)
            return answer.model_dump(mode="json")

    async def find(self, body: Json) -> Json:
        with self._failures():
            return _page(await self.sdk.retrieval.find(**body, **self.project))

    async def grep(self, body: Json) -> Json:
        with self._failures():
            return _page(await self.sdk.retrieval.grep(**body, **self.project))

    async def read(self, body: Json) -> Json:
        with self._failures():
            answer = await self.sdk.retrieval.read(**body, **self.project)
            return answer.model_dump(mode="json")

    async def ask(self, prompt: str, index_ids: list[str], session_id: str | None) -> Answer:
        with self._failures():
            if session_id is None:
                created = await self.sdk.chat.create(index_ids=index_ids, **self.project)
                session_id = created.session_id
            events = []
            async with self.sdk.chat.with_streaming_response.stream(
                session_id,
                index_ids=index_ids,
                prompt=prompt,
                require_all_indexes=True,
                **self.project,
            ) as response:
                async for line in response.iter_lines():
                    if line.startswith("data:"):  # `event:` lines repeat the type
                        event = json.loads(line[len("data:") :])
                        if not event["type"].endswith("_delta"):
                            events.append(event)
            return Answer(session_id, events)

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """SDK errors as the tool error the user sees: the server's ``detail``."""
        try:
            yield
        except APIStatusError as exc:
            detail = exc.body.get("detail") if isinstance(exc.body, dict) else exc.body
            raise IndexchatError(describe(detail)) from exc
        except LlamaCloudError as exc:
            raise IndexchatError(explain(exc, self.url)) from exc


def _page(page: Any) -> Json:
    return {
        "items": [item.model_dump(mode="json") for item in page.items],
        "next_page_token": page.next_page_token,
    }
