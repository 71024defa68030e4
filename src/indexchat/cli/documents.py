"""Documents from the command line: upload files, manage directories and indexes, and search
an index (``ingest``, a folder in one step, is ``cli/ingest.py``). Built on the official SDK
(see ``cli/sdk.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from indexchat.cli.output import Format, FormatOption, console, fail, print_json, print_table
from indexchat.cli.sdk import Api, Scope, api_command, resolve_index

if TYPE_CHECKING:
    from llama_cloud import LlamaCloud
    from llama_cloud.types.retrieval_retrieve_response import ResultStaticFields
    from rich.progress import Progress

POLL_SECONDS = 0.5
UPLOAD_CONCURRENCY = 4


def register(app: typer.Typer) -> None:
    files = typer.Typer(help="Uploaded files.", no_args_is_help=True)
    files.command("upload")(upload_files)
    directories = typer.Typer(help="Directories of files.", no_args_is_help=True)
    directories.command("create")(create_directory)
    directories.command("list")(list_directories)
    indexes = typer.Typer(help="Searchable indexes over directories.", no_args_is_help=True)
    for name, command in (
        ("create", create_index),
        ("list", list_indexes),
        ("get", get_index),
        ("sync", sync_index),
        ("cancel", cancel_sync),
        ("delete", delete_index),
    ):
        indexes.command(name)(command)
    app.add_typer(files, name="files")
    app.add_typer(directories, name="directories")
    app.add_typer(indexes, name="indexes")
    app.command("retrieve")(retrieve)


Paths = Annotated[list[Path], typer.Argument(help="Files or folders (folders are walked).")]
Screenshots = Annotated[bool, typer.Option(help="Store page screenshots of PDFs.")]
IndexRef = Annotated[str, typer.Argument(help="The index, by name or id (idx-…).")]


def walk(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(path)
        else:
            fail(f"no such file or folder: {path}")
    return found


def progress_bar() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def upload_into(
    sdk: LlamaCloud,
    directory_id: str | None,
    uploads: list[tuple[Path, dict[str, Any]]],
    scope: Scope,
    on_uploaded: Callable[[int], None] | None = None,
) -> list[Any]:
    """Upload in a few parallel requests (a round trip waits on the network, not the CPU),
    each path with its extra form fields; results come back in the order given.
    ``on_uploaded(count)`` runs after each one."""

    def upload(path: Path, fields: dict[str, Any]) -> Any:
        content = (path.name, path.read_bytes())
        if directory_id is None:
            return sdk.files.create(file=content, purpose="user_data", **scope)
        return sdk.beta.directories.files.upload(
            directory_id, upload_file=content, **fields, **scope
        )

    with progress_bar() as progress, ThreadPoolExecutor(UPLOAD_CONCURRENCY) as pool:
        task = progress.add_task("Uploading", total=len(uploads))
        futures = [pool.submit(upload, path, fields) for path, fields in uploads]
        for done, _ in enumerate(as_completed(futures), start=1):
            progress.advance(task)
            if on_uploaded is not None:
                on_uploaded(done)
        return [future.result() for future in futures]


@api_command
def upload_files(
    paths: Paths,
    api: Api,
    directory_id: Annotated[
        str | None, typer.Option("--directory-id", help="Also place them in this directory.")
    ] = None,
) -> None:
    """Upload files (with a progress bar); prints their ids."""
    with api.client() as sdk:
        uploads: list[tuple[Path, dict[str, Any]]] = [(path, {}) for path in walk(paths)]
        uploaded = upload_into(sdk, directory_id, uploads, api.scope)
    print_json([{"id": u.id, "name": getattr(u, "name", None) or u.display_name} for u in uploaded])


@api_command
def create_directory(
    name: Annotated[str, typer.Argument(help="Directory name.")],
    api: Api,
    description: Annotated[str | None, typer.Option(help="A description.")] = None,
) -> None:
    """Create a directory."""
    with api.client() as sdk:
        made = sdk.beta.directories.create(name=name, description=description, **api.scope)
    print_json(made.to_dict())


@api_command
def list_directories(api: Api, format: FormatOption = Format.table) -> None:
    """List directories."""
    with api.client() as sdk:
        rows = [d.to_dict() for d in sdk.beta.directories.list(**api.scope)]
    _render("Directories", rows, ["id", "name", "type", "description"], format)


@api_command
def create_index(
    directory_id: Annotated[str, typer.Option("--directory-id", help="Source directory.")],
    api: Api,
    name: Annotated[
        str | None, typer.Option(help="Index name.", show_default="the directory's")
    ] = None,
    screenshots: Screenshots = False,
) -> None:
    """Create an index over a directory (then run `indexchat indexes sync`)."""
    with api.client() as sdk:
        index = sdk.indexes.create(
            source_directory_id=directory_id,
            name=name,
            store_attachments=["screenshots"] if screenshots else None,
            **api.scope,
        )
    print_json(index.to_dict())


@api_command
def list_indexes(api: Api, format: FormatOption = Format.table) -> None:
    """List indexes."""
    with api.client() as sdk:
        rows = [i.to_dict() for i in sdk.indexes.list(**api.scope)]
    _render("Indexes", rows, ["id", "name", "source_directory_id", "last_synced_at"], format)


@api_command
def get_index(index: IndexRef, api: Api) -> None:
    """Show an index with its build state."""
    with api.client() as sdk:
        found = resolve_index(sdk, index, api.scope)
        print_json(sdk.indexes.get(found.id, expand=["sync_in_progress"], **api.scope).to_dict())


@api_command
def sync_index(
    index: IndexRef,
    api: Api,
    wait: Annotated[bool, typer.Option(help="Wait, with a progress bar, until searchable.")] = True,
) -> None:
    """Sync an index: parse new or changed files, drop deleted ones, make it searchable."""
    with api.client() as sdk:
        index_id = resolve_index(sdk, index, api.scope).id
        sdk.indexes.sync(index_id, **api.scope)
        if wait:
            wait_for_sync(sdk, index_id, api.scope)
        print_json(sdk.indexes.get(index_id, **api.scope).metadata)


@api_command
def cancel_sync(index: IndexRef, api: Api) -> None:
    """Cancel an index's running sync."""
    with api.client() as sdk:
        index_id = resolve_index(sdk, index, api.scope).id
        print_json(sdk.indexes.cancel_sync(index_id, **api.scope))


