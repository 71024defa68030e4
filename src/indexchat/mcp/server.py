"""The MCP server itself: lists the tools of the caller's project and runs tool calls on a
``Backend``. A failing call is an MCP tool error carrying the server's ``detail``; nothing a
caller sends can take the server down."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from indexchat.errors import IndexchatError, InvalidInput, NotFound
from indexchat.mcp.tools import (
    ASK,
    FIND_FILES,
    GREP_FILE,
    READ_FILE,
    SEARCH_PREFIX,
    STATIC_TOOLS,
    AskArguments,
    Backend,
    FindArguments,
    GrepArguments,
    Json,
    ReadArguments,
    SearchArguments,
    Tool,
    answer_result,
    page_result,
    read_result,
    search_result,
    search_tools,
)

log = logging.getLogger("indexchat.mcp")

Context = ServerRequestContext[Any, Any]
# The backend for one request: the HTTP endpoint builds it from the request's credentials.
BackendFor = Callable[[Context], Awaitable[Backend]]
_READ_ONLY = types.ToolAnnotations(read_only_hint=True, open_world_hint=False)


def build_server(backend_for: BackendFor, *, version: str) -> Server[Any]:
    async def list_tools(
        ctx: Context, _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        try:
            indexes = await (await backend_for(ctx)).list_indexes()
        except IndexchatError as exc:
            raise MCPError(types.INVALID_REQUEST, _text(exc.detail)) from exc
        tools = [tool for tool, _ in search_tools(indexes).values()] + list(STATIC_TOOLS)
        return types.ListToolsResult(tools=[_spec(tool) for tool in tools])

    async def call_tool(ctx: Context, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            result = await _call(await backend_for(ctx), params.name, params.arguments or {})
        except IndexchatError as exc:
            return _failure(_text(exc.detail))
        except ValidationError as exc:
            return _failure(f"invalid arguments ({_problems(exc)})")
        except Exception as exc:  # a bug: logged here, never a dropped connection
            log.exception("MCP tool %r failed", params.name)
            return _failure(f"internal error while running {params.name} ({type(exc).__name__})")
        text = types.TextContent(type="text", text=json.dumps(result, ensure_ascii=False))
        return types.CallToolResult(content=[text], structured_content=result)

    return Server(
        "indexchat",
        version=version,
        instructions="Each search_… tool searches one index of the project; find_files, "
        "grep_file and read_file work on the files of an index; ask answers a question "
        "from the documents, with citations.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def _call(backend: Backend, name: str, arguments: dict[str, Any]) -> Json:
    if name.startswith(SEARCH_PREFIX):
        found = search_tools(await backend.list_indexes()).get(name)
        if found is None:
            raise NotFound(f"no tool named {name!r} (no index of this project has that name)")
        index = found[1]
        search = SearchArguments.model_validate(arguments)
        body = {"index_id": index["id"], "query": search.query, "top_k": search.top_k}
        return search_result(index, await backend.retrieve(body))
    if name == FIND_FILES:
        find = FindArguments.model_validate(arguments)
        body = {"index_id": find.index_id, "page_size": find.page_size}
        if find.name is not None:
            body["file_name_contains"] = find.name
        return page_result("files", await backend.find(body))
    if name == GREP_FILE:
        grep = GrepArguments.model_validate(arguments)
        return page_result("matches", await backend.grep(grep.model_dump()))
    if name == READ_FILE:
        read = ReadArguments.model_validate(arguments)
        return read_result(read, await backend.read(read.model_dump()))
    if name == ASK:
        return await _ask(backend, AskArguments.model_validate(arguments))
    raise NotFound(f"no tool named {name!r}")


async def _ask(backend: Backend, ask: AskArguments) -> Json:
    index_ids = ask.index_ids or []
    if not index_ids and ask.session_id is None:
        index_ids = [index["id"] for index in await backend.list_indexes()]
        if not index_ids:
            raise InvalidInput("this project has no indexes to answer from")
    result, error = answer_result(await backend.ask(ask.prompt, index_ids, ask.session_id))
    if error is not None:
        raise InvalidInput(error)
    return result


def _spec(tool: Tool) -> types.Tool:
    return types.Tool(
        name=tool.name,
        description=tool.description,
        input_schema=tool.input_schema,
        annotations=None if tool.name == ASK else _READ_ONLY,
    )


def _failure(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )


def _text(detail: object) -> str:
    return detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()
    )
