"""Runtime: the process-wide resources built once from Settings (database, signing key)."""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, field, replace

from indexchat.agent.extractive import ExtractiveModel
from indexchat.agent.model import ChatModel
from indexchat.config import Settings
from indexchat.domain import Keys
from indexchat.ingest.parsers import DEFAULT_LIMITS
from indexchat.ingest.sandbox import ParseSandbox, SandboxLimits
from indexchat.search.embeddings import Embedder, LocalEmbedder, make_embedder
from indexchat.search.postgres import PostgresSearchStore
from indexchat.search.rerank import HttpReranker
from indexchat.search.sqlite import SqliteSearchStore
from indexchat.search.store import SearchStore
from indexchat.search.vector_cache import VectorCache
from indexchat.services import tenancy
from indexchat.services.rate_limits import RateLimiter
from indexchat.services.retrieval import Reranking
from indexchat.services.sync import SyncDeps
from indexchat.services.turn_runner import ChatDeps
from indexchat.storage.blobs import BlobStore, LocalBlobStore
from indexchat.storage.db import Database
from indexchat.storage.migrate import upgrade
from indexchat.storage.private import private_dir

log = logging.getLogger("indexchat.runtime")


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keys: Keys
    blobs: BlobStore
    _embedder: Embedder | None = None
    _chat_model: ChatModel | None = None
    _search: SearchStore | None = None
    reranking: Reranking | None = None  # None: no rerank server configured
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _share_failures: RateLimiter | None = None

    @property
    def page_token_secret(self) -> bytes:
        """The key that signs page tokens (and nothing else)."""
        return self.keys.for_purpose("page-token")

    @property
    def share_failures(self) -> RateLimiter:
        """Failed share-link lookups per client address, counted in this process."""
        with self._lock:
            if self._share_failures is None:
                per_minute = self.settings.share_link_failures_per_minute
                self._share_failures = RateLimiter(per_minute, 60.0)
            return self._share_failures

    @property
    def embedder(self) -> Embedder:
        """Built on first use: loading a model takes seconds, and most commands need none."""
        with self._lock:
            if self._embedder is None:
                self._embedder = make_embedder(
                    self.settings.embeddings,
                    cache_dir=self.settings.data_dir / "models",
                    model=self.settings.embedding_model,
                    max_tokens=self.settings.embedding_max_tokens,
                )
            return self._embedder

    @property
    def search(self) -> SearchStore:
        """One store per process: it keeps in-memory copies of indexes' vectors."""
        embedder = self.embedder
        with self._lock:
            if self._search is None:
                cache = VectorCache()
                if self.db.is_sqlite:
                    self._search = SqliteSearchStore(embedder.dimension, cache=cache)
                else:
                    self._search = PostgresSearchStore(embedder.dimension, cache=cache)
            return self._search

    @property
    def chat_model(self) -> ChatModel:
        with self._lock:
            if self._chat_model is None:
                self._chat_model = make_chat_model(self.settings)
            return self._chat_model

    async def release_chat_model(self) -> None:
        """Close the chat model's connections: they belong to the event loop that is ending.
        The next use (on another loop) makes a new model."""
        with self._lock:
            model, self._chat_model = self._chat_model, None
        close = getattr(model, "aclose", None)
        if close is not None:
            await close()

    def chat_deps(self) -> ChatDeps:
        return ChatDeps(
            db=self.db,
            store=self.search,
            embedder=self.embedder,
            blobs=self.blobs,
            reranking=self.reranking,
            model=self.chat_model,
            max_model_calls=self.settings.max_model_calls,
        )

    def sync_deps(self, parser: ParseSandbox) -> SyncDeps:
        return SyncDeps(
            db=self.db, blobs=self.blobs, embedder=self.embedder, store=self.search, parser=parser
        )

    def parse_sandbox(self) -> ParseSandbox:
        """A parser process for one worker thread, with the limits of the settings."""
        settings = self.settings
        parse = replace(
            DEFAULT_LIMITS,
            max_bytes=settings.parse_max_bytes,
            max_unzipped_bytes=settings.parse_max_unzipped_bytes,
            max_unzipped_member_bytes=settings.parse_max_unzipped_member_bytes,
        )
        limits = SandboxLimits(
            timeout_seconds=settings.parse_timeout_seconds,
            memory_bytes=settings.parse_memory_bytes,
            parse=parse,
        )
        return ParseSandbox(limits)

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        """Connect, migrate to the newest schema and make sure the defaults exist."""
        db = open_database(settings)
        with db.read() as tx:
            keys = tenancy.instance_keys(tx)
        blobs = LocalBlobStore(settings.data_dir / "blobs")
        runtime = cls(
            settings=settings,
            db=db,
            keys=keys,
            blobs=blobs,
            reranking=make_reranking(settings),
        )
        with db.write() as tx:
            runtime.search.ensure_schema(tx.connection())
        return runtime

    def warm_up(self) -> None:
        """Load the local embedding model now rather than on the first query (unless it was
        never exported: that waits for the first sync), build the chat model (importing its
        SDK takes seconds, and the first turn would do it on the event loop, stalling every
        request and stream meanwhile), then take everything built so far out of the garbage
        collector's full passes.

        Those objects (modules, the ORM's mappings, the model's wrappers) live as long as the
        process; left in, each full collection walks them all and stalls whatever request is
        running for 35-50 ms (the retrieve p99 on SciFact). Frozen, a full pass takes < 1 ms.
        """
        embedder = self.embedder
        try:
            if isinstance(embedder, LocalEmbedder) and embedder.backend != "torch":
                embedder.load(export=False)
        except Exception:  # the first embed will report it to its caller
            log.exception("loading the embedding model failed")
        try:
            if self.settings.llm == "openai":
                # Imported before taking the lock the chat model is built under, which other
                # lazily built parts share: they are not held up for the import's duration.
                import indexchat.agent.openai_chat  # noqa: F401
            self.chat_model  # noqa: B018 - built now, not by the first turn
        except Exception:  # the first turn will report it to its caller
            log.exception("building the chat model failed")
        gc.freeze()

    def close(self) -> None:
        if self.reranking is not None and isinstance(self.reranking.reranker, HttpReranker):
            self.reranking.reranker.close()
        self.db.dispose()


def open_database(settings: Settings) -> Database:
    private_dir(settings.data_dir)  # the database, the blobs: no other local user may look in
    db = Database(settings.resolved_database_url())
    upgrade(db.engine)
    with db.write() as tx:
        tenancy.ensure_defaults(tx)
    return db


def make_reranking(settings: Settings) -> Reranking | None:
    if not settings.rerank_url:
        return None
    reranker = HttpReranker(
        settings.rerank_url,
        model=settings.rerank_model,
        api_key=settings.rerank_api_key,
        timeout_seconds=settings.rerank_timeout_seconds,
    )
    return Reranking(reranker, candidates=settings.rerank_candidates)


def make_chat_model(settings: Settings) -> ChatModel:
    if settings.llm == "openai":
        from indexchat.agent.openai_chat import OpenAIChatModel  # the SDK is slow to import

        return OpenAIChatModel(
            model=settings.llm_model,
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key,
            timeout_seconds=settings.llm_timeout_seconds,
        )
    return ExtractiveModel()
