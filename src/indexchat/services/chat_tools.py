"""The agent's tools over the indexes one turn may query, backed by the retrieval services
(in-process, not over HTTP) and scoped to the caller's project like the retrieval API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from indexchat.agent.tools import FIND_FILES, GREP_FILE, READ_FILE, RETRIEVE, ToolError, ToolOutcome
from indexchat.domain import Scope
from indexchat.errors import IndexchatError
from indexchat.search.embeddings import Embedder
from indexchat.search.store import SearchStore
from indexchat.services import retrieval
from indexchat.storage import indexes
from indexchat.storage.blobs import BlobStore
from indexchat.storage.db import Database
from indexchat.storage.tables import ParsedFile

FOUND_FILES_MAX = 50
# Files whose pages mean something to a reader (a Markdown file's "page 1" does not).
PAGED_KINDS = frozenset({"pdf", "pptx"})
GREP_MATCHES_MAX = 20


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetrieveArguments(_Arguments):
    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=8, ge=1, le=20)
    file_id: str | None = None


class FindArguments(_Arguments):
    name: str = Field(min_length=1, max_length=255)
    exact: bool = False


class GrepArguments(_Arguments):
    file_id: str
    pattern: str = Field(min_length=1, max_length=1000)
    context_chars: int = Field(default=200, ge=0, le=2000)


class ReadArguments(_Arguments):
    file_id: str
    offset: int = Field(default=0, ge=0)
    max_length: int = Field(default=6000, ge=1, le=20_000)


@dataclass
class IndexTools:
    db: Database
    store: SearchStore
    embedder: Embedder
    blobs: BlobStore
    scope: Scope
    index_ids: Sequence[str]
    reranking: retrieval.Reranking | None = None

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        tools: dict[str, tuple[type[_Arguments], Callable[[Session, Any], ToolOutcome]]] = {
            RETRIEVE: (RetrieveArguments, self._retrieve),
            FIND_FILES: (FindArguments, self._find),
            GREP_FILE: (GrepArguments, self._grep),
            READ_FILE: (ReadArguments, self._read),
        }
        if name not in tools:
            raise ToolError(f"no tool named {name!r}")
        model, run = tools[name]
        try:
            parsed = model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()
            )
            raise ToolError(f"invalid arguments ({problems})") from exc
        return await anyio.to_thread.run_sync(self._in_session, run, parsed)

    def _in_session(
        self, run: Callable[[Session, Any], ToolOutcome], arguments: Any
    ) -> ToolOutcome:
        try:
            with self.db.read() as tx:
                return run(tx, arguments)
        except IndexchatError as exc:
            raise ToolError(exc.message) from exc

    def _retrieve(self, tx: Session, args: RetrieveArguments) -> ToolOutcome:
        keep = None
        if args.file_id is not None:
            wanted = args.file_id
            keep = lambda _chunk, parsed: parsed.id == wanted  # noqa: E731
        options = retrieval.SearchOptions(top_k=args.top_k, keep=keep)
        hits = [
            hit
            for index_id in self.index_ids
            for hit in retrieval.retrieve(
                tx,
                self.scope,
                self.store,
                self.embedder,
                index_id,
                args.query,
                options,
                self.reranking,
            )
        ]
        hits = sorted(hits, key=_rank, reverse=True)[: args.top_k]
        result = [
            {
                "file_id": h.file.id,
                "file_name": h.file.file_name,
                "index_id": h.file.index_id,
                "page_start": h.chunk.page_start if h.file.kind in PAGED_KINDS else None,
                "page_end": h.chunk.page_end if h.file.kind in PAGED_KINDS else None,
                "chunk_index": h.chunk.chunk_index,
                "score": round(h.score, 4),
                "rerank_score": None if h.rerank_score is None else round(h.rerank_score, 4),
                "content": h.chunk.text,
            }
            for h in hits
        ]
        # The best passage's page screenshot, when the index stored one.
        shown = next((h for h in hits if h.attachments), None)
        image = (
            {"attachment_name": shown.attachments[0], "source_id": shown.file.id} if shown else None
        )
        return ToolOutcome(result, image)

    def _find(self, tx: Session, args: FindArguments) -> ToolOutcome:
        found: list[dict[str, Any]] = []
        for index_id in self.index_ids:
            files, _ = retrieval.find_files(
                tx,
                self.scope,
                index_id,
                file_name=args.name if args.exact else None,
                file_name_contains=None if args.exact else args.name,
                after=None,
                page_size=FOUND_FILES_MAX - len(found),
            )
            found += [
                {
                    "file_id": f.id,
                    "file_name": f.file_name,
                    "index_id": f.index_id,
                    "status": f.status,
                }
                for f in files
            ]
            if len(found) >= FOUND_FILES_MAX:
                break
        return ToolOutcome(found)

    def _grep(self, tx: Session, args: GrepArguments) -> ToolOutcome:
        file, text = self._text(tx, args.file_id)
        matches, _ = retrieval.grep(
            text,
            args.pattern,
            context_chars=args.context_chars,
            start_after=0,
            limit=GREP_MATCHES_MAX,
        )
        return ToolOutcome(
            {
                "file_id": file.id,
                "file_name": file.file_name,
                "matches": [
                    {"content": m.content, "start_char": m.start_char, "end_char": m.end_char}
                    for m in matches
                ],
            }
        )

    def _read(self, tx: Session, args: ReadArguments) -> ToolOutcome:
        file, text = self._text(tx, args.file_id)
        end = min(len(text), args.offset + args.max_length)
        return ToolOutcome(
            {
                "file_id": file.id,
                "file_name": file.file_name,
                "offset": args.offset,
                "total_chars": len(text),
                "content": text[args.offset : end],
            }
        )

    def _text(self, tx: Session, file_id: str) -> tuple[ParsedFile, str]:
        """A parsed file of one of this turn's indexes, and its text."""
        file = indexes.parsed_file(
            tx,
            project_id=self.scope.project_id,
            index_ids=self.index_ids,
            parsed_file_id=file_id,
        )
        if file is None:
            raise ToolError(f"no file {file_id!r} in the indexes of this chat")
        text = retrieval.parsed_text(tx, self.scope, self.blobs, file.index_id, file.id)
        return file, text


def _rank(hit: retrieval.Hit) -> tuple[bool, float]:
    """Hits of several indexes merged: reranked ones by the reranker's score (one model scored
    them all), ahead of any whose index fell back to the hybrid order."""
    if hit.rerank_score is not None:
        return True, hit.rerank_score
    return False, hit.score
