"""``indexchat beta:chat …`` / ``indexchat chat …``: the chat API through the official SDK.

This module talks to a server over HTTP with the ``llama-cloud`` SDK, exactly as a user's own
code would; it imports nothing from the server side.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any

import typer
from llama_cloud import APIConnectionError, APIStatusError, LlamaCloud, LlamaCloudError

from indexchat.cli.output import Format, fail, print_json, print_table

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
SESSION_COLUMNS = ["session_id", "generated_title", "last_updated_at", "shared_access", "index_ids"]


class SharedAccess(StrEnum):
    query = "query"
    read_only = "read_only"


ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="LLAMA_CLOUD_API_KEY",
        help="API key (env LLAMA_CLOUD_API_KEY).",
        show_default=False,
    ),
]
BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar="LLAMA_CLOUD_BASE_URL",
        help=f"Server URL (env LLAMA_CLOUD_BASE_URL) [default: {DEFAULT_BASE_URL}].",
        show_default=False,
    ),
]
ProjectId = Annotated[
    str | None, typer.Option("--project-id", help="Project to work in [default: the key's].")
]
OrganizationId = Annotated[
    str | None, typer.Option("--organization-id", help="Organization of the project.")
]
SessionId = Annotated[str, typer.Option("--session-id", help="The chat session id (ses-…).")]
FormatOption = Annotated[Format, typer.Option("--format", help="Output format.")]


def register(app: typer.Typer) -> None:
    for name in ("beta:chat", "chat"):
        group = typer.Typer(help="Chat sessions over your indexes.", no_args_is_help=True)
        group.command("list")(list_sessions)
        group.command("create")(create_session)
        group.command("get")(get_session)
        group.command("summary")(get_summary)
        group.command("delete")(delete_session)
        app.add_typer(group, name=name)


@contextmanager
def client(api_key: str | None, base_url: str | None) -> Iterator[LlamaCloud]:
    """An SDK client; API failures print the server's ``detail`` and exit 1."""
    url = base_url or DEFAULT_BASE_URL
    if not api_key and not os.environ.get("LLAMA_PARSE_API_KEY"):
        fail(
            "no API key: pass --api-key or set LLAMA_CLOUD_API_KEY "
            "(create one with `indexchat keys create`)"
        )
    try:
        with LlamaCloud(api_key=api_key, base_url=url, max_retries=2) as sdk:
            yield sdk
    except APIStatusError as exc:
        detail = exc.body.get("detail") if isinstance(exc.body, dict) else exc.body
        fail(f"{exc.status_code}: {_describe(detail)}")
    except APIConnectionError:
        fail(f"cannot reach the server at {url} (is `indexchat serve` running?)")
    except LlamaCloudError as exc:
        fail(str(exc))


def _scope(project_id: str | None, organization_id: str | None) -> dict[str, str]:
    return {
        k: v for k, v in {"project_id": project_id, "organization_id": organization_id}.items() if v
    }


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
            page_size=page_size, page_token=page_token, **_scope(project_id, organization_id)
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
        created = sdk.chat.create(**body, **_scope(project_id, organization_id))
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
            found = call(sdk)(session_id, **_scope(project_id, organization_id))
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
        sdk.chat.delete(session_id, **_scope(project_id, organization_id))
    print_json({"deleted": session_id})


def _describe(detail: Any) -> str:
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    return str(detail)
