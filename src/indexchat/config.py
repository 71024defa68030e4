"""Settings: read once at the entry point (CLI callback or ``create_app``) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("indexchat", appauthor=False))


class Settings(BaseSettings):
    """Every setting of an indexchat deployment. Env vars use the ``INDEXCHAT_`` prefix."""

    model_config = SettingsConfigDict(env_prefix="INDEXCHAT_", extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder holding the SQLite database and uploaded files (embedded default).",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("INDEXCHAT_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db. "
        "Unset: SQLite in the data dir.",
    )
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the server listens on.")
    default_shared_access: Literal["read_only", "query"] = Field(
        default="read_only",
        description="Share-link grant of a session created without shared_access.",
    )
    max_upload_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=1,
        description="Largest file accepted by an upload (bytes); larger uploads answer 413.",
    )
    blob_grace_seconds: float = Field(
        default=600,
        ge=0,
        description="Age under which stored bytes that no row names are kept: an upload of "
        "the same bytes may be about to name them.",
    )
    blob_collect_seconds: float = Field(
        default=3600,
        ge=0,
        description="How often a worker removes stored bytes that no row names and that are "
        "older than blob_grace_seconds; one worker of a fleet does at a time. 0: never.",
    )
    download_link_seconds: int = Field(
        default=3600,
        ge=1,
        le=7 * 24 * 3600,
        description="Lifetime of a signed download link whose request names none (seconds). "
        "A link also stops working once the API key or sign-in that made it is revoked.",
    )
    embeddings: Literal["local", "local-onnx", "local-torch", "openai"] = Field(
        default="local",
        description="Embedding provider: the bundled all-MiniLM-L6-v2, offline (local: ONNX "
        "int8; local-onnx: float; local-torch: the original on torch, needs the torch extra), "
        "or an OpenAI-compatible /embeddings endpoint (openai; OPENAI_BASE_URL, OPENAI_API_KEY).",
    )
    embedding_model: str | None = Field(
        default=None,
        description="Embedding model name for the openai provider (e.g. text-embedding-3-small).",
    )
    embedding_max_tokens: int = Field(
        default=256,
        ge=1,
        le=512,
        description="Tokens of each passage the local model embeds (default: its own limit, "
        "256); 128 embeds about 2x faster at slightly lower retrieval quality.",
    )
    rerank_url: str | None = Field(
        default=None,
        description="Endpoint of a rerank server speaking the common /rerank protocol "
        "(vLLM, llama.cpp server, Hugging Face TEI, Jina, Cohere), e.g. "
        "http://localhost:8000/v1/rerank. Unset: no reranking, rerank_score stays null.",
    )
    rerank_model: str | None = Field(
        default=None,
        description="Model name sent to the rerank server (e.g. BAAI/bge-reranker-v2-m3).",
    )
    rerank_api_key: str | None = Field(
        default=None, description="Bearer key for the rerank server (local servers need none)."
    )
    rerank_candidates: int = Field(
        default=40,
        ge=1,
        le=500,
        description="Best hybrid candidates the reranker reorders (or top_k, if larger).",
    )
    rerank_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Longest wait for the rerank server; past it results keep the hybrid order.",
    )
    run_worker: bool = Field(
        default=True,
        description="Run the background job worker inside the server process.",
    )
    job_lease_seconds: float = Field(
        default=60,
        gt=0,
        description="How long a job stays claimed without a sign of life from its worker; "
        "a killed worker's job is taken over by another worker after this.",
    )
    schedule_tick_seconds: float = Field(
        default=15,
        gt=0,
        description="How often the worker looks for scheduled syncs (indexes with "
        "sync_frequency daily or on_source_change); one worker of a fleet does at a time.",
    )
    source_change_debounce_seconds: float = Field(
        default=30,
        ge=0,
        description="Quiet time after the last change to a source directory before an "
        "on_source_change index syncs: a burst of uploads gives one sync.",
    )
    daily_sync_seconds: float = Field(
        default=86_400,
        gt=0,
        description="Period of sync_frequency daily, counted from the last sync (24 h).",
    )
    llm: Literal["extractive", "openai"] = Field(
        default="extractive",
        description="Who answers chat turns: extractive (no model, offline: quotes the best "
        "passages with citations) or openai (any OpenAI-compatible Chat Completions server).",
    )
    llm_model: str = Field(
        default="gpt-4o-mini",
        description="Model name for the openai provider (e.g. llama3.1 on Ollama).",
    )
    llm_base_url: str | None = Field(
        default=None,
        description="Base URL of the OpenAI-compatible server, e.g. http://localhost:11434/v1. "
        "Unset: OPENAI_BASE_URL, else api.openai.com.",
    )
    llm_api_key: str | None = Field(
        default=None, description="API key for the openai provider. Unset: OPENAI_API_KEY."
    )
    llm_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Longest wait for the language model (seconds)."
    )
    parse_timeout_seconds: float = Field(
        default=120,
        gt=0,
        description="Longest a sync may spend parsing one file; past it the parse is killed "
        "and the file fails with a parse time limit error.",
    )
    parse_memory_bytes: int = Field(
        default=2 * 1024**3,
        ge=512 * 1024**2,  # the parsers' libraries alone map a good part of it (BENCHMARKS.md)
        description="Address space the process parsing a file may use (bytes, RLIMIT_AS); "
        "a file that needs more fails with a parse memory limit error.",
    )
    parse_max_bytes: int = Field(
        default=100 * 1024**2,
        ge=1,
        description="Largest file a sync parses (bytes); a larger one fails as too large "
        "without being read.",
    )
    parse_max_unzipped_bytes: int = Field(
        default=200 * 1024**2,
        ge=1,
        description="Most bytes the members of one Word, PowerPoint or Excel file may expand "
        "to in total; a larger one fails as a possible zip bomb before it is parsed.",
    )
    parse_max_unzipped_member_bytes: int = Field(
        default=64 * 1024**2,
        ge=1,
        description="Most bytes one member of a Word, PowerPoint or Excel file (e.g. "
        "word/document.xml) may expand to; a larger one fails as a possible zip bomb.",
    )
    worker_threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Jobs one worker process (or the server's in-process worker) runs at "
        "once; a project runs one job at a time, so one project's long sync leaves the "
        "others free to run.",
    )
    max_model_calls: int = Field(
        default=8, ge=1, le=50, description="Most model calls one chat turn may make."
    )
    max_json_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body of every route but the uploads, whatever its "
        "content type (bytes); larger bodies answer 413.",
    )
    session_cookie_days: float = Field(
        default=14,
        gt=0,
        le=3650,
        description="How long a browser stays signed in (the `session` cookie) after it last "
        "opened a page.",
    )
    rate_limit_requests: int = Field(
        default=6000,
        ge=0,
        description="Requests one API key or browser sign-in may make to the API per "
        "rate_limit_window_seconds, counted by each server process; more answer 429 with "
        "Retry-After. 0: no limit.",
    )
    rate_limit_window_seconds: float = Field(
        default=60,
        gt=0,
        le=86_400,
        description="The window of rate_limit_requests (seconds).",
    )
    rate_limit_burst: int = Field(
        default=2000,
        ge=1,
        description="Requests one API key or browser sign-in may make at once before the "
        "pace of rate_limit_requests per window applies.",
    )
    share_link_turns_per_hour: int = Field(
        default=20,
        ge=0,
        le=100_000,
        description="Questions the viewers of one `query` share link may ask in an hour, all "
        "of them together; more answer 429 with Retry-After.",
    )
    share_link_failures_per_minute: int = Field(
        default=30,
        ge=1,
        le=100_000,
        description="Unknown, revoked or expired share-link tokens one client address may try "
        "in a minute; past that its share-link requests answer 429 for the rest of the minute.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses (or networks) of reverse proxies whose "
        "X-Forwarded-Proto and X-Forwarded-For headers are believed; unset: none are.",
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'indexchat.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")
