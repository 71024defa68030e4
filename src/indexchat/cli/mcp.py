"""``indexchat mcp``: the MCP server over stdio, for desktop MCP clients (Claude Desktop,
Cursor, IDEs). It talks to an indexchat server over HTTP with the official ``llama-cloud`` SDK,
like the other API commands, so it needs only an API key and the server's URL."""

from __future__ import annotations

import logging
import os

import typer

from indexchat.cli.output import fail
from indexchat.cli.sdk import Api, api_command


def register(app: typer.Typer) -> None:
    app.command("mcp")(serve_mcp)


@api_command
def serve_mcp(api: Api) -> None:
    """Serve the project's indexes to an MCP client over stdin/stdout: a search tool per
    index, find_files, grep_file, read_file and ask. Reads LLAMA_CLOUD_API_KEY and
    LLAMA_CLOUD_BASE_URL."""
    if not api.api_key and not os.environ.get("LLAMA_PARSE_API_KEY"):
        fail("no API key: pass --api-key or set LLAMA_CLOUD_API_KEY")
    # stdout carries the protocol: logs go to stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import anyio

    # The MCP and llama-cloud SDKs take seconds to import: only this command loads them.
    from indexchat.cli.mcp_stdio import serve

    anyio.run(serve, api.api_key, api.url, api.scope)
