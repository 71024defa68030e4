"""Local commands that work on the data dir / database directly: serve, projects, keys."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from indexchat.cli.output import Format, FormatOption, console, fail, print_json, print_table

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from indexchat.config import Settings
    from indexchat.runtime import Runtime
    from indexchat.storage.db import Database

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="INDEXCHAT_DATA_DIR",
        help="Data folder.",
        show_default="a per-user data folder",
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy database URL (env INDEXCHAT_DATABASE_URL or DATABASE_URL).",
        show_default="SQLite in the data folder",
    ),
]
ProjectName = Annotated[
    str | None,
    typer.Option(
        "--project", help="Project name.", show_default="the organization's default project"
    ),
]


def load_settings(data_dir: Path | None, database_url: str | None, **extra: Any) -> Settings:
    """Settings from the environment, with the options given on the command line on top;
    an invalid setting prints and exits 1."""
    from pydantic import ValidationError

    from indexchat.config import Settings

    overrides: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        fail(f"invalid setting: {error['loc'][0]}: {error['msg']}")


def open_or_fail(settings: Settings) -> Database:
    """The configured database, migrated; a failure to open it prints and exits non-zero."""
    from indexchat.runtime import open_database

    try:
        return open_database(settings)
    except Exception as exc:  # noqa: BLE001 - any driver failure is a user-facing message here
        fail(f"cannot open database {settings.resolved_database_url()!r}: {exc}")


@contextmanager
def admin_session(data_dir: Path | None, database_url: str | None) -> Iterator[Session]:
    """One write transaction on the configured database; failures print and exit non-zero."""
    from indexchat.errors import IndexchatError

    db = open_or_fail(load_settings(data_dir, database_url))
    try:
        with db.write() as tx:
            yield tx
    except IndexchatError as exc:
        fail(exc.message)
    finally:
        db.dispose()


def register(app: typer.Typer) -> None:
    app.command(help="Run the API server and the web page.")(serve)
    app.command("sign-in-link")(sign_in_link)
    projects = typer.Typer(
        help="Manage projects (works on the database directly).", no_args_is_help=True
    )
    projects.command("create")(create_project)
    projects.command("list")(list_projects)
    keys = typer.Typer(
        help="Manage API keys (works on the database directly).", no_args_is_help=True
    )
    keys.command("create")(create_key)
    keys.command("list")(list_keys)
    keys.command("revoke")(revoke_key)
    app.add_typer(projects, name="projects")
    app.add_typer(keys, name="keys")


Host = Annotated[
    str | None,
    typer.Option(envvar="INDEXCHAT_HOST", help="Listen address.", show_default="127.0.0.1"),
]
Port = Annotated[
    int | None, typer.Option(envvar="INDEXCHAT_PORT", help="Listen port.", show_default="8000")
]
Llm = Annotated[
    str | None,
    typer.Option(
        envvar="INDEXCHAT_LLM",
        help="Who answers chat turns: extractive (offline, no model) or openai (any "
        "OpenAI-compatible server; OPENAI_BASE_URL, OPENAI_API_KEY).",
        show_default="extractive",
    ),
]
LlmModel = Annotated[
    str | None,
    typer.Option(
        envvar="INDEXCHAT_LLM_MODEL",
        help="Model name for --llm openai.",
        show_default="gpt-4o-mini",
    ),
]
Workers = Annotated[
    int,
    typer.Option(
        "--workers",
        min=1,
        envvar="INDEXCHAT_WORKERS",
        help="Server processes sharing the port (PostgreSQL only; SQLite serves from one).",
    ),
]


def serve(
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    llm: Llm = None,
    llm_model: LlmModel = None,
    workers: Workers = 1,
) -> None:
    import uvicorn

    from indexchat.api.app import create_app
    from indexchat.api.serving import uvicorn_options

    settings = load_settings(
        data_dir, database_url, host=host, port=port, llm=llm, llm_model=llm_model
    )
    if workers > 1 and settings.is_sqlite:
        fail(
            "--workers above 1 needs PostgreSQL (--database-url): the SQLite database takes "
            "one server process; run one, or move to PostgreSQL"
        )
    _check_port_free(settings.host, settings.port)
    url = server_url(settings.host, settings.port)
    _print_welcome(settings, url)

    def print_sign_in_link(runtime: Runtime) -> None:
        from indexchat.services import sign_ins

        with runtime.db.write() as tx:
            token = sign_ins.create_link(tx)
        _print_link(url, token)

    if workers > 1:
        _serve_processes(settings, workers, print_sign_in_link)
        return
    uvicorn.run(
        create_app(settings, on_start=print_sign_in_link),
        host=settings.host,
        port=settings.port,
        log_level="info",
        **uvicorn_options(),
    )


def _print_welcome(settings: Settings, url: str) -> None:
    """Where the server listens and keeps its data, and how to get a key for it."""
    where = settings.database_url and "the configured database" or str(settings.data_dir)
    console.print(f"[bold]indexchat[/] serving {url}  (docs: {url}/docs, data: {where})")
    console.print(
        "Create an API key with [bold]indexchat keys create[/]"
        + ("" if settings.database_url else f" --data-dir {settings.data_dir}")
        + f", then export LLAMA_CLOUD_BASE_URL={url} and LLAMA_CLOUD_API_KEY=<the key> "
        "for the CLI and the SDK",
        highlight=False,
        soft_wrap=True,
    )


def _serve_processes(settings: Settings, workers: int, on_start: Callable[[Runtime], None]) -> None:
    """``workers`` uvicorn processes on one port, each building the app from the environment
    (the options given here are handed down as ``INDEXCHAT_*`` variables)."""
    import os

    import uvicorn

    from indexchat.api.serving import uvicorn_options
    from indexchat.runtime import Runtime

    for name in ("data_dir", "database_url", "host", "port", "llm", "llm_model"):
        if (value := getattr(settings, name)) is not None:
            os.environ[f"INDEXCHAT_{name.upper()}"] = str(value)
    runtime = Runtime.open(settings)  # migrate once, before the processes start
    try:
        on_start(runtime)
    finally:
        runtime.close()
    uvicorn.run(
        "indexchat.api.app:app_from_environment",
        factory=True,
        workers=workers,
        host=settings.host,
        port=settings.port,
        log_level="info",
        **uvicorn_options(),
    )


def server_url(host: str, port: int) -> str:
    """The URL to open for a listen address (a wildcard address is opened on this machine)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def _print_link(url: str, token: str) -> None:
    console.print(
        "Open this link to sign in to the web page (it works once, within 10 minutes):",
        highlight=False,
    )
    console.print(f"    {url}/login?token={token}", soft_wrap=True, highlight=False)


