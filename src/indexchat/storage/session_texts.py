"""Writes of chat sessions' searchable texts; the database keeps the full-text entries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.orm import Session

from indexchat.storage.tables import SessionText

_INSERT = insert(SessionText)


def add(
    tx: Session, *, project_id: str, session_id: str, texts: Sequence[tuple[int, str, str]]
) -> None:
    """Add (seq, kind, text) entries of a session; empty texts are skipped."""
    rows = [
        {"project_id": project_id, "session_id": session_id, "seq": s, "kind": k, "text": t}
        for s, k, t in texts
        if t.strip()
    ]
    if rows:
        tx.connection().execute(_INSERT, rows)
