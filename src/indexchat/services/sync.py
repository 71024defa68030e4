"""Index sync: parse → chunk → embed → export, incrementally, as a cancellable background job.

A sync compares the source directory with what the index has parsed: new or changed files
(by content hash) are processed, files gone from the source are removed, the rest is left
alone. Files are processed in batches: parse and chunk each file, embed the whole batch at once
(the embedder is much faster on batches), then write the batch in one transaction, so a batch
is either fully searchable or not at all. Between batches the job renews its lease and reports
progress; between files, and while a file is being parsed, it stops if cancelled (killing the
parse); what was committed stays, and the next sync carries on.

Files are parsed in a child process with time and memory limits (``ingest/sandbox.py``). A
file that overruns one fails alone, and its failure is written at once: were the job to be
retried, or the sync run again, that file is not parsed again until its content changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy.orm import Session

from indexchat.domain import new_id, utcnow
from indexchat.errors import ContentMissing
from indexchat.ingest.chunking import TextChunk, chunk, full_text, page_offsets
from indexchat.ingest.parsers import ParseError, too_large
from indexchat.ingest.sandbox import ParseInterrupted, ParseOverrun, ParseSandbox
from indexchat.search.embeddings import Embedder
from indexchat.search.store import Entry, SearchStore
from indexchat.storage import attachments, chunks, files, indexes
from indexchat.storage.blobs import BlobStore
from indexchat.storage.db import Database
from indexchat.storage.tables import (
    Attachment,
    Chunk,
    DirectoryFile,
    Index,
    ParsedFile,
    StoredFile,
)

BATCH_FILES = 32
MAX_REPORTED_FAILURES = 100


class SyncCancelled(Exception):
    pass


@dataclass(frozen=True)
class SyncDeps:
    db: Database
    blobs: BlobStore
    embedder: Embedder
    store: SearchStore
    parser: ParseSandbox


@dataclass(frozen=True)
class SourceFile:
    directory_file_id: str
    name: str
    content_hash: str
    metadata: dict[str, Any]
    size: int = 0


@dataclass
class Prepared:
    """One source file after parse + chunk, before embedding."""

    source: SourceFile
    kind: str | None = None
    error: str | None = None
    overran: bool = False  # the parse was stopped on a time or memory limit, or crashed
    text: str = ""
    page_starts: list[int] = field(default_factory=list)
    chunks: list[TextChunk] = field(default_factory=list)
    screenshots: list[tuple[int, bytes]] = field(default_factory=list)


# Called between batches with progress; raises SyncCancelled to stop.
Checkpoint = Callable[[dict[str, Any]], None]
# Asked between files and during a parse: whether to call the checkpoint now (it will raise).
Interrupted = Callable[[], bool]


def _never() -> bool:
    return False


def run_sync(
    deps: SyncDeps, index_id: str, checkpoint: Checkpoint, interrupted: Interrupted = _never
) -> dict[str, Any]:
    """Bring the index up to date with its source directory; returns the new build state."""
    with deps.db.read() as tx:
        index = indexes.get_for_job(tx, index_id)
        if index is None:
            return {}
        sources = _live_sources(tx, index)
        existing = {f.source_file_id: f for f in indexes.parsed_files(tx, index_id=index_id)}
        screenshots = "screenshots" in (index.store_attachments or [])
        embed = index.vector_target != "DISABLED"  # full text only: no vectors to make
        broken = _broken_outputs(tx, deps.blobs, index)
    todo = [
        s
        for s in sources
        if s.directory_file_id not in existing
        or existing[s.directory_file_id].content_hash != s.content_hash
        or existing[s.directory_file_id].user_metadata != s.metadata
        or existing[s.directory_file_id].id in broken
    ]
    live = {s.directory_file_id for s in sources}
    gone = [f for source_id, f in existing.items() if source_id not in live]
    progress = {"files_total": len(todo), "files_done": 0, "files_removed": len(gone)}
    checkpoint(progress)
    if gone:
        with deps.db.write() as tx:
            for parsed in gone:
                _remove_parsed(tx, deps.store, index, parsed.id)
            indexes.touch(tx, index_id=index_id)
    for start in range(0, len(todo), BATCH_FILES):
        batch = []
        for source in todo[start : start + BATCH_FILES]:
            prepared = _prepare_or_stop(
                deps, source, screenshots, interrupted, progress, checkpoint
            )
            if prepared.overran:  # written at once: a retried job must not parse it again
                with deps.db.write() as tx:
                    _write_batch(tx, deps, index_id, [prepared], None)
            else:
                batch.append(prepared)
        texts = [c.text for p in batch for c in p.chunks]
        vectors = deps.embedder.embed_documents(texts) if texts and embed else None
        with deps.db.write() as tx:
            _write_batch(tx, deps, index_id, batch, vectors)
        progress["files_done"] += min(BATCH_FILES, len(todo) - start)
        checkpoint(progress)
    with deps.db.write() as tx:
        return _finish(tx, index_id)


def _live_sources(tx: Session, index: Index) -> list[SourceFile]:
    rows = files.live_sources(
        tx, project_id=index.project_id, directory_id=index.source_directory_id
    )
    return [SourceFile(r[0], r[1], r[3], r[2] or {}, r[4]) for r in rows]


def _broken_outputs(tx: Session, blobs: BlobStore, index: Index) -> set[str]:
    """Parsed files whose output is gone (its text or a screenshot missing from the blob store,
    or its published file deleted): parsed again, whatever their source says."""
    texts = indexes.text_hashes(tx, index_id=index.id)
    artefacts = attachments.hashes_of_index(tx, index_id=index.id)
    unpublished = files.ids_without_file(
        tx, project_id=index.project_id, directory_id=index.output_directory_id
    )
    named = [*texts, *artefacts]
    # text_hash is selected non-null above.
    broken = {parsed_id for parsed_id, digest in named if not blobs.exists(cast(str, digest))}
    with_text = {parsed_id for parsed_id, _ in texts}
    return broken | (with_text & set(unpublished))


def _prepare_or_stop(
    deps: SyncDeps,
    source: SourceFile,
    screenshots: bool,
    interrupted: Interrupted,
    progress: dict[str, Any],
    checkpoint: Checkpoint,
) -> Prepared:
    """Parse one file, unless the sync is to stop (before it, or while it is parsed)."""
    try:
        if interrupted():
            raise ParseInterrupted
        return _prepare(deps, source, screenshots, interrupted)
    except ParseInterrupted:
        checkpoint(progress)
        raise SyncCancelled from None  # interrupted, yet the checkpoint found nothing to stop


def _prepare(
    deps: SyncDeps, source: SourceFile, screenshots: bool, interrupted: Interrupted
) -> Prepared:
    prepared = Prepared(source=source)
    limits = deps.parser.limits.parse
    if source.size > limits.max_bytes:  # refused unread: the server never holds its bytes
        prepared.error = too_large(source.size, limits)
        return prepared
    try:
        data = deps.blobs.get(source.content_hash)
    except ContentMissing:
        prepared.error = "the file's stored bytes are missing: upload it again"
        return prepared
    try:
        result = deps.parser.parse(
            data, source.name, screenshots=screenshots, interrupted=interrupted
        )
    except ParseError as exc:
        prepared.error, prepared.overran = exc.reason, isinstance(exc, ParseOverrun)
        return prepared
    document = result.document
    prepared.kind = document.kind
    prepared.text = full_text(document)
    prepared.page_starts = page_offsets(document)
    prepared.chunks = chunk(document)
    prepared.screenshots = result.screenshots
    return prepared


def _write_batch(
    tx: Session, deps: SyncDeps, index_id: str, batch: list[Prepared], vectors: Any
) -> None:
    index = indexes.get_for_job(tx, index_id)
    if index is None:  # deleted while we worked
        return
    index.updated_at = utcnow()  # its search entries change: in-memory copies must reload
    connection = tx.connection()
    offset = 0
    for prepared in batch:
        parsed_id = _upsert_parsed(tx, deps, index, prepared)
        rows = [
            Chunk(
                index_id=index_id,
                parsed_file_id=parsed_id,
                chunk_index=c.index,
                text=c.text,
                start_char=c.start_char,
                end_char=c.end_char,
                page_start=c.page_start,
                page_end=c.page_end,
                heading_path=c.heading_path,
                token_count=c.token_estimate,
            )
            for c in prepared.chunks
        ]
        tx.add_all(rows)
        tx.flush()
        deps.store.add(
            connection,
            [
                Entry(row.id, index_id, row.text, None if vectors is None else vectors[offset + i])
                for i, row in enumerate(rows)
            ],
        )
        offset += len(rows)
        for page, png in prepared.screenshots:
            tx.add(
                Attachment(
                    project_id=index.project_id,
                    index_id=index_id,
                    source_id=parsed_id,
                    name=f"screenshots/page_{page}.png",
                    content_hash=deps.blobs.put(png),
                    size_bytes=len(png),
                )
            )
    tx.flush()


def _upsert_parsed(tx: Session, deps: SyncDeps, index: Index, prepared: Prepared) -> str:
    """Create or refresh the parsed file (keeping its id), dropping its old chunks."""
    source = prepared.source
    parsed = indexes.parsed_file_of_source(
        tx, index_id=index.id, source_file_id=source.directory_file_id
    )
    if parsed is None:
        parsed = ParsedFile(
            id=new_id("dfl"), index_id=index.id, source_file_id=source.directory_file_id
        )
        tx.add(parsed)
    else:
        _drop_content(tx, deps.store, index.id, parsed.id)
    text_hash = deps.blobs.put(prepared.text.encode()) if prepared.error is None else None
    parsed.file_name = source.name
    parsed.content_hash = source.content_hash
    parsed.status = "failed" if prepared.error else "parsed"
    parsed.error = prepared.error
    parsed.kind = prepared.kind
    parsed.page_count = len(prepared.page_starts)
    parsed.chunk_count = len(prepared.chunks)
    parsed.text_hash = text_hash
    parsed.page_starts = prepared.page_starts
    parsed.user_metadata = source.metadata
    parsed.updated_at = utcnow()
    tx.flush()
    _publish_output(tx, index, parsed, text_hash, len(prepared.text.encode()))
    return parsed.id


def _publish_output(
    tx: Session, index: Index, parsed: ParsedFile, text_hash: str | None, size: int
) -> None:
    """Mirror the parsed file into the index's output directory (same id)."""
    output = _output_of(tx, index, parsed.id)
    if output is not None and output.file_id is not None:
        files.remove_file(tx, project_id=index.project_id, file_id=output.file_id)
    stored_id = None
    if text_hash is not None:
        stored = StoredFile(
            id=new_id("parsed"),
            project_id=index.project_id,
            name=f"{parsed.file_name}.md",
            file_type="md",
            purpose="parse",
            content_hash=text_hash,
            size_bytes=size,
        )
        tx.add(stored)
        tx.flush()
        stored_id = stored.id
    if output is None:
        tx.add(
            DirectoryFile(
                id=parsed.id,
                directory_id=index.output_directory_id,
                project_id=index.project_id,
                file_id=stored_id,
                display_name=parsed.file_name,
                unique_id=parsed.source_file_id,
                user_metadata=parsed.user_metadata,
            )
        )
    else:
        output.file_id, output.display_name = stored_id, parsed.file_name
        output.user_metadata, output.updated_at = parsed.user_metadata, utcnow()
    tx.flush()


