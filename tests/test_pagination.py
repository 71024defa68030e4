"""Keyset pagination of chat sessions: sizes, limits, tokens, and walks under concurrent writes."""

from __future__ import annotations

import threading

import httpx
import pytest
from factories import LiveServer, Tenant, make_tenant

from indexchat.api.routes.sessions import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX


def make_sessions(tenant: Tenant, n: int) -> list[str]:
    """Created oldest first; the listing returns them newest first."""
    return [tenant.client.chat.create().session_id for _ in range(n)]


def page_sizes(tenant: Tenant, **params: object) -> tuple[list[int], list[str]]:
    page = tenant.client.chat.list(**params)  # type: ignore[arg-type]
    sizes, seen = [len(page.items)], [s.session_id for s in page.items]
    while page.has_next_page():
        page = page.get_next_page()
        sizes.append(len(page.items))
        seen.extend(s.session_id for s in page.items)
    return sizes, seen


@pytest.mark.parametrize("size", [1, 2])
def test_small_pages_walk_everything_once_in_order(tenant: Tenant, size: int) -> None:
    made = make_sessions(tenant, 5)

    sizes, seen = page_sizes(tenant, page_size=size)

    assert seen == list(reversed(made))
    assert sizes == [size] * (5 // size) + ([5 % size] if 5 % size else [])


def test_default_and_max_page_sizes(server: LiveServer, tenant: Tenant) -> None:
    made = make_sessions(tenant, PAGE_SIZE_MAX + 5)

    sizes, seen = page_sizes(tenant)
    assert sizes[0] == PAGE_SIZE_DEFAULT
    assert seen == list(reversed(made))

    sizes, seen = page_sizes(tenant, page_size=PAGE_SIZE_MAX)
    assert sizes == [PAGE_SIZE_MAX, 5]
    assert seen == list(reversed(made))


def test_sdk_auto_iteration_visits_each_session_once(tenant: Tenant) -> None:
    made = make_sessions(tenant, 7)
    assert [s.session_id for s in tenant.client.chat.list(page_size=3)] == list(reversed(made))


def test_last_page_omits_the_token(server: LiveServer, tenant: Tenant) -> None:
    make_sessions(tenant, 2)
    body = httpx.get(
        f"{server.base_url}/api/v1/chat",
        params={"page_size": 5},
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    ).json()
    assert len(body["items"]) == 2
    assert "next_page_token" not in body


@pytest.mark.parametrize("bad", ["0", "-1", str(PAGE_SIZE_MAX + 1), "ten", "1.5", ""])
def test_bad_page_size_is_422(server: LiveServer, tenant: Tenant, bad: str) -> None:
    response = httpx.get(
        f"{server.base_url}/api/v1/chat",
        params={"page_size": bad},
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert response.status_code == 422
    assert response.json()["detail"]


def _first_token(tenant: Tenant) -> str:
    make_sessions(tenant, 3)
    token = tenant.client.chat.list(page_size=1).next_page_token
    assert token
    return token


def _list_with_token(server: LiveServer, tenant: Tenant, token: str) -> httpx.Response:
    return httpx.get(
        f"{server.base_url}/api/v1/chat",
        params={"page_size": 1, "page_token": token},
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )


def test_tampered_and_malformed_tokens_are_400(server: LiveServer, tenant: Tenant) -> None:
    token = _first_token(tenant)
    body, signature = token.split(".")
    flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
    for bad in (f"{flipped}.{signature}", "garbage", "a.b.c", ".", "x" * 2000, token + "x"):
        response = _list_with_token(server, tenant, bad)
        assert response.status_code in (400, 422), bad
        assert response.json()["detail"]
    assert _list_with_token(server, tenant, token).status_code == 200


def test_token_from_another_project_is_400(server: LiveServer, tenant: Tenant) -> None:
    token = _first_token(tenant)
    other = make_tenant(server)
    make_sessions(other, 3)

    response = _list_with_token(server, other, token)

    assert response.status_code == 400
    assert "page_token" in response.json()["detail"]


def test_walk_while_sessions_are_created_neither_skips_nor_repeats(
    tenant: Tenant, server: LiveServer
) -> None:
    existing = make_sessions(tenant, 40)
    writer = server.sdk(tenant.api_key)
    stop = threading.Event()
    created_during: list[str] = []

    def keep_creating() -> None:
        while not stop.is_set() and len(created_during) < 200:
            created_during.append(writer.chat.create().session_id)

    thread = threading.Thread(target=keep_creating)
    thread.start()
    try:
        seen = [s.session_id for s in tenant.client.chat.list(page_size=3)]
    finally:
        stop.set()
        thread.join()

    assert created_during, "the writer thread created nothing while the walk ran"
    assert len(seen) == len(set(seen)), "a session was listed twice"
    assert [s for s in seen if s in set(existing)] == list(reversed(existing))


def test_non_ascii_tokens_are_400(server: LiveServer, tenant: Tenant) -> None:
    for bad in ("1\u0088.b\u00ab\U000a1d59", "\u00e9.\u00e9"):
        response = _list_with_token(server, tenant, bad)
        assert response.status_code == 400, response.text
