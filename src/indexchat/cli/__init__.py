"""The ``indexchat`` command: server and admin commands, and API commands through the SDK."""

from __future__ import annotations

import typer

from indexchat.cli import chat, documents, mcp, server, worker

app = typer.Typer(
    name="indexchat",
    help="Self-hosted LlamaCloud Chat API: chat over your own documents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
server.register(app)
worker.register(app)
chat.register(app)
documents.register(app)
mcp.register(app)


def main() -> None:
    app()
