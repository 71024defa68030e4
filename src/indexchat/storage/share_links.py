"""Queries for share links and their viewers' forks. Every query of a project's links takes
``project_id=``; a link found by its token hash brings its project along. Never commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from indexchat.storage.db import rows_touched
from indexchat.storage.tables import ChatEvent, ChatSession, ShareFork, ShareLink


def by_hash(tx: Session, token_hash: str, *, now: datetime) -> ShareLink | None:
    """The live link with this token hash: not revoked, not expired."""
    return tx.scalar(
        select(ShareLink).where(
            ShareLink.token_hash == token_hash,
            ShareLink.revoked_at.is_(None),
            (ShareLink.expires_at.is_(None)) | (ShareLink.expires_at > now),
        )
    )


def of_session(tx: Session, *, project_id: str, session_id: str) -> Sequence[ShareLink]:
    """A session's links that were not revoked, newest first (expired ones too: they say so)."""
    return tx.scalars(
        select(ShareLink)
        .where(
            ShareLink.project_id == project_id,
            ShareLink.session_id == session_id,
            ShareLink.revoked_at.is_(None),
        )
        .order_by(ShareLink.created_at.desc(), ShareLink.id.desc())
    ).all()


def revoke(tx: Session, *, project_id: str, session_id: str, link_id: str, now: datetime) -> bool:
    touched = rows_touched(
        tx,
        update(ShareLink)
        .where(
            ShareLink.id == link_id,
            ShareLink.project_id == project_id,
            ShareLink.session_id == session_id,
            ShareLink.revoked_at.is_(None),
        )
        .values(revoked_at=now),
    )
    return bool(touched)


def fork_of(tx: Session, *, link_id: str, viewer_hash: str) -> str | None:
    """The session id of this viewer's fork made through this link, if any."""
    return tx.scalar(
        select(ShareFork.session_id).where(
            ShareFork.link_id == link_id, ShareFork.viewer_hash == viewer_hash
        )
    )


def turns_since(tx: Session, *, link_id: str, since: datetime) -> Sequence[datetime]:
    """When each prompt asked through this link's forks since ``since`` was asked, oldest first."""
    return tx.scalars(
        select(ChatEvent.created_at)
        .join(ShareFork, ShareFork.session_id == ChatEvent.session_id)
        .where(
            ShareFork.link_id == link_id,
            ChatEvent.seq > ShareFork.copied_events,
            ChatEvent.type == "user_input",
            ChatEvent.created_at > since,
        )
        .order_by(ChatEvent.created_at)
    ).all()


def fork_count(tx: Session, *, link_id: str) -> int:
    counted = select(func.count()).select_from(ShareFork).where(ShareFork.link_id == link_id)
    return int(tx.scalar(counted) or 0)


def tool_results(
    tx: Session, *, project_id: str, session_ids: Sequence[str]
) -> Iterable[dict[str, Any]]:
    """The payloads of the ``tool_result`` events of these sessions of the project (a shared
    session and its viewer's fork), read as the caller iterates."""
    return tx.scalars(
        select(ChatEvent.payload)
        .join(ChatSession, ChatSession.id == ChatEvent.session_id)
        .where(
            ChatSession.project_id == project_id,
            ChatEvent.session_id.in_(session_ids),
            ChatEvent.type == "tool_result",
        )
    )
