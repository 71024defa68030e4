"""``indexchat beta:chat …`` / ``indexchat chat …``: the chat API through the official SDK;
``stream`` runs a turn (``cli/turns.py``), no command chats interactively (``cli/repl.py``).

Built on the official ``llama-cloud`` SDK (see ``cli/sdk.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from indexchat.cli.output import Format, FormatOption, print_json, print_table
from indexchat.cli.repl import interactive
from indexchat.cli.sdk import Api, api_command, index_option, resolve_indexes
from indexchat.cli.share_links import share
from indexchat.cli.turns import stream

if TYPE_CHECKING:
    from llama_cloud import LlamaCloud

SESSION_COLUMNS = ["session_id", "generated_title", "last_updated_at", "shared_access", "index_ids"]


class SharedAccess(StrEnum):
    query = "query"
    read_only = "read_only"


SessionId = Annotated[str, typer.Option("--session-id", help="The chat session id (ses-…).")]


PageSizeOption = Annotated[
    int | None,
    typer.Option("--page-size", help="Sessions per page (max 100).", show_default="20"),
]
PageTokenOption = Annotated[
    str | None, typer.Option("--page-token", help="next_page_token of the previous page.")
]


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
        group.command("share")(share)
        group.command("search")(search_sessions)
        app.add_typer(group, name=name)


def _show(data: dict[str, Any] | list[dict[str, Any]], format: Format, title: str) -> None:
    if format is Format.json:
        print_json(data)
        return
    rows = data if isinstance(data, list) else [data]
    print_table(title, rows, SESSION_COLUMNS)


@api_command
def list_sessions(
    api: Api,
    page_size: PageSizeOption = None,
    page_token: PageTokenOption = None,
    format: FormatOption = Format.json,
) -> None:
    """List chat sessions, most recently updated first (one page)."""
    with api.client() as sdk:
        page = sdk.chat.list(page_size=page_size, page_token=page_token, **api.scope)
        data: dict[str, Any] = {"items": [s.to_dict() for s in page.items]}
        if page.next_page_token:
            data["next_page_token"] = page.next_page_token
    if format is Format.table:
        _show(data["items"], format, "Chat sessions")
        if page.next_page_token:
            typer.echo(f"next page: --page-token {page.next_page_token}")
    else:
        print_json(data)


@api_command
def create_session(
    api: Api,
    index_id: Annotated[
        list[str] | None,
        index_option("Bind the session to an index, by id or name (repeatable)."),
    ] = None,
    shared_access: Annotated[
        SharedAccess | None,
        typer.Option(
            "--shared-access", help="What the share link grants.", show_default="read_only"
        ),
    ] = None,
    format: FormatOption = Format.json,
) -> None:
    """Create a chat session, optionally bound to indexes."""
    body: dict[str, Any] = {}
    if shared_access is not None:
        body["shared_access"] = shared_access.value
    with api.client() as sdk:
        if index_id:
            body["index_ids"] = [i.id for i in resolve_indexes(sdk, index_id, api.scope)]
        created = sdk.chat.create(**body, **api.scope)
    _show(created.to_dict(), format, "Chat session")


def _by_id(call: Callable[[LlamaCloud], Callable[..., Any]], title: str) -> Callable[..., None]:
    @api_command
    def command(session_id: SessionId, api: Api, format: FormatOption = Format.json) -> None:
        with api.client() as sdk:
            found = call(sdk)(session_id, **api.scope)
        _show(found.to_dict(), format, title)

    return command


get_session = _by_id(lambda sdk: sdk.chat.retrieve, "Chat session")
get_session.__doc__ = "Get a chat session with its full event history."
get_summary = _by_id(lambda sdk: sdk.chat.get_summary, "Chat session")
get_summary.__doc__ = "Get a chat session without its events."


@api_command
def delete_session(session_id: SessionId, api: Api) -> None:
    """Delete a chat session and its history."""
    with api.client() as sdk:
        sdk.chat.delete(session_id, **api.scope)
    print_json({"deleted": session_id})


FOUND_COLUMNS = ["session_id", "generated_title", "snippet", "event_index", "last_updated_at"]


@api_command
def search_sessions(
    query: Annotated[str, typer.Argument(help="Words to find in titles, prompts and answers.")],
    api: Api,
    page_size: PageSizeOption = None,
    page_token: PageTokenOption = None,
    format: FormatOption = Format.table,
) -> None:
    """Search chat sessions, best match first; matches are marked «like this»."""
    import httpx

    params: dict[str, Any] = {"q": query, **api.scope}
    if page_size is not None:
        params["page_size"] = page_size
    if page_token:
        params["page_token"] = page_token
    with api.client() as sdk:
        # An extension of the API: the SDK has no method for it, so a raw call through it.
        response = sdk.get(
            "/api/v1/chat/search", cast_to=httpx.Response, options={"params": params}
        )
    data = response.json()
    if format is Format.json:
        print_json(data)
        return
    print_table(f"Chat sessions matching {query!r}", data["items"], FOUND_COLUMNS)
    if not data["items"]:
        typer.echo("No chat session matches.")
    if data.get("next_page_token"):
        typer.echo(f"next page: --page-token {data['next_page_token']}")
