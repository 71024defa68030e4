"""Retrieval over an index: hybrid search, find a file by name, grep a file, read a file.

Serves the HTTP API and the chat agent's tools alike; every call is scoped to the caller's
project through the index it names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import regex
from sqlalchemy.orm import Session

from indexchat.domain import Scope
from indexchat.errors import ContentMissing, InvalidInput, NotFound, must_exist
from indexchat.search.embeddings import Embedder
from indexchat.search.fusion import convex
from indexchat.search.rerank import Reranker, RerankFailed
from indexchat.search.store import SearchStore
from indexchat.services.indexes import get_index
from indexchat.storage import attachments as attachment_store
from indexchat.storage import chunks, indexes
from indexchat.storage.blobs import BlobStore
from indexchat.storage.paging import split_page
from indexchat.storage.tables import Attachment, Chunk, ParsedFile

log = logging.getLogger("indexchat.retrieval")

TOP_K_MAX = 500
DEFAULT_TOP_K = 10
# Share of the vector pipeline in the fused score when the caller gives no weights.
DEFAULT_VECTOR_WEIGHT = 0.5
# Candidates taken from each pipeline before fusion; more when filters may drop many. A deeper
# list costs little (full text scores every matching row anyway) and gives the distribution
# normalisation more of each score distribution, which raised SciFact nDCG@10 and recall@100.
CANDIDATES = 400
FILTERED_CANDIDATES = 1000
MAX_CANDIDATES = 4096  # sqlite-vec's largest k
# Hybrid candidates a reranker sees when no other depth is configured (or top_k, if larger).
DEFAULT_RERANK_CANDIDATES = 40
GREP_TIMEOUT_SECONDS = 1.0
FIND_ORDER = indexes.PARSED_FILE_ORDER


@dataclass(frozen=True, slots=True)
class HitChunk:
    """What a hit carries of its chunk row (read without the ORM: a top-100 answer is 100 of
    them, and building ORM objects was a quarter of the call)."""

    id: int
    chunk_index: int
    text: str
    start_char: int
    end_char: int
    page_start: int | None
    page_end: int | None
    token_count: int


@dataclass(frozen=True, slots=True)
class HitFile:
    """What a hit carries of its parsed file."""

    id: str
    index_id: str
    file_name: str
    kind: str | None
    user_metadata: dict[str, Any]


@dataclass(frozen=True)
class Hit:
    chunk: HitChunk
    file: HitFile
    score: float  # the hybrid score
    attachments: list[str]
    rerank_score: float | None = None  # set when a reranker ordered the hits


@dataclass(frozen=True)
class Reranking:
    """A reranker and how many of the best hybrid candidates it reorders."""

    reranker: Reranker
    candidates: int = DEFAULT_RERANK_CANDIDATES


@dataclass(frozen=True)
class SearchOptions:
    top_k: int = DEFAULT_TOP_K
    vector_weight: float = DEFAULT_VECTOR_WEIGHT
    text_weight: float = 1 - DEFAULT_VECTOR_WEIGHT
    score_threshold: float | None = None
    # Reorder with the reranker, when one is configured; rerank_top_n caps the hits either way.
    rerank: bool = True
    rerank_top_n: int | None = None
    # Candidates taken from each pipeline; None picks a depth from top_k and the filters.
    candidates: int | None = None
    # Keep a candidate or not, given its chunk and parsed file.
    keep: Callable[[HitChunk, HitFile], bool] | None = None


def retrieve(
    tx: Session,
    scope: Scope,
    store: SearchStore,
    embedder: Embedder,
    index_id: str,
    query: str,
    options: SearchOptions,
    reranking: Reranking | None = None,
) -> list[Hit]:
    """The best chunks of one index for ``query``: hybrid search, then the reranker (when one
    is given and ``options.rerank``) over the best ``reranking.candidates`` of them."""
    index = get_index(tx, scope, index_id)
    if not query.strip():
        raise InvalidInput("query must not be empty")
    if index.vector_target == "DISABLED":  # it has no vectors: full text decides alone
        options = replace(options, vector_weight=0.0, text_weight=1.0)
    connection = tx.connection()
    limit = options.candidates or (
        max(CANDIDATES, options.top_k * 2) if options.keep is None else FILTERED_CANDIDATES
    )
    limit = min(limit, MAX_CANDIDATES)
    text = store.text_search(connection, index.id, query, limit) if options.text_weight else []
    vector = (
        store.vector_search(
            connection, index.id, embedder.embed_query(query), limit, version=index.updated_at
        )
        if options.vector_weight
        else []
    )
    fused = convex(
        text, vector, text_weight=options.text_weight, vector_weight=options.vector_weight
    )
    wanted = min(options.top_k, options.rerank_top_n or TOP_K_MAX)
    reranking = reranking if options.rerank else None
    pool = max(wanted, reranking.candidates) if reranking is not None else wanted
    hits = _select(tx, fused, options, pool)
    if reranking is not None:
        hits = _reranked(reranking.reranker, query, hits, wanted)
    # Screenshots exist only for indexes made to store them (a setting fixed at creation).
    if "screenshots" not in (index.store_attachments or ()):
        return hits
    return _with_attachments(tx, hits)


def _select(
    tx: Session, fused: Sequence[tuple[int, float]], options: SearchOptions, wanted: int
) -> list[Hit]:
    """The best candidates that pass the threshold and filters, up to ``wanted``.

    Rows are loaded in batches as the ranking is walked, so a chunk's text is read only for
    candidates that can still be returned (most fused candidates are cut)."""
    hits: list[Hit] = []
    position = 0
    while position < len(fused) and len(hits) < wanted:
        # Filters may drop most candidates: read ahead more when they apply.
        size = (wanted - len(hits)) * (1 if options.keep is None else 4)
        batch = fused[position : position + max(size, 8)]
        position += len(batch)
        rows = _load(tx, [chunk_id for chunk_id, _ in batch])
        for chunk_id, score in batch:
            if options.score_threshold is not None and score < options.score_threshold:
                return hits
            if chunk_id not in rows:  # removed since the search ran
                continue
            chunk, parsed = rows[chunk_id]
            if options.keep is not None and not options.keep(chunk, parsed):
                continue
            hits.append(Hit(chunk, parsed, score, []))
            if len(hits) == wanted:
                return hits
    return hits


def _reranked(reranker: Reranker, query: str, hits: list[Hit], wanted: int) -> list[Hit]:
    """The hits in the reranker's order, cut to ``wanted``. A provider fault is not the
    caller's: the hybrid order stands, and the log says why."""
    if not hits:
        return hits
    try:
        ranked = reranker.rerank(query, [h.chunk.text for h in hits], wanted)
    except RerankFailed as exc:
        log.warning("reranking skipped, hits keep the hybrid order: %s", exc)
        return hits[:wanted]
    return [replace(hits[r.index], rerank_score=r.score) for r in ranked]


