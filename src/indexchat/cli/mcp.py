"""``indexchat mcp``: the MCP server over stdio, for desktop MCP clients (Claude Desktop,
Cursor, IDEs). It talks to an indexchat server over HTTP with the official ``llama-cloud`` SDK,
like the other API commands, so it needs only an API key and the server's URL."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import typer
from llama_cloud import APIStatusError, AsyncLlamaCloud, LlamaCloudError

from indexchat import __version__
from indexchat.cli.output import fail
from indexchat.cli.sdk import (
    DEFAULT_BASE_URL,
    ApiKey,
    BaseUrl,
    OrganizationId,
    ProjectId,
    describe,
    explain,
    scope,
)
from indexchat.errors import IndexchatError
from indexchat.mcp.tools import Answer, Json


def register(app: typer.Typer) -> None:
    app.command("mcp")(serve_mcp)


def serve_mcp(
    project_id: ProjectId = None,
    organization_id: OrganizationId = None,
    api_key: ApiKey = None,
    base_url: BaseUrl = None,
) -> None:
    """Serve the project's indexes to an MCP client over stdin/stdout: a search tool per
    index, find_files, grep_file, read_file and ask. Reads LLAMA_CLOUD_API_KEY and
    LLAMA_CLOUD_BASE_URL."""
    if not api_key and not os.environ.get("LLAMA_PARSE_API_KEY"):
        fail("no API key: pass --api-key or set LLAMA_CLOUD_API_KEY")
    # stdout carries the protocol: logs go to stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    url = base_url or DEFAULT_BASE_URL
    anyio.run(_serve, api_key, url, scope(project_id, organization_id))


async def _serve(api_key: str | None, url: str, project: dict[str, str]) -> None:
    # The MCP SDK takes seconds to import: only this command loads it.
    from mcp.server.stdio import stdio_server

    from indexchat.mcp.server import build_server

    async with AsyncLlamaCloud(api_key=api_key, base_url=url, max_retries=2) as sdk:
        backend = SdkBackend(sdk, url, project)

        async def backend_for(_ctx: Any) -> SdkBackend:
            return backend

        server = build_server(backend_for, version=__version__)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


class SdkBackend:
    """The tools' API calls, made with the official SDK against a running server."""

    def __init__(self, sdk: AsyncLlamaCloud, url: str, project: dict[str, str]) -> None:
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
