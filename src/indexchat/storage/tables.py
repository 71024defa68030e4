"""The schema, as SQLAlchemy 2 typed models. Changes go through Alembic migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import Index as SqlIndex
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from indexchat.domain import utcnow

# Python None is SQL NULL (not the JSON text 'null'): cheaper to read, and NULL means NULL.
NullableJSON = JSON(none_as_null=True)
# BIGINT on PostgreSQL; INTEGER on SQLite so that it is the rowid and autoincrements.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Moment = DateTime(timezone=False)


class Base(DeclarativeBase):
    pass


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    # Null: the key reaches every project of its organization.
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True
    )
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)


class SignIn(Base):
    """A browser signed in with the ``session`` cookie; only a hash of the cookie is stored.

    Made with an API key, it reaches what the key reaches and ends when the key is revoked.
    Made from a one-time sign-in link (no key), it holds the link's project itself.
    """

    __tablename__ = "sign_ins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True
    )
    api_key_id: Mapped[str | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(Moment, index=True)


class SignInLink(Base):
    """A one-time sign-in link for a project (``indexchat serve`` prints one); deleted on use."""

    __tablename__ = "sign_in_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(Moment)


class InstanceSecret(Base):
    """Secrets minted once per deployment (e.g. the key that signs page tokens)."""

    __tablename__ = "instance_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class StoredFile(Base):
    """An uploaded file; its bytes live in the blob store under ``content_hash``."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    file_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    purpose: Mapped[str] = mapped_column(String(32))
    external_file_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    last_modified_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)


class Directory(Base):
    __tablename__ = "directories"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    type: Mapped[str] = mapped_column(String(16), default="user")
    connector_subscription_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    system_metadata: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)


class DirectoryFile(Base):
    """A file's place in a directory, with its display name, unique id and user metadata."""

    __tablename__ = "directory_files"
    __table_args__ = (SqlIndex("ix_directory_files_directory_unique", "directory_id", "unique_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    file_id: Mapped[str | None] = mapped_column(
        ForeignKey("files.id", ondelete="SET NULL"), nullable=True, index=True
    )
    display_name: Mapped[str] = mapped_column(String(255))
    unique_id: Mapped[str] = mapped_column(String(255))
    external_file_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    user_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)


class Index(Base):
    """An index: the row that describes one searchable collection (its settings and build state).
    The entries that make it searchable are kept by the search store (``search/store.py``)."""

    __tablename__ = "indexes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_directory_id: Mapped[str] = mapped_column(
        ForeignKey("directories.id", ondelete="RESTRICT"), index=True
    )
    output_directory_id: Mapped[str] = mapped_column(ForeignKey("directories.id"))
    sync_config_id: Mapped[str] = mapped_column(String(64))
    export_config_id: Mapped[str] = mapped_column(String(64))
    products: Mapped[list[dict[str, Any]] | None] = mapped_column(NullableJSON, nullable=True)
    store_attachments: Mapped[list[str]] = mapped_column(JSON, default=list)
    sync_frequency: Mapped[str] = mapped_column(String(32), default="manual")
    vector_target: Mapped[str] = mapped_column(String(16), default="DEFAULT")
    build_state: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    last_synced_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)
    last_exported_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)
    # The scheduler's marks: the source directory change its last sync covered, and when it
    # last queued one (sync_frequency on_source_change / daily).
    schedule_seen_change_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)
    last_scheduled_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)


