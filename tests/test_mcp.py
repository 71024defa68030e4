"""The MCP server, driven by the official ``mcp`` SDK's own client: over streamable HTTP at
``/mcp`` on the live server, and over stdio through ``indexchat mcp`` (a subprocess that talks
to the same server with the llama-cloud SDK)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from factories import LiveServer, Tenant, make_index, make_tenant, wait_for_sync
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from indexchat.services import tenancy

TRANSPORTS = ["http", "stdio"]
HANDBOOK = {
    "leave.md": "# Leave\n\nRequest annual leave in the HR portal two weeks ahead.",
    "expenses.md": "# Expenses\n\nKeep every receipt; claims close on the 5th of the month.",
}
RECIPES = {"bread.md": "Sourdough bread rises with wild yeast from a starter."}
STATIC = {"find_files", "grep_file", "read_file", "ask"}


@pytest.fixture(scope="module")
def project(server: LiveServer) -> dict[str, Any]:
    """A project with two synced indexes, and another project with an index of its own."""
    tenant = make_tenant(server)
    ids = {}
    for name, notes in (("Team Handbook", HANDBOOK), ("recipes", RECIPES)):
        ids[name], _, _ = make_index(tenant, {k: v.encode() for k, v in notes.items()}, name=name)
    other = make_tenant(server)
    foreign, _, _ = make_index(other, {"secret.md": b"The vault code is 1234."}, name="secret")
    for client, index_id in (
        (tenant.client, ids["Team Handbook"]),
        (tenant.client, ids["recipes"]),
    ):
        wait_for_sync(client, index_id)
    wait_for_sync(other.client, foreign)
    return {"tenant": tenant, "ids": ids, "foreign": foreign}


@asynccontextmanager
async def connect(transport: str, server: LiveServer, api_key: str) -> AsyncIterator[Client]:
    if transport == "http":
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            url = f"{server.base_url}/mcp"
            async with Client(streamable_http_client(url, http_client=http)) as client:
                yield client
    else:
        env = {"LLAMA_CLOUD_API_KEY": api_key, "LLAMA_CLOUD_BASE_URL": server.base_url}
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "indexchat", "mcp"], env=env
        )
        async with Client(params, read_timeout_seconds=60) as client:
            yield client


def run(
    transport: str, server: LiveServer, api_key: str, body: Callable[[Client], Awaitable[None]]
):
    async def main() -> None:
        async with connect(transport, server, api_key) as client:
            await body(client)

    anyio.run(main)


def payload(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    data = json.loads(result.content[0].text)
    assert data == result.structured_content
    return data


def error_text(result: Any) -> str:
    assert result.is_error, result
    return result.content[0].text


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tools_of_the_project_and_each_call(
    server: LiveServer, project: dict[str, Any], transport: str
) -> None:
    ids = project["ids"]

    async def body(client: Client) -> None:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        # One search tool per index of this project, none of the other project's.
        assert set(tools) == {"search_team_handbook", "search_recipes"} | STATIC
        assert "Team Handbook" in tools["search_team_handbook"].description
        assert ids["Team Handbook"] in tools["search_team_handbook"].description
        assert "top_k" in tools["search_recipes"].input_schema["properties"]

        found = payload(
            await client.call_tool("search_team_handbook", {"query": "annual leave", "top_k": 1})
        )
        assert found["index_id"] == ids["Team Handbook"] and len(found["results"]) == 1
        hit = found["results"][0]
        assert "HR portal" in hit["content"] and hit["file_id"].startswith("dfl-")

        files = payload(await client.call_tool("find_files", {"index_id": ids["Team Handbook"]}))
        assert sorted(f["file_name"] for f in files["files"]) == sorted(HANDBOOK)
        assert files["more"] is False
        named = payload(
            await client.call_tool("find_files", {"index_id": ids["recipes"], "name": "BREAD"})
        )
        (bread,) = named["files"]
        grep = {"index_id": ids["recipes"], "file_id": bread["file_id"], "pattern": r"wild \w+"}
        matches = payload(await client.call_tool("grep_file", {**grep, "context_chars": 0}))
        assert [m["content"] for m in matches["matches"]] == ["wild yeast"]
        read = {"index_id": ids["recipes"], "file_id": bread["file_id"], "offset": 10}
        text = payload(await client.call_tool("read_file", {**read, "max_length": 11}))
        assert text["content"] == "bread rises" and text["length"] == 11

        answer = payload(
            await client.call_tool(
                "ask",
                {"prompt": "How do I request annual leave?", "index_ids": [ids["Team Handbook"]]},
            )
        )
        assert "HR portal" in answer["answer"] and answer["session_id"].startswith("ses-")
        assert "leave.md" in [c["file_name"] for c in answer["citations"]]

    run(transport, server, project["tenant"].api_key, body)
    # The answer is a real chat turn, kept in the project's history.
    sessions = list(project["tenant"].client.chat.list())
    assert any(s.index_ids == [ids["Team Handbook"]] for s in sessions)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_arguments_and_foreign_ids_are_tool_errors(
    server: LiveServer, project: dict[str, Any], transport: str
) -> None:
    ids, foreign = project["ids"], project["foreign"]

    async def body(client: Client) -> None:
        too_many = await client.call_tool("search_recipes", {"query": "bread", "top_k": 0})
        assert "top_k" in error_text(too_many) and "greater than or equal to 1" in error_text(
            too_many
        )
        extra = await client.call_tool("read_file", {"index_id": ids["recipes"], "file": "x"})
        assert "file_id" in error_text(extra) and "Extra inputs" in error_text(extra)
        unknown = await client.call_tool("search_nothing_here", {"query": "x"})
        assert "no tool named 'search_nothing_here'" in error_text(unknown)
        # Another project's index is not found, exactly as in the API.
        for name, arguments in (
            ("find_files", {"index_id": foreign}),
            ("read_file", {"index_id": foreign, "file_id": "dfl-x"}),
            ("grep_file", {"index_id": foreign, "file_id": "dfl-x", "pattern": "code"}),
            ("ask", {"prompt": "What is the vault code?", "index_ids": [foreign]}),
        ):
            failed = await client.call_tool(name, arguments)
            assert error_text(failed) == f"index {foreign!r} not found", name
        files = payload(await client.call_tool("find_files", {"index_id": ids["recipes"]}))
        bad_regex = {"index_id": ids["recipes"], "file_id": files["files"][0]["file_id"]}
        failed = await client.call_tool("grep_file", {**bad_regex, "pattern": "("})
        assert error_text(failed).startswith("invalid regular expression")
        # The server is still serving after all of that.
        assert payload(await client.call_tool("search_recipes", {"query": "bread"}))["results"]

    run(transport, server, project["tenant"].api_key, body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_revoked_key_is_refused(server: LiveServer, transport: str) -> None:
    tenant: Tenant = make_tenant(server)
    with server.runtime.db.write() as tx:
        tenancy.revoke_key(tx, tenant.key_id)
    errors: list[str] = []

    async def body(client: Client) -> None:
        with pytest.raises(MCPError) as listing:
            await client.list_tools()
        errors.append(listing.value.message)
        errors.append(error_text(await client.call_tool("find_files", {"index_id": "idx-x"})))

    try:
        run(transport, server, tenant.api_key, body)
    except BaseExceptionGroup as group:  # HTTP: the client cannot even connect
        assert transport == "http"
        errors.append(next(str(e.message) for e in _leaves(group) if isinstance(e, MCPError)))
    assert errors and all(e == "invalid or revoked API key" for e in errors), errors


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found


def test_http_answers_401_before_any_mcp_message(server: LiveServer) -> None:
    import httpx

    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    response = httpx.post(f"{server.base_url}/mcp", json=initialize)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"].startswith("missing API key")


def test_search_tool_names_stay_unique_and_valid() -> None:
    from indexchat.mcp.tools import search_tools

    indexes = [
        {"id": "idx-1111", "name": "Team Handbook"},
        {"id": "idx-2222", "name": "team  handbook!"},
        {"id": "idx-3333", "name": "Ünïcode / Notes 2026"},
        {"id": "idx-4444", "name": "???"},
        {"id": "idx-5555", "name": "議事録"},
    ]
    tools = search_tools(indexes)
    assert {name: index["id"] for name, (_, index) in tools.items()} == {
        "search_team_handbook_idx-1111": "idx-1111",
        "search_team_handbook_idx-2222": "idx-2222",
        "search_unicode_notes_2026": "idx-3333",
        "search_index_idx-4444": "idx-4444",
        "search_index_idx-5555": "idx-5555",
    }
    assert all(len(name) <= 128 for name in tools)
