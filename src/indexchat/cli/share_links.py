"""``indexchat chat share`` and ``indexchat share-links list|revoke``: a session's share links
through the official SDK (raw calls: the share-link paths are extensions)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from indexchat.cli.output import Format, FormatOption, fail, print_json, print_table
from indexchat.cli.sdk import Api, api_command

LINK_COLUMNS = ["id", "shared_access", "created_at", "expires_at", "expired"]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d+)([smhdw])$")

SessionId = Annotated[str, typer.Option("--session-id", help="The chat session id (ses-…).")]


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="A chat session's share links: list them, revoke one.")
    group.command("list")(list_links)
    group.command("revoke")(revoke_link)
    app.add_typer(group, name="share-links")


def parse_duration(text: str) -> int:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` → seconds."""
    found = _DURATION.match(text.strip().lower())
    if found is None:
        fail(f"--expires-in {text!r}: expected a number and a unit, e.g. 12h, 7d or 2w")
    return int(found.group(1)) * _UNITS[found.group(2)]


def _path(session_id: str, link_id: str | None = None) -> str:
    base = f"/api/v1/chat/{session_id}/share-links"
    return f"{base}/{link_id}" if link_id else base


@api_command
def share(
    session_id: SessionId,
    api: Api,
    expires_in: Annotated[
        str | None,
        typer.Option("--expires-in", help="The link stops working after this long: 12h, 7d, 2w."),
    ] = None,
    shared_access: Annotated[
        str | None,
        typer.Option(
            "--shared-access",
            help="read_only or query (viewers may ask, each in their own copy).",
            show_default="the session's shared_access",
        ),
    ] = None,
    format: FormatOption = Format.table,
) -> None:
    """Create a share link to a chat session; its URL is shown this once only."""
    if shared_access not in (None, "read_only", "query"):
        fail(f"--shared-access {shared_access!r}: expected read_only or query")
    body: dict[str, Any] = {"shared_access": shared_access}
    if expires_in is not None:
        body["expires_in_seconds"] = parse_duration(expires_in)
    with api.client() as sdk:
        link = sdk.post(_path(session_id), cast_to=object, body=body, options=_query(api))
    if format is Format.json:
        print_json(link)
        return
    typer.echo(link["url"])  # type: ignore[index]
    typer.echo("Copy it now: the link is shown only once.", err=True)


@api_command
def list_links(session_id: SessionId, api: Api, format: FormatOption = Format.json) -> None:
    """List a chat session's share links (without their URLs)."""
    with api.client() as sdk:
        page: Any = sdk.get(_path(session_id), cast_to=object, options=_query(api))
    if format is Format.json:
        print_json(page)
    else:
        print_table("Share links", page["items"], LINK_COLUMNS)


@api_command
def revoke_link(
    session_id: SessionId,
    api: Api,
    link_id: Annotated[str, typer.Option("--link-id", help="The share link id (shl-…).")],
) -> None:
    """Revoke a share link: it, and the copies its viewers started, stop working."""
    with api.client() as sdk:
        sdk.delete(_path(session_id, link_id), cast_to=object, options=_query(api))
    print_json({"revoked": link_id})


def _query(api: Api) -> Any:
    return {"params": dict(api.scope)}
