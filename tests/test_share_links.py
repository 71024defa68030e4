"""Share links through the official SDK (owner side) and plain HTTP (the viewer, who has no
key): create/list/revoke, the live read-only view, what a viewer can and cannot reach, the
`query` viewer's fork, and the rate limits."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from factories import (
    TURN_NOTES,
    LiveServer,
    Tenant,
    add_index,
    live_server,
    make_index,
    make_tenant,
    wait_for_sync,
)
from llama_cloud import LlamaCloud
from streams import history, sse_events, stream_turn

from indexchat.config import Settings
from indexchat.domain import new_id
from indexchat.services.tenancy import hash_key
from indexchat.storage.tables import Attachment, ChatEvent, ShareLink


@pytest.fixture
def notes(tenant: Tenant) -> str:
    index_id, _, _ = make_index(tenant, {k: v.encode() for k, v in TURN_NOTES.items()})
    wait_for_sync(tenant.client, index_id)
    return index_id


def links_path(session_id: str) -> str:
    return f"/api/v1/chat/{session_id}/share-links"


def create_link(client: LlamaCloud, session_id: str, **body: object) -> dict:
    return client.post(links_path(session_id), cast_to=object, body=body)  # type: ignore[return-value]


def token_of(link: dict) -> str:
    return link["url"].rsplit("/s/", 1)[1]


def viewer(server: LiveServer) -> httpx.Client:
    """A fresh browser-like client: no key, its own cookie jar, this server's Origin."""
    return httpx.Client(base_url=server.base_url, headers={"Origin": server.base_url}, timeout=60)


def ask(http: httpx.Client, token: str, prompt: str) -> httpx.Response:
    return http.post(f"/s/{token}/chat/messages/stream", json={"prompt": prompt})


def test_create_list_revoke(server: LiveServer, tenant: Tenant) -> None:
    chat = tenant.client.chat.create(shared_access="query")
    made = create_link(tenant.client, chat.session_id, expires_in_seconds=7 * 86400)
    other = create_link(tenant.client, chat.session_id, shared_access="read_only")

    assert made["shared_access"] == "query"  # the session's grant by default
    assert other["shared_access"] == "read_only" and other["expires_at"] is None
    assert made["expires_at"] > made["created_at"] and made["expired"] is False
    token = token_of(made)
    assert made["url"] == f"{server.base_url}/s/{token}"
    assert len(token) >= 43  # 256 random bits, url-safe base64
    listed = tenant.client.get(links_path(chat.session_id), cast_to=object)
    assert [link["id"] for link in listed["items"]] == [other["id"], made["id"]]
    assert all("url" not in link and token not in json.dumps(link) for link in listed["items"])
    with server.runtime.db.read() as tx:  # stored hashed, never in clear
        stored = tx.get(ShareLink, made["id"])
        assert stored is not None and stored.token_hash == hash_key(token) != token

    tenant.client.delete(f"{links_path(chat.session_id)}/{made['id']}", cast_to=object)
    listed = tenant.client.get(links_path(chat.session_id), cast_to=object)
    assert [link["id"] for link in listed["items"]] == [other["id"]]
    with viewer(server) as http:
        assert http.get(f"/s/{token}/chat").status_code == 404
        assert http.get(f"/s/{token_of(other)}/chat").status_code == 200


def test_other_projects_get_404(server: LiveServer, tenant: Tenant) -> None:
    chat = tenant.client.chat.create()
    made = create_link(tenant.client, chat.session_id)
    stranger = make_tenant(server)
    with httpx.Client(base_url=server.base_url) as http:
        auth = {"Authorization": f"Bearer {stranger.api_key}"}
        for method, path in (
            ("POST", links_path(chat.session_id)),
            ("GET", links_path(chat.session_id)),
            ("DELETE", f"{links_path(chat.session_id)}/{made['id']}"),
        ):
            answer = http.request(method, path, headers=auth, json={} if method == "POST" else None)
            assert answer.status_code == 404, (method, answer.text)
        # And no key at all is 401, not a way in.
        assert http.get(links_path(chat.session_id)).status_code == 401
    assert len(tenant.client.get(links_path(chat.session_id), cast_to=object)["items"]) == 1


