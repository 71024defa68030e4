"""What can go wrong, named for the failure rather than the place. No HTTP here.

    IndexchatError
    ├── NotFound             the object does not exist in the caller's project (or at all)
    ├── Conflict             the request clashes with the object's state (e.g. index set locked)
    │   └── ContentMissing   stored bytes a row names are gone (a sync restores parsed output)
    ├── InvalidInput         the request is well-formed but its values make no sense
    │   └── InvalidPageToken a page token that is malformed, tampered or from another listing
    ├── LimitExceeded        the request is larger than a configured limit
    │   └── RateLimited      too many requests of a kind for now; retry after a while
    ├── Unauthenticated      no API key, an unknown one, or a revoked one (or no sign-in)
    ├── Forbidden            a request that may not be made this way (a cross-site cookie write)
    └── UpstreamFailed       a service this server relies on (an embedding endpoint) failed

Bugs stay plain exceptions.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class IndexchatError(Exception):
    """Base of every expected failure; ``message`` is safe to show to the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def detail(self) -> object:
        """What the caller is told; subclasses may add structure (e.g. an existing id)."""
        return self.message


class NotFound(IndexchatError):
    pass


def must_exist(row: T | None, what: str) -> T:
    """``row``, or ``NotFound`` "<what> not found" when there is none."""
    if row is None:
        raise NotFound(f"{what} not found")
    return row


class Conflict(IndexchatError):
    pass


class ContentMissing(Conflict):
    pass


class InvalidInput(IndexchatError):
    pass


class InvalidPageToken(InvalidInput):
    pass


class LimitExceeded(IndexchatError):
    pass


class RateLimited(LimitExceeded):
    def __init__(self, message: str, *, retry_after_seconds: int = 60) -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1, retry_after_seconds)


class Unauthenticated(IndexchatError):
    pass


class Forbidden(IndexchatError):
    pass


class UpstreamFailed(IndexchatError):
    pass
