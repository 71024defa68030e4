"""Signed, expiring download URLs that this server serves itself (the "presigned URL").

A link names the credential (API key or browser sign-in) that made it, and the signature covers
that name: a download checks that the credential still works, so revoking a key (or signing
out) ends every link it made, whatever the link's own expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from indexchat.api.schemas.files import PresignedURL
from indexchat.domain import Scope
from indexchat.errors import Forbidden
from indexchat.runtime import Runtime
from indexchat.services import tenancy

INVALID_LINK = "download link is invalid or has expired"
ENDED_LINK = (
    "download link no longer works: the API key or sign-in that made it was revoked or has "
    "ended; ask for a new link"
)


class UrlSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, resource: str, expires_in_seconds: int, holder: str) -> tuple[int, str]:
        expires = int(time.time()) + expires_in_seconds
        return expires, self._signature(resource, expires, holder)

    def verify(self, resource: str, expires: int, signature: str, holder: str) -> bool:
        if expires < time.time() or not holder:
            return False
        expected = self._signature(resource, expires, holder)
        return hmac.compare_digest(signature.encode(), expected.encode())

    def _signature(self, resource: str, expires: int, holder: str) -> str:
        message = f"download\n{resource}\n{expires}\n{holder}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:40]


def expiry_datetime(expires: int) -> datetime:
    return datetime.fromtimestamp(expires, UTC)


def _resource(route: str, path: dict[str, str]) -> str:
    return route + "".join(f"\n{name}={value}" for name, value in sorted(path.items()))


def signed_link(
    request: Request, runtime: Runtime, scope: Scope, route: str, lifetime: int, **path: str
) -> PresignedURL:
    """A link to the download route ``route``, bound to the credential that reached ``scope``."""
    holder = scope.credential or ""
    signer = UrlSigner(runtime.keys.for_purpose("download-link"))
    expires, signature = signer.sign(_resource(route, path), lifetime, holder)
    url = request.url_for(route, **path).include_query_params(
        expires=expires, signature=signature, holder=holder
    )
    return PresignedURL(url=str(url), expires_at=expiry_datetime(expires))


@dataclass(frozen=True)
class LinkParams:
    """The query parameters of a signed link."""

    expires: int
    signature: str
    holder: str

    def verify(self, runtime: Runtime, route: str, **path: str) -> bool:
        signer = UrlSigner(runtime.keys.for_purpose("download-link"))
        return signer.verify(_resource(route, path), self.expires, self.signature, self.holder)

    def require_active(self, tx: Session) -> None:
        if not tenancy.credential_is_active(tx, self.holder):
            raise Forbidden(ENDED_LINK)


async def link_params(
    expires: Annotated[int, Query(ge=0, le=2**40)],
    signature: Annotated[str, Query(max_length=64)],
    holder: Annotated[str, Query(max_length=100)] = "",
) -> LinkParams:
    return LinkParams(expires, signature, holder)


SignedLink = Annotated[LinkParams, Depends(link_params)]
