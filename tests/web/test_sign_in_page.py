"""Signing in to the page in a real browser: with a key, with the one-time link `indexchat serve`
prints, signing out, and a page of another origin that tries to write with the cookie."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import free_port
from sqlalchemy import func, select
from web.served import Browser, Served, sign_in

from indexchat.storage.tables import ApiKey, SignIn


def cookie_of(browser: Browser, served: Served) -> dict[str, Any]:
    cookies = [c for c in browser.context.cookies(served.base_url) if c["name"] == "session"]
    assert len(cookies) == 1, cookies
    return cookies[0]


def sign_in_row(served: Served, token: str) -> SignIn | None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    with served.db.read() as tx:
        return tx.scalar(select(SignIn).where(SignIn.token_hash == digest))


def test_the_link_serve_prints_signs_in_once_with_no_key_in_existence(
    newcomer: Served, chromium: Any, screenshots: Path
) -> None:
    with newcomer.db.read() as tx:
        assert tx.scalar(select(func.count()).select_from(ApiKey)) == 0
    first = Browser(chromium)
    page = first.page
    page.goto(newcomer.link)
    page.wait_for_url(f"{newcomer.base_url}/")
    assert page.locator(".topbar-project").inner_text() == "Default"
    page.get_by_role("link", name="Create an index").wait_for()
    page.screenshot(path=screenshots / "chat-first-visit.png")

    cookie = cookie_of(first, newcomer)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    row = sign_in_row(newcomer, cookie["value"])
    assert row is not None and row.api_key_id is None  # made from the link, no key behind it
    # The browser keeps no key: nothing in storage, and scripts cannot read the cookie.
    assert page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]") == [
        0,
        0,
        "",
    ]
    answer = page.evaluate(
        "async () => (await fetch('/api/v1/chat', {method: 'POST', headers: "
        "{'Content-Type': 'application/json'}, body: '{}'})).status"
    )
    assert answer == 200  # the page's own writes pass the Origin check

    second = Browser(chromium)
    response = second.page.goto(newcomer.link)
    assert response is not None and response.status == 400
    assert "expired or was already used" in second.page.locator(".notice").inner_text()
    assert not second.context.cookies(newcomer.base_url)
    first.close()
    second.close()


def test_signing_in_with_a_key_and_signing_out(
    extractive: Served, browser: Browser, screenshots: Path
) -> None:
    page = browser.page
    key = extractive.new_project_key()
    page.goto(f"{extractive.base_url}/indexes")
    page.wait_for_url("**/login?next=/indexes")
    page.screenshot(path=screenshots / "login.png")
    page.get_by_label("API key").fill("llx-wrong")
    page.get_by_role("button", name="Sign in").click()
    assert "not valid" in page.get_by_role("alert").inner_text()

    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{extractive.base_url}/indexes")
    token = cookie_of(browser, extractive)["value"]
    assert sign_in_row(extractive, token) is not None

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{extractive.base_url}/login")
    assert sign_in_row(extractive, token) is None
    page.goto(f"{extractive.base_url}/")
    page.wait_for_url("**/login?next=/")


class _EvilSite(BaseHTTPRequestHandler):
    """A page of another origin (same host, another port) that posts to the API."""

    target = ""

    def do_GET(self) -> None:
        body = f"""<!doctype html><title>evil</title>
<script>
fetch('{self.target}/api/v1/chat', {{method: 'POST', mode: 'no-cors', credentials: 'include',
  headers: {{'Content-Type': 'text/plain'}}, body: '{{}}'}});
</script>
<form method="post" action="{self.target}/api/v1/chat" enctype="text/plain">
<input name='{{"shared_access":"query","x":"' value='"}}'><button id="go">go</button></form>
""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def evil_site(extractive: Served) -> Iterator[str]:
    handler = type("Handler", (_EvilSite,), {"target": extractive.base_url})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_another_sites_page_cannot_write_with_the_cookie(
    extractive: Served, browser: Browser, evil_site: str
) -> None:
    key = extractive.new_project_key()
    sign_in(browser.page, extractive, key)
    client = extractive.sdk(key)
    before = len(client.chat.list().items)

    evil = browser.new_page()
    evil.goto(evil_site)
    evil.wait_for_timeout(500)  # the fetch has gone out
    evil.click("#go")
    evil.wait_for_load_state()
    # The cookie went along (same site, other port): refused for its Origin, not for lack of it.
    assert "cross-site request refused" in evil.content()
    assert len(client.chat.list().items) == before
    # A Bearer key from anywhere is not affected.
    made = httpx.post(
        f"{extractive.base_url}/api/v1/chat",
        json={},
        headers={"Authorization": f"Bearer {key}", "Origin": evil_site.rstrip("/")},
    )
    assert made.status_code == 200 and len(client.chat.list().items) == before + 1