def sign_in_link(
    project: ProjectName = None,
    org: Annotated[
        str | None, typer.Option("--org", help="Organization name [default: Default].")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="The server's address as the browser reaches it.",
            show_default="from the --host/--port settings",
        ),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print a new one-time sign-in link for the web page (like the one serve prints)."""
    from indexchat.services import sign_ins

    settings = load_settings(data_dir, database_url)
    with admin_session(data_dir, database_url) as tx:
        token = sign_ins.create_link(tx, organization=org, project=project)
    _print_link((url or server_url(settings.host, settings.port)).rstrip("/"), token)


def _check_port_free(host: str, port: int) -> None:
    """Fail now, before the banner, if the address is taken (uvicorn would exit 3 later)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port in TIME_WAIT after a restart is free, one listened on is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                fail(
                    f"port {port} on {host} is already in use (another indexchat serve?); "
                    "stop it or choose another with --port"
                )
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def create_project(
    name: Annotated[str, typer.Argument(help="Project name.")],
    org: Annotated[
        str | None, typer.Option("--org", help="Organization name; created if new.")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a project (and its organization, if new)."""
    from indexchat.services import tenancy

    with admin_session(data_dir, database_url) as tx:
        project = tenancy.create_project(tx, name, organization=org)
        print_json(
            {"id": project.id, "name": project.name, "organization_id": project.organization_id}
        )


def list_projects(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, format: FormatOption = Format.table
) -> None:
    """List every project of every organization."""
    from indexchat.services import tenancy

    with admin_session(data_dir, database_url) as tx:
        rows = [
            {
                "id": p.id,
                "name": p.name,
                "organization": o.name,
                "organization_id": o.id,
                "is_default": p.is_default,
            }
            for p, o in tenancy.list_all_projects(tx)
        ]
    _render("Projects", rows, format)


def create_key(
    project: ProjectName = None,
    org: Annotated[
        str | None,
        typer.Option(
            "--org",
            help="Organization name. With --org and no --project, the key reaches "
            "every project of the organization.",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API key. The key is printed alone on the last line, once; only its hash is kept."""
    from indexchat.services import tenancy

    with admin_session(data_dir, database_url) as tx:
        issued = tenancy.create_key(tx, project=project, organization=org, name=name)
    reach = (
        f"project {issued.key.project_id}"
        if issued.key.project_id
        else "every project of the organization"
    )
    console.print(
        f"Created API key {issued.key.id} for {reach}. Store it now: it is not shown again.",
        highlight=False,
    )
    typer.echo(issued.secret)


def list_keys(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, format: FormatOption = Format.table
) -> None:
    """List API keys (prefixes only; keys themselves are never stored)."""
    from indexchat.services import tenancy

    with admin_session(data_dir, database_url) as tx:
        rows = [
            {
                "id": k.id,
                "prefix": k.key_prefix + "…",
                "name": k.name,
                "organization_id": k.organization_id,
                "project_id": k.project_id or "(all)",
                "created_at": k.created_at.isoformat(),
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in tenancy.list_keys(tx)
        ]
    _render("API keys", rows, format)


def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (key-…), as shown by keys list.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke an API key: requests with it get 401 from now on."""
    from indexchat.services import tenancy

    with admin_session(data_dir, database_url) as tx:
        key = tenancy.revoke_key(tx, key_id)
    console.print(f"Revoked {key.id}.")


def _render(title: str, rows: list[dict[str, Any]], format: Format) -> None:
    if format is Format.json:
        print_json(rows)
    else:
        print_table(title, rows, list(rows[0]) if rows else ["id"])