def test_bad_input_is_a_clear_4xx(tenant: Tenant) -> None:
    chat = tenant.client.chat.create()
    with httpx.Client(base_url=str(tenant.client.base_url).rstrip("/")) as http:
        auth = {"Authorization": f"Bearer {tenant.api_key}"}
        for body in (
            {"shared_access": "admin"},
            {"expires_in_seconds": 5},
            {"expires_in_seconds": "x"},
        ):
            answer = http.post(links_path(chat.session_id), json=body, headers=auth)
            assert answer.status_code == 422, body
        missing = http.delete(f"{links_path(chat.session_id)}/shl-nope", headers=auth)
        assert missing.status_code == 404


def test_a_viewer_stream_from_past_the_event_column_is_422(
    server: LiveServer, tenant: Tenant
) -> None:
    chat = tenant.client.chat.create()
    token = token_of(create_link(tenant.client, chat.session_id, shared_access="query"))
    with viewer(server) as http:
        for stream in ("chat", "fork"):
            answer = http.get(f"/s/{token}/{stream}/messages/stream", params={"after": 10**23})
            assert answer.status_code == 422, answer.text
            assert answer.json()["detail"][0]["loc"] == ["query", "after"]


def test_read_only_viewer_follows_later_turns_and_cannot_ask(
    server: LiveServer, tenant: Tenant, notes: str
) -> None:
    client = tenant.client
    chat = client.chat.create(index_ids=[notes], shared_access="read_only")
    stream_turn(client, chat.session_id, index_ids=[notes], prompt="How long do cats sleep?")
    token = token_of(create_link(client, chat.session_id))

    with viewer(server) as http:
        seen = http.get(f"/s/{token}/chat").json()
        assert seen["shared_access"] == "read_only" and seen["fork"] is None
        assert seen["session"]["events"] == history(client, chat.session_id)
        count = len(seen["session"]["events"])
        # A turn added later reaches the viewer through the follow stream.
        stream_turn(client, chat.session_id, index_ids=[notes], prompt="And green tea?")
        later = http.get(f"/s/{token}/chat/messages/stream", params={"after": count})
        assert later.status_code == 200
        events = sse_events(later.text.splitlines())
        assert events[0] == {"type": "user_input", "content": "And green tea?"}
        assert events[-1]["type"] == "stop"

        assert ask(http, token, "   ").status_code == 422
        refused = ask(http, token, "Can I ask?")
        assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
        assert "share_viewer" not in refused.cookies
    assert len(history(client, chat.session_id)) == count + len(
        [e for e in events if e["type"] not in ("text_delta", "thinking_delta")]
    )


def test_a_viewer_reaches_only_this_session_and_what_it_cites(
    server: LiveServer, tenant: Tenant
) -> None:
    client = tenant.client
    chat = client.chat.create()
    secret = client.chat.create()
    token = token_of(create_link(client, chat.session_id))
    cited, uncited = _two_screenshots(server, tenant, chat.session_id)

    with viewer(server) as http:
        base = f"/s/{token}"
        image = http.get(f"{base}/attachments/{cited.source_id}/{cited.name}")
        assert image.status_code == 200 and image.content == b"\x89PNG cited"
        assert image.headers["content-type"] == "image/png"
        assert http.get(f"{base}/attachments/{uncited.source_id}/{uncited.name}").status_code == 404
        # The link is no key: the project's API stays closed to it.
        for path in (
            f"/api/v1/chat/{secret.session_id}",
            f"/api/v1/chat/{chat.session_id}",
            "/api/v1/indexes",
            "/api/v1/beta/files",
        ):
            assert http.get(path, params={"token": token}).status_code == 401, path
        assert http.get(f"/s/{token}x/chat").status_code == 404


def _two_screenshots(
    server: LiveServer, tenant: Tenant, session_id: str
) -> tuple[Attachment, Attachment]:
    """Two stored page screenshots; the session's history cites the first only."""
    index_id = add_index(server, tenant.scope)
    made = []
    with server.runtime.db.write() as tx:
        for name, data in (("cited", b"\x89PNG cited"), ("other", b"\x89PNG other")):
            made.append(
                Attachment(
                    project_id=tenant.project_id,
                    index_id=index_id,
                    source_id=new_id("dfl"),
                    name=f"screenshots/page_{1 if name == 'cited' else 2}.png",
                    content_hash=server.runtime.blobs.put(data),
                    size_bytes=len(data),
                )
            )
        tx.add_all(made)
        hit = {"file_id": made[0].source_id, "file_name": "a.pdf", "page_start": 1, "page_end": 1}
        tx.add_all(
            [
                ChatEvent(
                    session_id=session_id,
                    seq=1,
                    type="user_input",
                    payload={"type": "user_input", "content": "q"},
                ),
                ChatEvent(
                    session_id=session_id,
                    seq=2,
                    type="tool_result",
                    payload={
                        "type": "tool_result",
                        "call_id": "c",
                        "name": "retrieve",
                        "result": [hit],
                    },
                ),
            ]
        )
        tx.flush()
        tx.expunge_all()
    return made[0], made[1]