# The columns of HitChunk then HitFile, in their field order (the attribute names are the same).
_read_hit_rows = chunks.reader_with_parsed_files(
    (
        *(getattr(Chunk, f.name) for f in fields(HitChunk)),
        *(getattr(ParsedFile, f.name) for f in fields(HitFile)),
    )
)
_CHUNK_COLUMNS = len(fields(HitChunk))


def _load(tx: Session, chunk_ids: Sequence[int]) -> dict[int, tuple[HitChunk, HitFile]]:
    if not chunk_ids:
        return {}
    rows = _read_hit_rows(tx, chunk_ids)
    files: dict[str, HitFile] = {}  # one per file, however many of its chunks hit
    loaded = {}
    for row in rows:
        chunk = HitChunk(*row[:_CHUNK_COLUMNS])
        file_id = row[_CHUNK_COLUMNS]
        if file_id not in files:
            *columns, metadata = row[_CHUNK_COLUMNS:]  # user_metadata last: NULL reads as {}
            # mypy spreads *columns over every field, leaving none for the last argument.
            files[file_id] = HitFile(*columns, metadata or {})  # type: ignore[call-arg]
        loaded[chunk.id] = (chunk, files[file_id])
    return loaded


def _screenshot(hit: Hit) -> tuple[str, str]:
    """(source id, attachment name) of the screenshot of a hit's first page."""
    return hit.file.id, f"screenshots/page_{hit.chunk.page_start}.png"


def _with_attachments(tx: Session, hits: list[Hit]) -> list[Hit]:
    """Attach the screenshot of each hit's first page, when one was stored."""
    wanted = {_screenshot(h) for h in hits}
    if not wanted:
        return hits
    found = attachment_store.stored_names(
        tx,
        source_ids={source for source, _ in wanted},
        names={name for _, name in wanted},
    )
    return [
        replace(h, attachments=[_screenshot(h)[1]] if _screenshot(h) in found else []) for h in hits
    ]


def find_files(
    tx: Session,
    scope: Scope,
    index_id: str,
    *,
    file_name: str | None,
    file_name_contains: str | None,
    after: Sequence[Any] | None,
    page_size: int,
) -> tuple[list[ParsedFile], list[Any] | None]:
    index = get_index(tx, scope, index_id)
    rows = indexes.find_parsed_files(
        tx,
        project_id=scope.project_id,
        index_id=index.id,
        file_name=file_name,
        file_name_contains=file_name_contains,
        after=after,
        limit=page_size + 1,
    )
    return split_page(rows, page_size, FIND_ORDER)


