"""Documents from the command line: upload files, manage directories and indexes, ingest a
folder in one step, and search an index. Built on the official SDK (see ``cli/sdk.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Annotated, Any

import typer
from llama_cloud import LlamaCloud
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from indexchat.cli.output import Format, console, fail, print_json, print_table
from indexchat.cli.sdk import ApiKey, BaseUrl, FormatOption, ProjectId, client

POLL_SECONDS = 0.5
UPLOAD_CONCURRENCY = 4
# During `ingest`, ask for a sync after every this many uploads (and once at the end).
SYNC_EVERY_FILES = 200


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
    app.command("ingest")(ingest)
    app.command("retrieve")(retrieve)


Paths = Annotated[list[Path], typer.Argument(help="Files or folders (folders are walked).")]
IndexId = Annotated[str, typer.Argument(help="The index id (idx-…).")]


def _walk(paths: list[Path]) -> list[Path]:
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


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _upload_into(
    sdk: LlamaCloud,
    directory_id: str | None,
    paths: list[Path],
    project: dict[str, str],
    on_uploaded: Callable[[int], None] | None = None,
) -> list[Any]:
    """Upload in a few parallel requests (a round trip waits on the network, not the CPU);
    results come back in the order of ``paths``. ``on_uploaded(count)`` runs after each one."""

    def upload(path: Path) -> Any:
        content = (path.name, path.read_bytes())
        if directory_id is None:
            return sdk.files.create(file=content, purpose="user_data", **project)
        return sdk.beta.directories.files.upload(directory_id, upload_file=content, **project)

    with _progress() as progress, ThreadPoolExecutor(UPLOAD_CONCURRENCY) as pool:
        task = progress.add_task("Uploading", total=len(paths))
        futures = [pool.submit(upload, path) for path in paths]
        for done, _ in enumerate(as_completed(futures), start=1):
            progress.advance(task)
            if on_uploaded is not None:
                on_uploaded(done)
        return [future.result() for future in futures]


def upload_files(
    paths: Paths,
    directory_id: Annotated[
        str | None, typer.Option("--directory-id", help="Also place them in this directory.")
    ] = None,
    project_id: ProjectId = None,
    api_key: ApiKey = None,
    base_url: BaseUrl = None,
) -> None:
    """Upload files (with a progress bar); prints their ids."""
    project = {"project_id": project_id} if project_id else {}
    with client(api_key, base_url) as sdk:
        uploaded = _upload_into(sdk, directory_id, _walk(paths), project)
    print_json([{"id": u.id, "name": getattr(u, "name", None) or u.display_name} for u in uploaded])


def create_directory(
    name: Annotated[str, typer.Argument(help="Directory name.")],
    description: Annotated[str | None, typer.Option(help="A description.")] = None,
    project_id: ProjectId = None,
    api_key: ApiKey = None,
    base_url: BaseUrl = None,
) -> None:
    """Create a directory."""
    with client(api_key, base_url) as sdk:
        made = sdk.beta.directories.create(
            name=name, description=description, **({"project_id": project_id} if project_id else {})
        )
    print_json(made.to_dict())


def list_directories(
    project_id: ProjectId = None,
    api_key: ApiKey = None,
    base_url: BaseUrl = None,
    format: FormatOption = Format.table,
) -> None:
    """List directories."""
    with client(api_key, base_url) as sdk:
        rows = [
            d.to_dict()
            for d in sdk.beta.directories.list(**({"project_id": project_id} if project_id else {}))
        ]
    _render("Directories", rows, ["id", "name", "type", "description"], format)


def create_index(
    directory_id: Annotated[str, typer.Option("--directory-id", help="Source directory.")],
    name: Annotated[str | None, typer.Option(help="Index name [default: the directory's].")] = None,
    screenshots: Annotated[bool, typer.Option(help="Store page screenshots of PDFs.")] = False,
    project_id: ProjectId = None,
    api_key: ApiKey = None,
    base_url: BaseUrl = None,
) -> None:
    """Create an index over a directory (then run `indexchat indexes sync`)."""
    with client(api_key, base_url) as sdk:
        index = sdk.indexes.create(
            source_directory_id=directory_id,
            name=name,
            store_attachments=["screenshots"] if screenshots else None,
            **({"project_id": project_id} if project_id else {}),
        )
    print_json(index.to_dict())


def list_indexes(
    project_id: ProjectId = None,
    api_key: ApiKey = None,
    base_url: BaseUrl = None,
    format: FormatOption = Format.table,
) -> None:
    """List indexes."""
    with client(api_key, base_url) as sdk:
        rows = [
            i.to_dict()
            for i in sdk.indexes.list(**({"project_id": project_id} if project_id else {}))
        ]
    _render("Indexes", rows, ["id", "name", "source_directory_id", "last_synced_at"], format)


def get_index(index_id: IndexId, api_key: ApiKey = None, base_url: BaseUrl = None) -> None:
    """Show an index with its build state."""
    with client(api_key, base_url) as sdk:
        print_json(sdk.indexes.get(index_id, expand=["sync_in_progress"]).to_dict())


def sync_index(
    index_id: IndexId,
    wait: Annotated[bool, typer.Option(help="Wait, with a progress bar, until searchable.")] = True,
    api_key: ApiKey = None,
    base_url: BaseUrl = None,
) -> None:
    """Sync an index: parse new or changed files, drop deleted ones, make it searchable."""
    with client(api_key, base_url) as sdk:
        sdk.indexes.sync(index_id)
        if wait:
            _wait_for_sync(sdk, index_id)
        print_json(sdk.indexes.get(index_id).metadata)


def cancel_sync(index_id: IndexId, api_key: ApiKey = None, base_url: BaseUrl = None) -> None:
    """Cancel an index's running sync."""
    with client(api_key, base_url) as sdk:
        print_json(sdk.indexes.cancel_sync(index_id))


