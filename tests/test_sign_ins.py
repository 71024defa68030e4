"""Browser sign-ins over real HTTP: the ``session`` cookie made from an API key or a one-time
link, accepted by every API call beside the Bearer key; the cross-site check on writes; sign-out,
expiry, sliding expiry and key revocation; the pages' headers and static files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from factories import (
    LiveServer,
    Tenant,
    count_sessions,
    live_server,
    login,
    make_tenant,
    new_link,
    signed_in,
)
from sqlalchemy import func, select, update

from indexchat.config import Settings
from indexchat.domain import utcnow
from indexchat.services import tenancy
from indexchat.storage.tables import SignIn, SignInLink

FOURTEEN_DAYS = 14 * 24 * 3600


def sign_in_row(server: LiveServer, token: str) -> SignIn | None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    with server.runtime.db.read() as tx:
        return tx.scalar(select(SignIn).where(SignIn.token_hash == digest))


def count_sign_ins(server: LiveServer) -> int:
    with server.runtime.db.read() as tx:
        return int(tx.scalar(select(func.count()).select_from(SignIn)) or 0)


def test_a_key_signs_in_with_an_httponly_cookie_whose_hash_alone_is_stored(
    server: LiveServer, tenant: Tenant
) -> None:
    chat = tenant.client.chat.create()
    response = login(server, tenant.api_key, next="/indexes")

    assert response.status_code == 303 and response.headers["location"] == "/indexes"
    header = response.headers["set-cookie"]
    token = response.cookies["session"]
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert attributes == {"httponly", "max-age", "path", "samesite"}  # no Secure over http
    assert f"Max-Age={FOURTEEN_DAYS}" in header and "Path=/" in header
    assert "samesite=lax" in header.lower()
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    row = sign_in_row(server, token)
    assert row is not None and row.api_key_id == tenant.key_id
    assert row.project_id == tenant.project_id and token not in (row.token_hash, row.id)
    assert row.expires_at - row.created_at == timedelta(days=14)

    with httpx.Client(base_url=server.base_url, cookies={"session": token}) as browser:
        listed = browser.get("/api/v1/chat")
    assert listed.status_code == 200
    assert [s["session_id"] for s in listed.json()["items"]] == [chat.session_id]


def test_a_wrong_key_signs_nobody_in(server: LiveServer) -> None:
    before = count_sign_ins(server)
    response = login(server, "llx-not-a-key")
    assert response.status_code == 401
    assert "not valid" in response.text and "set-cookie" not in response.headers
    assert count_sign_ins(server) == before


def test_cookie_writes_must_come_from_this_servers_own_pages(
    server: LiveServer, tenant: Tenant
) -> None:
    before = count_sessions(server)
    with signed_in(server, tenant.api_key) as browser:
        for headers in (
            {},
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Origin": server.base_url.replace("127.0.0.1", "localhost")},
            {"Referer": "http://evil.example/page"},
        ):
            refused = browser.post("/api/v1/chat", json={}, headers=headers)
            assert refused.status_code == 403, headers
            assert "cross-site" in refused.json()["detail"]
            assert browser.delete("/api/v1/chat/ses-x", headers=headers).status_code == 403
        assert count_sessions(server) == before
        assert browser.get("/api/v1/chat").status_code == 200  # reads need no Origin
        made = browser.post("/api/v1/chat", json={}, headers={"Origin": server.base_url})
        assert made.status_code == 200
        referred = browser.post("/api/v1/chat", json={}, headers={"Referer": server.base_url + "/"})
        assert referred.status_code == 200
        # A Bearer key is not a browser's ambient credential: no Origin check, cookie ignored.
        bearer = browser.post(
            "/api/v1/chat",
            json={},
            headers={"Authorization": f"Bearer {tenant.api_key}", "Origin": "http://evil.example"},
        )
        assert bearer.status_code == 200
    assert count_sessions(server) == before + 3


def test_the_bearer_key_wins_over_the_cookie(server: LiveServer) -> None:
    alice, bob = make_tenant(server), make_tenant(server)
    alices = alice.client.chat.create().session_id
    bobs = bob.client.chat.create().session_id
    with signed_in(server, alice.api_key) as browser:
        as_bob = browser.get("/api/v1/chat", headers={"Authorization": f"Bearer {bob.api_key}"})
        as_alice = browser.get("/api/v1/chat")
    assert [s["session_id"] for s in as_bob.json()["items"]] == [bobs]
    assert [s["session_id"] for s in as_alice.json()["items"]] == [alices]


def test_signing_out_deletes_the_sign_in(server: LiveServer, tenant: Tenant) -> None:
    browser = signed_in(server, tenant.api_key)
    token = browser.cookies["session"]
    assert browser.post("/logout").status_code == 403  # no Origin: refused, still signed in
    assert sign_in_row(server, token) is not None

    response = browser.post("/logout", headers={"Origin": server.base_url})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert (
        'session=""' in response.headers["set-cookie"]
        or "Max-Age=0" in response.headers["set-cookie"]
    )
    assert sign_in_row(server, token) is None
    with httpx.Client(base_url=server.base_url, cookies={"session": token}) as replay:
        assert replay.get("/api/v1/chat").status_code == 401
        assert replay.get("/").headers["location"] == "/login?next=/"
    browser.close()


def test_revoking_a_key_ends_its_sign_ins_but_not_those_made_from_a_link(
    server: LiveServer, tenant: Tenant
) -> None:
    with_key = signed_in(server, tenant.api_key)
    from_link = httpx.Client(base_url=server.base_url)
    assert from_link.get("/login", params={"token": new_link(server, tenant)}).status_code == 303
    assert with_key.get("/api/v1/chat").status_code == 200

    with server.runtime.db.write() as tx:
        tenancy.revoke_key(tx, tenant.key_id)

    assert with_key.get("/api/v1/chat").status_code == 401
    assert from_link.get("/api/v1/chat").status_code == 200
    with_key.close()
    from_link.close()


def test_a_sign_in_link_works_once_within_ten_minutes_and_needs_no_key(
    server: LiveServer, tenant: Tenant
) -> None:
    chat = tenant.client.chat.create()
    token = new_link(server, tenant)
    with server.runtime.db.read() as tx:
        link = tx.get(SignInLink, hashlib.sha256(token.encode()).hexdigest())
        assert link is not None and link.expires_at - link.created_at == timedelta(minutes=10)

    browser = httpx.Client(base_url=server.base_url)
    first = browser.get("/login", params={"token": token, "next": "/indexes"})
    assert first.status_code == 303 and first.headers["location"] == "/indexes"
    row = sign_in_row(server, browser.cookies["session"])
    assert row is not None and row.api_key_id is None and row.project_id == tenant.project_id
    listed = browser.get("/api/v1/chat")
    assert [s["session_id"] for s in listed.json()["items"]] == [chat.session_id]

    second = httpx.get(f"{server.base_url}/login", params={"token": token})
    assert second.status_code == 400 and "already used" in second.text
    assert "set-cookie" not in second.headers

    late = new_link(server, tenant)
    with server.runtime.db.write() as tx:
        tx.execute(update(SignInLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert httpx.get(f"{server.base_url}/login", params={"token": late}).status_code == 400
    browser.close()


def test_an_expired_sign_in_is_refused_and_opening_a_page_extends_one(
    server: LiveServer, tenant: Tenant
) -> None:
    browser = signed_in(server, tenant.api_key)
    token = browser.cookies["session"]
    digest = hashlib.sha256(token.encode()).hexdigest()

    def set_expiry(delta: timedelta) -> None:
        with server.runtime.db.write() as tx:
            tx.execute(
                update(SignIn)
                .where(SignIn.token_hash == digest)
                .values(expires_at=utcnow() + delta)
            )

    set_expiry(timedelta(hours=1))
    page = browser.get("/")
    assert page.status_code == 200 and f"Max-Age={FOURTEEN_DAYS}" in page.headers["set-cookie"]
    row = sign_in_row(server, token)
    assert row is not None and row.expires_at > utcnow() + timedelta(days=13, hours=23)

    set_expiry(timedelta(seconds=-1))
    assert browser.get("/api/v1/chat").status_code == 401
    assert browser.get("/indexes").headers["location"] == "/login?next=/indexes"
    browser.close()


def test_pages_redirect_to_the_login_and_it_only_sends_back_to_this_server(
    server: LiveServer, tenant: Tenant
) -> None:
    response = httpx.get(f"{server.base_url}/?session=ses-1")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/%3Fsession%3Dses-1"
    form = httpx.get(f"{server.base_url}/login", params={"next": "/?session=ses-1"})
    assert 'name="next" value="/?session=ses-1"' in form.text
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        assert login(server, tenant.api_key, next=target).headers["location"] == "/"
    assert (
        httpx.post(f"{server.base_url}/login", data={"api_key": tenant.api_key}).status_code == 403
    )


def test_pages_send_security_headers_and_static_files_are_cached_and_compressed(
    server: LiveServer,
) -> None:
    page = httpx.get(f"{server.base_url}/login")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "<script>" not in page.text  # no inline script
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"

    stylesheet = next(
        line.split('href="')[1].split('"')[0]
        for line in page.text.splitlines()
        if "app.css" in line
    )
    css = httpx.get(f"{server.base_url}{stylesheet}", headers={"Accept-Encoding": "gzip"})
    assert css.status_code == 200 and css.headers["content-encoding"] == "gzip"
    assert "immutable" in css.headers["cache-control"]
    source = Path(__file__).parents[1] / "src/indexchat/web/static/app.css"
    assert css.content == source.read_bytes()  # httpx decoded the gzip body
    assert css.num_bytes_downloaded < len(css.content) / 2
    stale = httpx.get(f"{server.base_url}/static/000000000000/app.css")
    assert stale.status_code == 404


def test_the_api_is_not_compressed(server: LiveServer, tenant: Tenant) -> None:
    """Event streams must reach the browser as they are written, so nothing outside /static
    goes through gzip."""
    chat = tenant.client.chat.create()
    headers = {"Authorization": f"Bearer {tenant.api_key}", "Accept-Encoding": "gzip"}
    with httpx.stream(
        "GET", f"{server.base_url}/api/v1/chat/{chat.session_id}/messages/stream", headers=headers
    ) as stream:
        assert "content-encoding" not in stream.headers
    listed = httpx.get(f"{server.base_url}/api/v1/chat", headers=headers)
    assert "content-encoding" not in listed.headers


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("proxied"), trusted_proxies="127.0.0.1")
    with live_server(settings, "sqlite") as running:
        yield running


def test_the_cookie_is_secure_over_https_and_only_a_trusted_proxy_says_so(
    server: LiveServer, tenant: Tenant, behind_proxy: LiveServer
) -> None:
    https = {"X-Forwarded-Proto": "https"}
    direct = httpx.post(
        f"{server.base_url}/login",
        data={"api_key": tenant.api_key},
        headers={"Origin": server.base_url, **https},
    )
    assert direct.status_code == 303 and "secure" not in direct.headers["set-cookie"].lower()

    proxied_tenant = make_tenant(behind_proxy)
    origin = behind_proxy.base_url.replace("http://", "https://")
    proxied = httpx.post(
        f"{behind_proxy.base_url}/login",
        data={"api_key": proxied_tenant.api_key},
        headers={"Origin": origin, **https},
    )
    assert proxied.status_code == 303, proxied.text
    assert "; secure" in proxied.headers["set-cookie"].lower()
    # Behind the proxy the page's origin is https: the plain-http one is another site.
    cookies = {"session": proxied.cookies["session"]}
    write = httpx.post(
        f"{behind_proxy.base_url}/api/v1/chat",
        json={},
        cookies=cookies,
        headers={"Origin": behind_proxy.base_url, **https},
    )
    assert write.status_code == 403
