"""What a request must pass before a route reads it: its credential within its rate limit, its
credential checked before its body is read, a body size bound by route whatever its content
type, query parameters given once and without NUL characters.

These are plain ASGI middlewares: they act on the raw request, before FastAPI parses a body or
spools an upload to disk.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from fastapi import HTTPException
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indexchat.api.errors import error_response, known_error_response
from indexchat.domain import Principal
from indexchat.errors import IndexchatError, RateLimited
from indexchat.services.rate_limits import RateLimiter, whole_seconds
from indexchat.web.auth import COOKIE

# Where a request's already-checked principal is kept (``scope["state"]``, per request).
PRINCIPAL_STATE = "indexchat.principal"

# Multipart bodies carry a few form fields around the file.
_MULTIPART_ROOM = 1024 * 1024


def principal_of(request: Request) -> Principal | None:
    """The principal ``CredentialsFirst`` checked for this request, if it did."""
    principal: Principal | None = request.scope.get("state", {}).get(PRINCIPAL_STATE)
    return principal


class CredentialsFirst:
    """Authenticate a request that has a body before anything reads the body: an unauthenticated
    client cannot make the server buffer a body or spool an upload (a 300 MB upload without a
    valid key answers 401 as soon as its headers arrive)."""

    def __init__(
        self,
        app: ASGIApp,
        authenticate: Callable[[Request], Awaitable[Principal]],
        prefixes: tuple[str, ...],
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not _has_body(scope)
            or not scope["path"].startswith(self.prefixes)
        ):
            await self.app(scope, receive, send)
            return
        try:
            principal = await self.authenticate(Request(scope))
        except IndexchatError as exc:
            await known_error_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        await self.app(scope, receive, send)


class RateLimit:
    """Refuse (429 with Retry-After) the requests of one credential, an API key or a browser
    sign-in's cookie, past its allowance. Checked on the raw request before anything else is
    done for it (no database lookup), so the credential counted is the one sent: an unknown
    key is counted too, and answered 401 while it has allowance left."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.limiter = limiter
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            credential = _credential(scope)
            if credential is not None:
                wait = self.limiter.take(credential)
                if wait > 0:
                    await known_error_response(self._refusal(wait))(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _refusal(self, wait: float) -> RateLimited:
        limiter, seconds = self.limiter, whole_seconds(wait)
        return RateLimited(
            f"too many requests with this credential (at most {limiter.requests} every "
            f"{limiter.window_seconds:g} s); try again in {seconds} s",
            retry_after_seconds=seconds,
        )


def _credential(scope: Scope) -> tuple[str, int] | None:
    """What the request authenticates with, as the route would choose it (a Bearer key wins
    over the cookie); hashed, so the limiter's table holds no secrets. Read from the raw
    header bytes: this runs on every API request."""
    cookies = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            token = value[7:].strip()
            if value[:7].lower() == b"bearer " and token:
                return ("key", hash(token))
        elif name == b"cookie":
            cookies = value
    if cookies is not None and _COOKIE_NAME in cookies:
        cookie = cookie_parser(cookies.decode("latin-1")).get(COOKIE)
        if cookie:
            return ("sign-in", hash(cookie))
    return None


_COOKIE_NAME = COOKIE.encode()


class BodyLimit:
    """Refuse a body above its route's limit with 413 before anything reads it into memory:
    uploads may be as large as an uploaded file may be, every other body is small."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, max_upload_bytes: int, upload_paths: re.Pattern[str]
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes + _MULTIPART_ROOM
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        limit = self.max_upload_bytes if self.upload_paths.match(scope["path"]) else self.max_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await error_response(413, _too_large_detail(limit))(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                # FastAPI passes HTTPException through its body parsing untouched.
                raise HTTPException(413, _too_large_detail(limit))
            return message

        await self.app(scope, counting_receive, send)


class QueryRules:
    """Refuse (422, naming the parameter) a scalar query parameter given twice, instead of
    silently keeping one, and a value holding a NUL character, on every backend alike."""

    def __init__(self, app: ASGIApp, repeatable: frozenset[str]) -> None:
        self.app = app
        self.repeatable = repeatable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            pairs = parse_qsl(scope["query_string"].decode("latin-1"), True)
            counts = Counter(name for name, _ in pairs)  # linear: a URL may hold thousands
            repeated = {n for n, times in counts.items() if times > 1} - self.repeatable
            with_nul = {name for name, value in pairs if "\x00" in name + value}
            if repeated or with_nul:
                # Shaped like FastAPI's own validation errors.
                detail = [repeated_error("query", name) for name in sorted(repeated)] + [
                    _query_error(name, "value_error", _NUL) for name in sorted(with_nul)
                ]
                await error_response(422, detail)(scope, receive, send)
                return
        await self.app(scope, receive, send)


_REPEATED = "a single value is expected; the parameter was given more than once"
_NUL = "must not contain NUL characters"


def repeated_error(location: str, name: str) -> dict[str, object]:
    """The validation error of a single-valued field given more than once."""
    loc = [location, name.replace("\x00", "")]
    return {"type": "repeated_parameter", "loc": loc, "msg": _REPEATED}


def _query_error(name: str, kind: str, message: str) -> dict[str, object]:
    return {"type": kind, "loc": ["query", name.replace("\x00", "")], "msg": message}


def _has_body(scope: Scope) -> bool:
    declared = _header(scope, b"content-length")
    if declared is not None:
        return declared != "0"
    return _header(scope, b"transfer-encoding") is not None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _too_large_detail(limit: int) -> str:
    return f"request body larger than {limit} bytes"