def test_query_viewer_asks_in_a_fork_and_the_owner_history_is_unchanged(
    server: LiveServer, tenant: Tenant, notes: str
) -> None:
    client = tenant.client
    chat = client.chat.create(index_ids=[notes], shared_access="query")
    stream_turn(client, chat.session_id, index_ids=[notes], prompt="How long do cats sleep?")
    link = create_link(client, chat.session_id)
    token = token_of(link)
    before = client.get(f"/api/v1/chat/{chat.session_id}", cast_to=httpx.Response).content

    with viewer(server) as http:
        answer = ask(http, token, "Which cities does the Danube flow through?")
        assert answer.status_code == 200, answer.text
        events = sse_events(answer.text.splitlines())
        assert events[0]["content"].startswith("Which cities") and events[-1]["is_error"] is False
        assert "Vienna" in next(e for e in events if e["type"] == "text")["content"]
        assert "share_viewer" in http.cookies
        seen = http.get(f"/s/{token}/chat").json()
        fork = seen["fork"]
        assert fork is not None and fork["session_id"] != chat.session_id
        # The fork starts from a copy of the shared history, then has the viewer's turn.
        shared_events = seen["session"]["events"]
        assert fork["events"][: len(shared_events)] == shared_events
        assert fork["events"][len(shared_events)]["content"].startswith("Which cities")
        assert fork["index_ids"] == [notes]
        # A second question (a reload keeps the cookie) goes to the same fork.
        assert ask(http, token, "And green tea?").status_code == 200
        again = http.get(f"/s/{token}/chat").json()["fork"]
        assert again["session_id"] == fork["session_id"]
        assert len(again["events"]) > len(fork["events"])

    after = client.get(f"/api/v1/chat/{chat.session_id}", cast_to=httpx.Response).content
    assert after == before  # byte for byte
    owned = client.get(f"/api/v1/chat/{fork['session_id']}", cast_to=object)
    assert owned["metadata"]["forked_from"] == {
        "session_id": chat.session_id,
        "share_link_id": link["id"],
        "event_count": len(shared_events),
    }
    assert "metadata" not in client.get(f"/api/v1/chat/{chat.session_id}", cast_to=object)

    # Another browser gets its own fork.
    with viewer(server) as other:
        assert ask(other, token, "How long do cats sleep?").status_code == 200
        theirs = other.get(f"/s/{token}/chat").json()["fork"]
        assert theirs["session_id"] != fork["session_id"]


def test_revoking_stops_the_viewer_and_the_fork(server: LiveServer, tenant: Tenant) -> None:
    client = tenant.client
    chat = client.chat.create(shared_access="query")
    link = create_link(client, chat.session_id)
    token = token_of(link)
    with viewer(server) as http:
        assert ask(http, token, "Hello?").status_code == 200
        assert http.get(f"/s/{token}/chat").json()["fork"] is not None
        client.delete(f"{links_path(chat.session_id)}/{link['id']}", cast_to=object)
        assert http.get(f"/s/{token}/chat").status_code == 404
        assert ask(http, token, "Still there?").status_code == 404
        assert http.get(f"/s/{token}/fork/messages/stream").status_code == 404
        assert http.get(f"/s/{token}").status_code == 404


def test_expired_revoked_and_unknown_links_show_the_same_page(
    server: LiveServer, tenant: Tenant
) -> None:
    client = tenant.client
    chat = client.chat.create()
    expired = create_link(client, chat.session_id, expires_in_seconds=60)
    revoked = create_link(client, chat.session_id)
    client.delete(f"{links_path(chat.session_id)}/{revoked['id']}", cast_to=object)
    with server.runtime.db.write() as tx:
        row = tx.get(ShareLink, expired["id"])
        assert row is not None
        row.expires_at = row.created_at
    pages = []
    with viewer(server) as http:
        for token in (token_of(expired), token_of(revoked), "never-made"):
            page = http.get(f"/s/{token}")
            assert page.status_code == 404
            pages.append(page.text)
            assert http.get(f"/s/{token}/chat").status_code == 404
    assert pages[0] == pages[1] == pages[2]
    assert client.get(links_path(chat.session_id), cast_to=object)["items"][0]["expired"] is True