def _output_of(tx: Session, index: Index, parsed_id: str) -> DirectoryFile | None:
    """The parsed file's mirror in the index's output directory (it has the same id)."""
    return files.directory_file(
        tx,
        project_id=index.project_id,
        directory_id=index.output_directory_id,
        directory_file_id=parsed_id,
    )


def _drop_content(tx: Session, store: SearchStore, index_id: str, parsed_id: str) -> None:
    chunk_ids = chunks.ids_of_parsed_file(tx, parsed_id)
    store.remove(tx.connection(), index_id, chunk_ids)
    chunks.remove_of_parsed_file(tx, parsed_id)
    attachments.remove_of_source(tx, parsed_id)


def _remove_parsed(tx: Session, store: SearchStore, index: Index, parsed_id: str) -> None:
    _drop_content(tx, store, index.id, parsed_id)
    output = _output_of(tx, index, parsed_id)
    if output is not None and output.file_id is not None:
        files.remove_file(tx, project_id=index.project_id, file_id=output.file_id)
    indexes.remove_parsed_file(tx, parsed_id)
    files.remove_directory_file(tx, project_id=index.project_id, directory_file_id=parsed_id)


def remove_index_content(tx: Session, store: SearchStore, index: Index) -> None:
    """Everything an index has built, for deleting the index."""
    for parsed_id in indexes.parsed_file_ids(tx, index_id=index.id):
        _remove_parsed(tx, store, index, parsed_id)
    store.drop_index(tx.connection(), index.id)


def _finish(tx: Session, index_id: str) -> dict[str, Any]:
    index = indexes.get_for_job(tx, index_id)
    if index is None:
        return {}
    parsed = indexes.parsed_files(tx, index_id=index_id)
    failed = [f for f in parsed if f.status == "failed"]
    state = {
        "files_total": len(parsed),
        "files_parsed": len(parsed) - len(failed),
        "files_failed": len(failed),
        "chunks": sum(f.chunk_count for f in parsed),
        "failed_files": [
            {"directory_file_id": f.source_file_id, "file_name": f.file_name, "error": f.error}
            for f in failed[:MAX_REPORTED_FAILURES]
        ],
        "last_sync_status": "succeeded",
    }
    now = utcnow()
    index.build_state = state
    index.last_synced_at = index.last_exported_at = index.updated_at = now
    tx.flush()
    return state


def record_failure(tx: Session, index_id: str, status: str, error: str | None) -> None:
    """Keep the last sync's outcome in the index's build state (counts stay as they were)."""
    index = indexes.get_for_job(tx, index_id)
    if index is not None:
        index.build_state = {
            **(index.build_state or {}),
            "last_sync_status": status,
            "last_error": error,
        }
        index.updated_at = utcnow()
        tx.flush()