def delete_index(index_id: IndexId, api_key: ApiKey = None, base_url: BaseUrl = None) -> None:
    """Delete an index and everything built from it (its source files stay)."""
    with client(api_key, base_url) as sdk:
        sdk.indexes.delete(index_id)
    print_json({"deleted": index_id})


def _wait_for_sync(sdk: LlamaCloud, index_id: str) -> None:
    """Follow a running sync with a progress bar (files of its current pass done so far)."""
    with _progress() as progress:
        task = progress.add_task("Indexing", total=None)
        while True:
            index = sdk.indexes.get(index_id, expand=["sync_in_progress"])
            state = index.metadata or {}
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


def ingest(
    folder: Annotated[Path, typer.Argument(help="A folder of documents (walked recursively).")],
    index: Annotated[str, typer.Option("--index", help="Index name: created, or reused.")],
    screenshots: Annotated[bool, typer.Option(help="Store page screenshots of PDFs.")] = False,
    project_id: ProjectId = None,
    api_key: ApiKey = None,
    base_url: BaseUrl = None,
) -> None:
    """One step from a folder to a searchable index: directory, upload, index, sync."""
    project = {"project_id": project_id} if project_id else {}
    paths = _walk([folder])
    if not paths:
        fail(f"no files in {folder}")
    with client(api_key, base_url) as sdk:
        existing = next((i for i in sdk.indexes.list(**project) if i.name == index), None)
        if existing is None:
            directory = sdk.beta.directories.create(name=index, **project)
            target = sdk.indexes.create(
                source_directory_id=directory.id,
                name=index,
                store_attachments=["screenshots"] if screenshots else None,
                **project,
            )
        else:
            target = existing
        present = {
            f.display_name
            for f in sdk.beta.directories.files.list(target.source_directory_id, **project)
        }
        new = [p for p in paths if p.name not in present]

        def sync_so_far(uploaded: int) -> None:
            # Indexing starts while the rest uploads: a running sync asked again makes
            # another pass over what arrived meanwhile.
            if uploaded % SYNC_EVERY_FILES == 0:
                sdk.indexes.sync(target.id, **project)

        _upload_into(sdk, target.source_directory_id, new, project, sync_so_far)
        sdk.indexes.sync(target.id, **project)
        _wait_for_sync(sdk, target.id)
        state = sdk.indexes.get(target.id, **project).metadata
    console.print(
        f"Index [bold]{target.id}[/] ({index}): {state.get('files_parsed', 0)} files "
        f"searchable, {state.get('files_failed', 0)} failed, {state.get('chunks', 0)} chunks"
    )
    for failed in state.get("failed_files", []):
        console.print(
            f"  [yellow]failed[/] {failed['file_name']}: {failed['error']}", highlight=False
        )


def retrieve(
    query: Annotated[str, typer.Argument(help="What to search for.")],
    index: Annotated[str, typer.Option("--index", help="Index id (idx-…).")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=500)] = 5,
    api_key: ApiKey = None,
    base_url: BaseUrl = None,
    format: FormatOption = Format.table,
) -> None:
    """Search an index and print the ranked chunks."""
    with client(api_key, base_url) as sdk:
        results = sdk.retrieval.retrieve(index_id=index, query=query, top_k=top_k).results
        names = {f.file_id: f.file_name for f in sdk.retrieval.find(index_id=index, page_size=1000)}
    rows = [
        {
            "rank": i + 1,
            "score": round(r.score or 0, 3),
            "file": names.get(r.static_fields.parsed_directory_file_id, "?"),
            "pages": f"{r.static_fields.page_range_start}-{r.static_fields.page_range_end}",
            "text": r.content[:300],
        }
        for i, r in enumerate(results)
    ]
    _render(f"Results for {query!r}", rows, ["rank", "score", "file", "pages", "text"], format)


def _render(title: str, rows: list[dict[str, Any]], columns: list[str], format: Format) -> None:
    if format is Format.json:
        print_json(rows)
    else:
        print_table(title, rows, columns)