@api_command
def delete_index(index: IndexRef, api: Api) -> None:
    """Delete an index and everything built from it (its source files stay)."""
    with api.client() as sdk:
        index_id = resolve_index(sdk, index, api.scope).id
        sdk.indexes.delete(index_id, **api.scope)
    print_json({"deleted": index_id})


def wait_for_sync(sdk: LlamaCloud, index_id: str, scope: Scope) -> None:
    """Follow a running sync with a progress bar (files of its current pass done so far)."""
    with progress_bar() as progress:
        task = progress.add_task("Indexing", total=None)
        while True:
            index = sdk.indexes.get(index_id, expand=["sync_in_progress"], **scope)
            # What the server reports: file counts and the current pass's sync_progress.
            state: dict[str, Any] = index.metadata or {}
            if not index.sync_in_progress:
                progress.update(
                    task, total=state.get("files_total", 0), completed=state.get("files_total", 0)
                )
                return
            current = state.get("sync_progress") or {}
            if current.get("files_total"):
                progress.update(
                    task, total=current["files_total"], completed=current.get("files_done", 0)
                )
            time.sleep(POLL_SECONDS)


@api_command
def retrieve(
    query: Annotated[str, typer.Argument(help="What to search for.")],
    index: Annotated[str, typer.Option("--index", help="The index, by name or id (idx-…).")],
    api: Api,
    top_k: Annotated[
        int, typer.Option("--top-k", min=1, max=500, help="How many chunks to return.")
    ] = 5,
    format: FormatOption = Format.table,
) -> None:
    """Search an index and print the ranked chunks."""
    with api.client() as sdk:
        index_id = resolve_index(sdk, index, api.scope).id
        found = sdk.retrieval.retrieve(index_id=index_id, query=query, top_k=top_k, **api.scope)
        names: dict[str | None, str] = {
            f.file_id: f.file_name
            for f in sdk.retrieval.find(index_id=index_id, page_size=1000, **api.scope)
        }
    # The server fills static_fields on every result.
    results = [(r, cast("ResultStaticFields", r.static_fields)) for r in found.results]
    rows = [
        {
            "rank": i + 1,
            "score": round(r.score or 0, 3),
            "file": names.get(fields.parsed_directory_file_id, "?"),
            "pages": f"{fields.page_range_start}-{fields.page_range_end}",
            "text": r.content[:300],
        }
        for i, (r, fields) in enumerate(results)
    ]
    _render(f"Results for {query!r}", rows, ["rank", "score", "file", "pages", "text"], format)


def _render(title: str, rows: list[dict[str, Any]], columns: list[str], format: Format) -> None:
    if format is Format.json:
        print_json(rows)
    else:
        print_table(title, rows, columns)
