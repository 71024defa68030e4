"""Signed download links: they name the key or sign-in that made them and stop working when it
ends, last an hour unless asked otherwise, and stream the bytes instead of loading them."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from conftest import LiveServer, Tenant
from test_sign_ins import new_link

from indexchat.services import tenancy


def upload(tenant: Tenant, data: bytes = b"quarterly numbers") -> str:
    return tenant.client.files.create(file=("report.txt", data), purpose="user_data").id


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


def test_revoking_the_key_ends_the_links_it_made(server: LiveServer, tenant: Tenant) -> None:
    file_id = upload(tenant)
    url = tenant.client.files.content(file_id).url
    with server.runtime.db.write() as session:
        other = tenancy.create_key(
            session, project=tenant.project, organization=tenant.organization
        )
    other_url = server.sdk(other.secret).files.content(file_id).url
    assert httpx.get(url).status_code == 200

    with server.runtime.db.write() as session:
        tenancy.revoke_key(session, tenant.key_id)

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
