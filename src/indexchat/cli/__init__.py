"""The ``indexchat`` command: server and admin commands, and API commands through the SDK.

Importing it is cheap: each command imports what it needs (the server, the database, the SDK)
when it runs, so ``indexchat --help`` answers at once.
"""

from __future__ import annotations

from typing import Annotated

import typer

from indexchat import __version__
from indexchat.cli import backup, chat, documents, ingest, mcp, server, share_links, worker

app = typer.Typer(
    name="indexchat",
    help="Self-hosted LlamaCloud Chat API: chat over your own documents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"indexchat {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Self-hosted LlamaCloud Chat API: chat over your own documents."""


server.register(app)
worker.register(app)
chat.register(app)
share_links.register(app)
documents.register(app)
ingest.register(app)
mcp.register(app)
backup.register(app)


def main() -> None:
    app()
