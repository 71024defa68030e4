"""Share links: a URL that shows one chat session, live, to anyone holding it.

The token (256 random bits) is returned once and stored only as a hash. A ``read_only`` link
shows the transcript; a ``query`` link also lets its viewer ask, in a fork: a new session in
the owner's project over the same indexes, starting from a copy of the shared history, which
belongs to the viewer's browser (a hash of its own cookie). Revoking the link ends both.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from indexchat.domain import Scope, new_id, utcnow
from indexchat.errors import Conflict, Forbidden, NotFound, RateLimited
from indexchat.services.rate_limits import RateLimiter, whole_seconds
from indexchat.services.sessions import SharedAccess, get_session
from indexchat.services.tenancy import hash_key
from indexchat.storage import attachments
from indexchat.storage import sessions as session_store
from indexchat.storage import share_links as store
from indexchat.storage import tenancy as tenancy_store
from indexchat.storage.tables import Attachment, ChatEvent, ChatSession, ShareFork, ShareLink

TOKEN_BYTES = 32  # 256 bits
TURN_WINDOW = timedelta(hours=1)
_SCREENSHOT = "screenshots/page_{}.png"


@dataclass(frozen=True)
class IssuedLink:
    link: ShareLink
    token: str  # shown once, never stored


@dataclass(frozen=True)
class SharedView:
    """What a valid token opens: the link, and the owner's project it works in."""

    link: ShareLink
    scope: Scope


def create_link(
    tx: Session,
    scope: Scope,
    session_id: str,
    *,
    shared_access: SharedAccess | None,
    expires_in: timedelta | None,
) -> IssuedLink:
    """A new link; without ``shared_access`` it grants what the session's ``shared_access``
    says."""
    chat = get_session(tx, scope, session_id)
    now = utcnow()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = ShareLink(
        id=new_id("shl"),
        project_id=scope.project_id,
        session_id=chat.id,
        token_hash=hash_key(token),
        shared_access=shared_access or chat.shared_access,
        created_at=now,
        expires_at=now + expires_in if expires_in is not None else None,
    )
    tx.add(link)
    tx.flush()
    return IssuedLink(link=link, token=token)


def list_links(tx: Session, scope: Scope, session_id: str) -> Sequence[ShareLink]:
    get_session(tx, scope, session_id)
    return store.of_session(tx, project_id=scope.project_id, session_id=session_id)


def revoke_link(tx: Session, scope: Scope, session_id: str, link_id: str) -> None:
    found = store.revoke(
        tx, project_id=scope.project_id, session_id=session_id, link_id=link_id, now=utcnow()
    )
    if not found:
        raise NotFound(f"share link {link_id!r} not found")


def open_link(tx: Session, token: str) -> SharedView:
    """The view a token opens. Unknown, revoked and expired tokens fail alike."""
    link = store.by_hash(tx, hash_key(token), now=utcnow()) if token else None
    project = tenancy_store.project_by_id(tx, link.project_id) if link else None
    if link is None or project is None:
        raise NotFound("this share link does not exist, was revoked or has expired")
    return SharedView(link=link, scope=Scope(project.organization_id, project.id))


def open_guarded(tx: Session, token: str, *, address: str, limiter: RateLimiter) -> SharedView:
    """``open_link`` for a client at ``address``: refused (RateLimited) once the address has
    failed too often this minute; a failure counts against it."""
    left = limiter.wait(address)
    if left > 0:
        wait = whole_seconds(left)
        raise RateLimited(
            f"too many unknown share links from this address; try again in {wait} s",
            retry_after_seconds=wait,
        )
    try:
        return open_link(tx, token)
    except NotFound:
        limiter.record(address)
        raise


def viewer_fork(tx: Session, view: SharedView, viewer_token: str | None) -> str | None:
    """The session id of the fork this viewer (its cookie's token) made through the link."""
    if not viewer_token:
        return None
    return store.fork_of(tx, link_id=view.link.id, viewer_hash=hash_key(viewer_token))


