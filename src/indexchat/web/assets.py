"""The page's static files: read and gzip-compressed once, served from memory under a path that
holds a hash of them all, so browsers may keep them for a year and still see an upgrade."""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from starlette.responses import Response

STATIC_DIR = Path(__file__).parent / "static"
_IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str


@dataclass(frozen=True)
class Assets:
    files: dict[str, Asset]
    # In the path rather than a query string: ES modules import each other by relative URLs.
    version: str

    def url(self, path: str) -> str:
        return f"/static/{self.version}/{path}"

    def response(self, version: str, path: str, accept_encoding: str) -> Response:
        asset = self.files.get(path) if version == self.version else None
        if asset is None:
            return Response("not found", status_code=404, media_type="text/plain")
        headers = {
            "Cache-Control": _IMMUTABLE,
            "X-Content-Type-Options": "nosniff",
            "Vary": "Accept-Encoding",
        }
        if "gzip" in accept_encoding.lower() and len(asset.gzipped) < len(asset.body):
            headers["Content-Encoding"] = "gzip"
            return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)


@cache
def assets() -> Assets:
    """Every file under static/, once per process (about 200 KB)."""
    files: dict[str, Asset] = {}
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(STATIC_DIR).as_posix()
        body = path.read_bytes()
        digest.update(name.encode() + b"\0" + body)
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.endswith((".js", ".mjs")):
            media_type = "text/javascript"  # what module scripts require, on any platform
        files[name] = Asset(body, gzip.compress(body, 9, mtime=0), media_type)
    return Assets(files=files, version=digest.hexdigest()[:12])