@pytest.fixture
def strict_server(
    server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server of the same backend with small allowances."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("strict"),
        database_url=server.runtime.settings.database_url,
        share_link_turns_per_hour=2,
        share_link_failures_per_minute=3,
    )
    with live_server(settings, server.backend) as running:
        yield running


def test_anonymous_turns_are_limited_per_link(strict_server: LiveServer) -> None:
    tenant = make_tenant(strict_server)
    chat = tenant.client.chat.create(shared_access="query")
    token = token_of(create_link(tenant.client, chat.session_id))
    with viewer(strict_server) as first, viewer(strict_server) as second:
        assert ask(first, token, "one").status_code == 200
        assert ask(second, token, "two").status_code == 200
        refused = ask(first, token, "three")
        assert refused.status_code == 429
        assert 3500 <= int(refused.headers["retry-after"]) <= 3600
        assert "2 questions an hour" in refused.json()["detail"]
    # Another link of the same session has its own allowance.
    other = token_of(create_link(tenant.client, chat.session_id))
    with viewer(strict_server) as third:
        assert ask(third, other, "four").status_code == 200


def test_failed_lookups_are_limited_per_address(strict_server: LiveServer) -> None:
    tenant = make_tenant(strict_server)
    chat = tenant.client.chat.create()
    token = token_of(create_link(tenant.client, chat.session_id))
    with viewer(strict_server) as http:
        assert http.get(f"/s/{token}/chat").status_code == 200
        for guess in ("a", "b", "c"):
            assert http.get(f"/s/{guess}/chat").status_code == 404
        limited = http.get(f"/s/{token}/chat")  # even a good token, for now
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) <= 60
        page = http.get(f"/s/{token}")
        assert page.status_code == 429 and "retry-after" in page.headers


def test_cli_share_list_and_revoke(server: LiveServer, tenant: Tenant) -> None:
    from typer.testing import CliRunner

    from indexchat.cli import app

    env = {"LLAMA_CLOUD_API_KEY": tenant.api_key, "LLAMA_CLOUD_BASE_URL": server.base_url}
    runner = CliRunner()
    chat = tenant.client.chat.create(shared_access="query")

    made = runner.invoke(
        app, ["chat", "share", "--session-id", chat.session_id, "--expires-in", "7d"], env=env
    )
    assert made.exit_code == 0, made.output
    url = made.stdout.strip()
    assert url.startswith(f"{server.base_url}/s/")
    listed = runner.invoke(app, ["share-links", "list", "--session-id", chat.session_id], env=env)
    items = json.loads(listed.stdout)["items"]
    assert [i["shared_access"] for i in items] == ["query"] and items[0]["expires_at"]
    bad = runner.invoke(
        app, ["chat", "share", "--session-id", chat.session_id, "--expires-in", "soon"], env=env
    )
    assert bad.exit_code != 0 and "12h, 7d or 2w" in bad.stderr

    revoked = runner.invoke(
        app,
        ["share-links", "revoke", "--session-id", chat.session_id, "--link-id", items[0]["id"]],
        env=env,
    )
    assert revoked.exit_code == 0, revoked.output
    with viewer(server) as http:
        assert http.get(f"/s/{token_of({'url': url})}/chat").status_code == 404
    again = runner.invoke(app, ["share-links", "list", "--session-id", chat.session_id], env=env)
    assert json.loads(again.stdout)["items"] == []


def test_deleting_the_session_ends_its_links(server: LiveServer, tenant: Tenant) -> None:
    chat = tenant.client.chat.create()
    token = token_of(create_link(tenant.client, chat.session_id))
    with viewer(server) as http:
        page = http.get(f"/s/{token}")
        assert page.status_code == 200 and page.headers["x-robots-tag"] == "noindex"
        assert page.headers["referrer-policy"] == "same-origin"  # the token stays here
        tenant.client.chat.delete(chat.session_id)
        assert http.get(f"/s/{token}/chat").status_code == 404
        assert http.get(f"/s/{token}").status_code == 404
