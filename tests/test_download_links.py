"""Signed download links: they name the key or sign-in that made them and stop working when it
ends, last an hour unless asked otherwise, and stream the bytes instead of loading them."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from factories import LiveServer, Tenant, new_link

from indexchat.api.pagination import PageTokens
from indexchat.api.signing import LinkParams, UrlSigner
from indexchat.config import Settings
from indexchat.errors import InvalidPageToken
from indexchat.runtime import Runtime
from indexchat.services import tenancy
from indexchat.storage.blobs import LocalBlobStore
from indexchat.storage.db import Database
from indexchat.storage.migrate import upgrade


def upload(tenant: Tenant, data: bytes = b"quarterly numbers") -> str:
    return tenant.client.files.create(file=("report.txt", data), purpose="user_data").id


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


def test_revoking_the_key_ends_the_links_it_made(server: LiveServer, tenant: Tenant) -> None:
    file_id = upload(tenant)
    url = tenant.client.files.content(file_id).url
    with server.runtime.db.write() as tx:
        other = tenancy.create_key(tx, project=tenant.project, organization=tenant.organization)
    other_url = server.sdk(other.secret).files.content(file_id).url
    assert httpx.get(url).status_code == 200

    with server.runtime.db.write() as tx:
        tenancy.revoke_key(tx, tenant.key_id)

    refused = httpx.get(url)
    assert refused.status_code == 403 and "revoked" in refused.json()["detail"]
    # Naming the other, live key instead breaks the signature.
    assert httpx.get(with_query(url, holder=f"key:{other.key.id}")).status_code == 403
    assert httpx.get(other_url).content == b"quarterly numbers"


def test_signing_out_ends_the_links_the_browser_made(server: LiveServer, tenant: Tenant) -> None:
    file_id = upload(tenant)
    browser = httpx.Client(base_url=server.base_url)
    assert browser.get("/login", params={"token": new_link(server, tenant)}).status_code == 303
    url = browser.get(f"/api/v1/beta/files/{file_id}/content").json()["url"]
    assert httpx.get(url).content == b"quarterly numbers"

    assert browser.post("/logout", headers={"Origin": server.base_url}).status_code == 303
    assert httpx.get(url).status_code == 403
    browser.close()


def test_links_last_an_hour_by_default(tenant: Tenant) -> None:
    link = tenant.client.files.content(upload(tenant))
    left = (link.expires_at - datetime.now(UTC)).total_seconds()
    assert 3500 < left <= 3600


def test_a_large_download_is_streamed_not_loaded(server: LiveServer, tenant: Tenant) -> None:
    data = os.urandom(48 * 1024 * 1024)
    url = tenant.client.files.content(upload(tenant, data)).url
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        with httpx.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(len(data))
            for piece in response.iter_raw():
                digest.update(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert peak < 8 * 1024 * 1024, f"the download held {peak / 2**20:.0f} MiB at once"


def test_a_page_token_key_signs_no_download_link_and_the_download_key_no_page_token(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(db.engine)
    with db.write() as tx:
        tenancy.ensure_defaults(tx)
    with db.read() as tx:
        keys = tenancy.instance_keys(tx)
    runtime = Runtime(
        settings=Settings(data_dir=tmp_path),
        db=db,
        keys=keys,
        blobs=LocalBlobStore(tmp_path / "blobs"),
    )
    assert runtime.page_token_secret == keys.for_purpose("page-token")
    route, holder = "download_file", "key:k1"
    # A download signature made with the key page tokens are signed with is refused...
    expires, forged = UrlSigner(runtime.page_token_secret).sign(f"{route}\nfile_id=f", 60, holder)
    assert not LinkParams(expires, forged, holder).verify(runtime, route, file_id="f")
    # ...while one made with the download key is the link the route accepts.
    download_key = keys.for_purpose("download-link")
    expires, signature = UrlSigner(download_key).sign(f"{route}\nfile_id=f", 60, holder)
    assert LinkParams(expires, signature, holder).verify(runtime, route, file_id="f")
    # And a page token signed with the download key is no page token.
    token = PageTokens(download_key).encode("chat:project", ["2026-01-01T00:00:00", "ses-1"])
    with pytest.raises(InvalidPageToken):
        PageTokens(runtime.page_token_secret).decode("chat:project", token)
    assert PageTokens(runtime.page_token_secret).decode(
        "chat:project", PageTokens(runtime.page_token_secret).encode("chat:project", [1])
    ) == [1]
