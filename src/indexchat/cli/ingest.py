"""``indexchat ingest``: make an index mirror a folder (directory, upload, index, sync).

Each file is known by its path inside the folder (the directory file's ``unique_id``) and its
content by its sha256, recorded in the directory file's metadata when it is uploaded. A re-run
uploads new files, uploads changed ones again, with ``--delete`` removes files gone from the
folder, and leaves the rest alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from indexchat.cli.documents import Screenshots, upload_into, wait_for_sync, walk
from indexchat.cli.output import console, fail
from indexchat.cli.sdk import Api, Scope, api_command

if TYPE_CHECKING:
    from llama_cloud import LlamaCloud

# Ask for a sync after every this many uploads (and once at the end), so indexing starts
# while the rest uploads.
SYNC_EVERY_FILES = 200
HASH_KEY = "sha256"


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)


@dataclass
class Plan:
    """What a run changes: local paths to upload (new or changed) and remote files to drop."""

    added: list[tuple[str, Path, str]] = field(default_factory=list)  # (key, path, sha256)
    updated: list[tuple[str, Path, str]] = field(default_factory=list)
    gone: list[Any] = field(default_factory=list)  # directory files no longer in the folder
    replaced: list[Any] = field(default_factory=list)  # old versions of updated files
    unchanged: int = 0


def plan(folder: Path, paths: list[Path], remote: list[Any]) -> Plan:
    """Compare the folder with the directory's files by path and content hash."""
    by_key = {f.unique_id: f for f in remote}
    result = Plan()
    for path in paths:
        key = path.relative_to(folder).as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        existing = by_key.pop(key, None)
        if existing is None:
            result.added.append((key, path, digest))
        elif (existing.metadata or {}).get(HASH_KEY) != digest:
            result.updated.append((key, path, digest))
            result.replaced.append(existing)
        else:
            result.unchanged += 1
    result.gone = sorted(by_key.values(), key=lambda f: f.unique_id)
    return result


@api_command
def ingest(
    folder: Annotated[Path, typer.Argument(help="A folder of documents (walked recursively).")],
    index: Annotated[
        str, typer.Option("--index", help="Index name (created if new) or id (idx-…).")
    ],
    api: Api,
    screenshots: Screenshots = False,
    delete: Annotated[
        bool, typer.Option("--delete", help="Remove files that are no longer in the folder.")
    ] = False,
) -> None:
    """One step from a folder to a searchable index that mirrors it: new files are added,
    changed ones uploaded again, and (with --delete) files gone from the folder removed."""
    if not folder.is_dir():
        fail(f"not a folder: {folder}")
    paths = walk([folder])
    if not paths and not delete:
        fail(f"no files in {folder}")
    with api.client() as sdk:
        target = _index_named(sdk, index, screenshots, api.scope)
        directory_id = target.source_directory_id
        remote = list(sdk.beta.directories.files.list(directory_id, **api.scope))
        changes = plan(folder, paths, remote)
        for old in changes.replaced + (changes.gone if delete else []):
            sdk.beta.directories.files.delete(old.id, directory_id=directory_id, **api.scope)

        def sync_so_far(uploaded: int) -> None:
            # A running sync asked again makes another pass over what arrived meanwhile.
            if uploaded % SYNC_EVERY_FILES == 0:
                sdk.indexes.sync(target.id, **api.scope)

        uploads = [
            (path, {"unique_id": key, "metadata": json.dumps({HASH_KEY: digest})})
            for key, path, digest in changes.added + changes.updated
        ]
        if uploads:
            upload_into(sdk, directory_id, uploads, api.scope, sync_so_far)
        sdk.indexes.sync(target.id, **api.scope)
        wait_for_sync(sdk, target.id, api.scope)
        state = sdk.indexes.get(target.id, **api.scope).metadata or {}
    _summarise(target.id, target.name, changes, delete, state)


def _index_named(sdk: LlamaCloud, name: str, screenshots: bool, scope: Scope) -> Any:
    """The project's index with that id or name, or a new one of that name over a new
    directory."""
    known = list(sdk.indexes.list(**scope))
    named = [i for i in known if i.id == name] or [i for i in known if i.name == name]
    if not named and name.startswith("idx-"):
        fail(f"no index {name!r} in this project (give a name to create one)")
    if len(named) > 1:
        ids = ", ".join(i.id for i in named)
        fail(f"{len(named)} indexes are named {name!r}; ingest into one by id: {ids}")
    if named:
        return named[0]
    directory = sdk.beta.directories.create(name=name, **scope)
    return sdk.indexes.create(
        source_directory_id=directory.id,
        name=name,
        store_attachments=["screenshots"] if screenshots else None,
        **scope,
    )


def _summarise(
    index_id: str, name: str, changes: Plan, deleted: bool, state: dict[str, Any]
) -> None:
    from rich.markup import escape

    removed = len(changes.gone) if deleted else 0
    console.print(
        f"Index [bold]{index_id}[/] ({escape(name)}): {len(changes.added)} added, "
        f"{len(changes.updated)} updated, {removed} removed, {changes.unchanged} unchanged; "
        f"{state.get('files_parsed', 0)} files searchable, {state.get('files_failed', 0)} "
        f"failed, {state.get('chunks', 0)} chunks",
        highlight=False,
    )
    if changes.gone and not deleted:
        listed = escape(", ".join(f.unique_id for f in changes.gone[:5]))
        more = f" and {len(changes.gone) - 5} more" if len(changes.gone) > 5 else ""
        console.print(
            f"  [yellow]{len(changes.gone)} indexed files are no longer in the folder[/] "
            f"({listed}{more}); run again with --delete to remove them",
            highlight=False,
        )
    for failed in state.get("failed_files", []):
        console.print(
            f"  [yellow]failed[/] {escape(failed['file_name'])}: {escape(failed['error'])}",
            highlight=False,
        )
