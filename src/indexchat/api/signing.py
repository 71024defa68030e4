"""Signed, expiring download URLs that this server serves itself (the "presigned URL")."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime


class UrlSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, resource: str, expires_in_seconds: int) -> tuple[int, str]:
        expires = int(time.time()) + expires_in_seconds
        return expires, self._signature(resource, expires)

    def verify(self, resource: str, expires: int, signature: str) -> bool:
        if expires < time.time():
            return False
        return hmac.compare_digest(signature.encode(), self._signature(resource, expires).encode())

    def _signature(self, resource: str, expires: int) -> str:
        message = f"download\n{resource}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:40]


def expiry_datetime(expires: int) -> datetime:
    return datetime.fromtimestamp(expires, UTC)
