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