class Lease(Base):
    """A named role one process of a fleet holds at a time (the sync scheduler), until
    ``expires_at`` unless it renews it."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(Moment)


class Job(Base):
    """A durable background job (e.g. an index sync): claimed with a lease, cancellable."""

    __tablename__ = "jobs"
    __table_args__ = (SqlIndex("ix_jobs_claim", "status", "run_after"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    index_id: Mapped[str | None] = mapped_column(
        ForeignKey("indexes.id", ondelete="CASCADE"), nullable=True, index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Asked to sync again while running: the job makes another pass before it finishes.
    rerun_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    run_after: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(Moment, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)


class ChatSession(Base):
    __tablename__ = "chat_sessions"
    __table_args__ = (
        # Keyset pagination walks this index: newest last_updated_at first, id breaks ties.
        SqlIndex("ix_chat_sessions_project_recent", "project_id", "last_updated_at", "id"),
        # The turns running now, for the look a starting server takes at them.
        SqlIndex(
            "ix_chat_sessions_running_turns",
            "turn_id",
            sqlite_where=text("turn_id IS NOT NULL"),
            postgresql_where=text("turn_id IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    index_ids: Mapped[list[str] | None] = mapped_column(NullableJSON, nullable=True)
    shared_access: Mapped[str] = mapped_column(String(16))
    generated_title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    job_metadata: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    last_updated_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    # The turn running now, if any: one at a time per session, across every server process.
    # The process running it is recorded (see indexchat.processes): a turn whose process is
    # gone, or whose heartbeat stopped, is closed by the next server that looks at it.
    turn_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    turn_heartbeat_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)
    turn_cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    turn_owner_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    turn_owner_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    turn_owner_started: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Where the session came from, e.g. ``{"forked_from": {...}}`` for a share link's fork.
    session_metadata: Mapped[dict[str, Any] | None] = mapped_column(
        "metadata", NullableJSON, nullable=True
    )


class ShareLink(Base):
    """A link that shows one chat session to anyone holding it; only a hash of its token is
    stored. ``shared_access`` is what the link grants: reading, or asking in a fork too."""

    __tablename__ = "share_links"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    shared_access: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)


class ShareFork(Base):
    """The session a share link's viewer asks in: one per link and viewer browser, found by a
    hash of the viewer's cookie."""

    __tablename__ = "share_forks"
    __table_args__ = (UniqueConstraint("link_id", "viewer_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    link_id: Mapped[str] = mapped_column(ForeignKey("share_links.id", ondelete="CASCADE"))
    viewer_hash: Mapped[str] = mapped_column(String(64))
    # Events copied from the shared session: the fork's own begin after them.
    copied_events: Mapped[int] = mapped_column(Integer, default=0)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)


class ChatEvent(Base):
    """One event of a session's history, in the order it was produced."""

    __tablename__ = "chat_events"
    __table_args__ = (UniqueConstraint("session_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)


class ParsedFile(Base):
    """One source file as an index has parsed it (table ``index_files``, column
    ``parsed_file_id`` where referenced). Its id is the parsed file's directory-file id in the
    index's output directory (``parsed_directory_file_id`` in retrieval results)."""

    __tablename__ = "index_files"
    __table_args__ = (UniqueConstraint("index_id", "source_file_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    index_id: Mapped[str] = mapped_column(ForeignKey("indexes.id", ondelete="CASCADE"))
    source_file_id: Mapped[str] = mapped_column(String(64))  # the source directory file
    file_name: Mapped[str] = mapped_column(String(255))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # parsed | failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    page_count: Mapped[int] = mapped_column(Integer, default=0)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    # The parsed text's blob (indexed, as every blob column: deleting a blob asks who names it).
    text_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    page_starts: Mapped[list[int]] = mapped_column(JSON, default=list)
    user_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)


class Chunk(Base):
    """A searchable piece of a parsed file; its id is the rowid of the full-text and vector
    entries in the search store."""

    __tablename__ = "chunks"
    __table_args__ = (SqlIndex("ix_chunks_file", "parsed_file_id", "chunk_index"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    index_id: Mapped[str] = mapped_column(ForeignKey("indexes.id", ondelete="CASCADE"), index=True)
    parsed_file_id: Mapped[str] = mapped_column(ForeignKey("index_files.id", ondelete="CASCADE"))
    chunk_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    start_char: Mapped[int] = mapped_column(Integer)
    end_char: Mapped[int] = mapped_column(Integer)
    page_start: Mapped[int | None] = mapped_column(Integer, nullable=True)
    page_end: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heading_path: Mapped[list[str]] = mapped_column(JSON, default=list)
    token_count: Mapped[int] = mapped_column(Integer, default=0)


class Attachment(Base):
    """A stored artefact of a parsed file, e.g. ``screenshots/page_3.png``."""

    __tablename__ = "attachments"
    __table_args__ = (UniqueConstraint("source_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    index_id: Mapped[str] = mapped_column(ForeignKey("indexes.id", ondelete="CASCADE"))
    source_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Moment, default=utcnow)


class SessionText(Base):
    """A searchable text of a chat session: its title, a prompt or an answer. The full-text
    entries over it (``session_text_search``) are kept by the database itself: an FTS5 table
    and triggers on SQLite, an expression GIN index on PostgreSQL (migration 0012)."""

    __tablename__ = "session_texts"
    __table_args__ = (SqlIndex("ix_session_texts_session", "session_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # the event the text came from
    kind: Mapped[str] = mapped_column(String(16))  # title | prompt | answer
    text: Mapped[str] = mapped_column(Text)