def fork_for_turn(tx: Session, view: SharedView, viewer_token: str, *, turns_per_hour: int) -> str:
    """The viewer's fork to ask in, made now if it has none. Refused on a ``read_only`` link
    (Forbidden) and past the link's hourly allowance (RateLimited)."""
    if view.link.shared_access != "query":
        raise Forbidden("this share link is read-only: it does not allow asking questions")
    _check_allowance(tx, view.link, turns_per_hour)
    found = viewer_fork(tx, view, viewer_token)
    return found if found is not None else _fork(tx, view, hash_key(viewer_token))


def _check_allowance(tx: Session, link: ShareLink, turns_per_hour: int) -> None:
    now = utcnow()
    asked = store.turns_since(tx, link_id=link.id, since=now - TURN_WINDOW)
    if len(asked) < turns_per_hour:
        return
    # The window frees a place when the oldest question in it turns an hour old.
    oldest = asked[-turns_per_hour] if turns_per_hour else now
    wait = math.ceil((oldest + TURN_WINDOW - now).total_seconds()) if turns_per_hour else 3600
    raise RateLimited(
        f"this share link allows {turns_per_hour} questions an hour; try again in {wait} s",
        retry_after_seconds=wait,
    )


def _fork(tx: Session, view: SharedView, viewer_hash: str) -> str:
    source = get_session(tx, view.scope, view.link.session_id)
    events = _finished_events(session_store.events(tx, session_id=source.id))
    now = utcnow()
    fork = ChatSession(
        id=new_id("ses"),
        project_id=source.project_id,
        index_ids=source.index_ids,
        shared_access="read_only",
        generated_title=source.generated_title,
        session_metadata={
            "forked_from": {
                "session_id": source.id,
                "share_link_id": view.link.id,
                "event_count": len(events),
            }
        },
        created_at=now,
        last_updated_at=now,
    )
    session_store.add(tx, fork)
    tx.add_all(
        ChatEvent(
            session_id=fork.id, seq=e.seq, type=e.type, payload=e.payload, created_at=e.created_at
        )
        for e in events
    )
    try:
        with tx.begin_nested():  # another request of this browser may be forking now
            tx.add(
                ShareFork(
                    link_id=view.link.id,
                    viewer_hash=viewer_hash,
                    session_id=fork.id,
                    copied_events=events[-1].seq if events else 0,
                )
            )
    except IntegrityError:
        raise Conflict(
            "another question from this browser is starting its copy of the chat; ask again "
            "once it has begun"
        ) from None
    return fork.id


def _finished_events(events: Sequence[ChatEvent]) -> Sequence[ChatEvent]:
    """The events of finished turns: a turn still running is not copied."""
    last_stop = max((i for i, e in enumerate(events) if e.type == "stop"), default=-1)
    return events[: last_stop + 1]


def cited_attachment(
    tx: Session, view: SharedView, viewer_token: str | None, source_id: str, name: str
) -> Attachment:
    """An attachment the shared session's events (or the viewer's fork's) cite; nothing else."""
    sessions = [view.link.session_id]
    fork = viewer_fork(tx, view, viewer_token)
    if fork is not None:
        sessions.append(fork)
    payloads = store.tool_results(tx, project_id=view.scope.project_id, session_ids=sessions)
    found = None
    if any((source_id, name) in _citations(p) for p in payloads):
        found = attachments.get(
            tx, project_id=view.scope.project_id, source_id=source_id, name=name
        )
    if found is None:
        raise NotFound(f"attachment {name!r} of {source_id!r} is not part of this chat")
    return found


def _citations(payload: dict[str, Any]) -> Iterable[tuple[str, str]]:
    """(source id, attachment name) pairs a tool result cites: its image attachment, and the
    page screenshots of the passages it returned."""
    image = payload.get("image_attachment")
    if isinstance(image, dict):
        yield str(image.get("source_id")), str(image.get("attachment_name"))
    result = payload.get("result")
    for hit in result if isinstance(result, list) else ():
        if not isinstance(hit, dict) or not isinstance(hit.get("page_start"), int):
            continue
        start = hit["page_start"]
        end = hit["page_end"] if isinstance(hit.get("page_end"), int) else start
        for page in range(start, min(end, start + 50) + 1):
            yield str(hit.get("file_id")), _SCREENSHOT.format(page)


def is_expired(link: ShareLink, now: datetime | None = None) -> bool:
    return link.expires_at is not None and link.expires_at <= (now or utcnow())