def parsed_text(tx: Session, scope: Scope, blobs: BlobStore, index_id: str, file_id: str) -> str:
    index = get_index(tx, scope, index_id)
    parsed = indexes.parsed_file(
        tx, project_id=scope.project_id, index_ids=[index.id], parsed_file_id=file_id
    )
    if parsed is None:
        raise NotFound(f"file {file_id!r} not found in index {index_id!r}")
    if parsed.text_hash is None:
        raise InvalidInput(f"file {file_id!r} has no parsed text: {parsed.error}")
    try:
        return blobs.get(parsed.text_hash).decode()
    except ContentMissing:
        raise ContentMissing(
            f"the parsed text of file {file_id!r} is missing: sync index {index_id!r} again "
            "to restore it"
        ) from None


@dataclass(frozen=True)
class GrepMatch:
    content: str
    start_char: int
    end_char: int


def grep(
    text: str, pattern: str, *, context_chars: int, start_after: int, limit: int
) -> tuple[list[GrepMatch], int | None]:
    """Regex matches from offset ``start_after``; the time limit guards against patterns with
    catastrophic backtracking. Returns the matches and where the next page starts."""
    try:
        compiled = regex.compile(pattern)
    except regex.error as exc:
        raise InvalidInput(f"invalid regular expression: {exc}") from exc
    matches: list[GrepMatch] = []
    try:
        for match in compiled.finditer(text, pos=start_after, timeout=GREP_TIMEOUT_SECONDS):
            start, end = match.span()
            if len(matches) == limit:
                return matches, start
            lo, hi = max(0, start - context_chars), min(len(text), end + context_chars)
            matches.append(GrepMatch(text[lo:hi], start, end))
    except TimeoutError as exc:
        raise InvalidInput(
            f"regular expression took longer than {GREP_TIMEOUT_SECONDS:g}s; simplify it"
        ) from exc
    return matches, None


def attachment(tx: Session, scope: Scope, source_id: str, name: str) -> Attachment:
    """One attachment of a parsed file (``source_id``: see ``attachments``)."""
    for parsed_id in _parsed_ids(tx, scope, source_id):
        found = attachment_store.get(
            tx, project_id=scope.project_id, source_id=parsed_id, name=name
        )
        if found is not None:
            return found
    raise NotFound(f"attachment {name!r} not found for {source_id!r}")


def attachment_for_download(tx: Session, attachment_id: int) -> Attachment:
    """The attachment a signed download link names (the signature stands for the project)."""
    return must_exist(
        attachment_store.get_for_download(tx, attachment_id), f"attachment {attachment_id}"
    )


def attachments(tx: Session, scope: Scope, source_id: str) -> list[Attachment]:
    """The attachments of a parsed file, pages in page order (page_2 before page_10).
    ``source_id`` is the parsed file's id (``parsed_directory_file_id`` in retrieval results),
    or the directory file or uploaded file it was parsed from: then its newest parse."""
    for parsed_id in _parsed_ids(tx, scope, source_id):
        found = attachment_store.of_source(tx, project_id=scope.project_id, source_id=parsed_id)
        if found:
            return sorted(found, key=lambda a: _natural_key(a.name))
    return []


def _parsed_ids(tx: Session, scope: Scope, source_id: str) -> Sequence[str]:
    """The parsed files ``source_id`` may name: itself, else those parsed from the directory
    file or the uploaded file of that id (newest first)."""
    parsed = indexes.parsed_file_ids_from(tx, project_id=scope.project_id, source_id=source_id)
    return [source_id, *parsed]


def _natural_key(name: str) -> list[tuple[int, int | str]]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(name)]


_DIGITS = regex.compile(r"(\d+)")


def filter_matches(actual: Any, operator: str, expected: Any) -> bool:
    """One filter condition; a missing value never matches (except ``ne`` / ``nin``)."""
    if operator in ("in", "nin"):
        options = expected if isinstance(expected, list) else [expected]
        hit = actual in options or (isinstance(actual, list) and any(a in options for a in actual))
        return hit if operator == "in" else not hit
    if operator == "eq":
        return actual == expected or (isinstance(actual, list) and expected in actual)
    if operator == "ne":
        return actual != expected
    if actual is None or isinstance(expected, list):
        return False
    try:
        return {
            "gt": actual > expected,
            "gte": actual >= expected,
            "lt": actual < expected,
            "lte": actual <= expected,
        }[operator]
    except TypeError:  # e.g. comparing a string field with a number
        return False
