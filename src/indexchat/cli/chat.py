"""``indexchat beta:chat …`` / ``indexchat chat …``: the chat API through the official SDK;
``stream`` runs a turn (``cli/turns.py``), no command chats interactively (``cli/repl.py``).

Built on the official ``llama-cloud`` SDK (see ``cli/sdk.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

import typer
from llama_cloud import LlamaCloud

from indexchat.cli.output import Format, print_json, print_table
from indexchat.cli.repl import interactive
from indexchat.cli.sdk import (
    ApiKey,
    BaseUrl,
    FormatOption,
    OrganizationId,
    ProjectId,
    client,
    scope,
)
from indexchat.cli.turns import stream

SESSION_COLUMNS = ["session_id", "generated_title", "last_updated_at", "shared_access", "index_ids"]


class SharedAccess(StrEnum):
    query = "query"
    read_only = "read_only"


SessionId = Annotated[str, typer.Option("--session-id", help="The chat session id (ses-…).")]


def register(app: typer.Typer) -> None:
    for name in ("beta:chat", "chat"):
        # With no command, the group itself is the interactive chat.
        group = typer.Typer(invoke_without_command=True)
        group.callback()(interactive)
        group.command("stream")(stream)
        group.command("list")(list_sessions)
        group.command("create")(create_session)
        group.command("get")(get_session)
        group.command("summary")(get_summary)
        group.command("delete")(delete_session)
        app.add_typer(group, name=name)


def _show(data: dict[str, Any] | list[dict[str, Any]], format: Format, title: str) -> None:
    if format is Format.json:
        print_json(data)
        return
    rows = data if isinstance(data, list) else [data]
    print_table(title, rows, SESSION_COLUMNS)


def list_sessions(
    page_size: Annotated[
        int | None, typer.Option("--page-size", help="Sessions per page (max 100).")
    ] = None,
    page_token: Annotated[
        str | None, typer.Option("--page-token", help="next_page_token of the previous page.")
    ] = None,
    project_id: ProjectId = None,
    organization_id: OrganizationId = None,
    api_key: ApiKey = None,
    base_url: BaseUrl = None,
    format: FormatOption = Format.json,
) -> None:
    """List chat sessions, most recently updated first (one page)."""
    with client(api_key, base_url) as sdk:
        page = sdk.chat.list(
            page_size=page_size, page_token=page_token, **scope(project_id, organization_id)
        )
        data: dict[str, Any] = {"items": [s.to_dict() for s in page.items]}
        if page.next_page_token:
            data["next_page_token"] = page.next_page_token
    if format is Format.table:
        _show(data["items"], format, "Chat sessions")
        if page.next_page_token:
            typer.echo(f"next page: --page-token {page.next_page_token}")
    else:
        print_json(data)


def create_session(
    index_id: Annotated[
        list[str] | None,
        typer.Option("--index-id", help="Bind the session to an index (repeatable)."),
    ] = None,
    shared_access: Annotated[
        SharedAccess | None, typer.Option("--shared-access", help="What the share link grants.")
    ] = None,
    project_id: ProjectId = None,
    organization_id: OrganizationId = None,
    api_key: ApiKey = None,
    base_url: BaseUrl = None,
    format: FormatOption = Format.json,
) -> None:
    """Create a chat session, optionally bound to indexes."""
    body: dict[str, Any] = {}
    if index_id:
        body["index_ids"] = index_id
    if shared_access is not None:
        body["shared_access"] = shared_access.value
    with client(api_key, base_url) as sdk:
        created = sdk.chat.create(**body, **scope(project_id, organization_id))
    _show(created.to_dict(), format, "Chat session")


def _by_id(call: Callable[[LlamaCloud], Callable[..., Any]], title: str) -> Callable[..., None]:
    def command(
        session_id: SessionId,
        project_id: ProjectId = None,
        organization_id: OrganizationId = None,
        api_key: ApiKey = None,
        base_url: BaseUrl = None,
        format: FormatOption = Format.json,
    ) -> None:
        with client(api_key, base_url) as sdk:
            found = call(sdk)(session_id, **scope(project_id, organization_id))
        _show(found.to_dict(), format, title)

    return command


get_session = _by_id(lambda sdk: sdk.chat.retrieve, "Chat session")
get_session.__doc__ = "Get a chat session with its full event history."
get_summary = _by_id(lambda sdk: sdk.chat.get_summary, "Chat session")
get_summary.__doc__ = "Get a chat session without its events."


def delete_session(
    session_id: SessionId,
    project_id: ProjectId = None,
    organization_id: OrganizationId = None,
    api_key: ApiKey = None,
    base_url: BaseUrl = None,
) -> None:
    """Delete a chat session and its history."""
    with client(api_key, base_url) as sdk:
        sdk.chat.delete(session_id, **scope(project_id, organization_id))
    print_json({"deleted": session_id})
