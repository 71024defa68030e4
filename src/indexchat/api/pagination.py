"""Opaque page tokens for keyset pagination.

A token is ``base64url(json).base64url(hmac)``: the JSON holds the keyset position; the HMAC
covers it *and* the listing it was issued for (resource + project), so a tampered token, or one
from another project or listing, is rejected rather than silently reinterpreted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from indexchat.errors import InvalidPageToken
from indexchat.storage.paging import Keyset

_MAX_TOKEN_LENGTH = 1024


class PageTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def encode(self, listing: str, position: list[Any]) -> str:
        body = _b64(json.dumps(position, separators=(",", ":")).encode())
        return f"{body}.{self._sign(listing, body)}"

    def decode(self, listing: str, token: str) -> list[Any]:
        if len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 1:
            raise InvalidPageToken("malformed page_token")
        body, signature = token.split(".")
        # Compared as bytes: compare_digest refuses non-ASCII str, and tokens come from anyone.
        if not hmac.compare_digest(signature.encode(), self._sign(listing, body).encode()):
            raise InvalidPageToken(
                "invalid page_token: it was not issued for this listing (altered, or from "
                "another project or query)"
            )
        try:
            position = json.loads(_unb64(body))
        except (ValueError, binascii.Error) as exc:
            raise InvalidPageToken("malformed page_token") from exc
        if not isinstance(position, list):
            raise InvalidPageToken("malformed page_token")
        return position

    def encode_keyset(self, listing: str, keyset: tuple[datetime, str]) -> str:
        moment, row_id = keyset
        return self.encode(listing, [moment.isoformat(), row_id])

    def decode_keyset(self, listing: str, token: str) -> tuple[datetime, str]:
        position = self.decode(listing, token)
        try:
            moment, row_id = position
            return datetime.fromisoformat(moment), str(row_id)
        except (TypeError, ValueError) as exc:
            raise InvalidPageToken("malformed page_token") from exc

    def _sign(self, listing: str, body: str) -> str:
        message = f"{listing}\n{body}".encode()
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest()[:18])


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def page_after(
    tokens: PageTokens, listing: str, token: str | None, keyset: Keyset
) -> list[Any] | None:
    """The typed keyset position a page token stands for (None for the first page)."""
    return keyset.parse(tokens.decode(listing, token)) if token else None


def next_token(tokens: PageTokens, listing: str, position: list[Any] | None) -> str | None:
    return tokens.encode(listing, position) if position is not None else None
