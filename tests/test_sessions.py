"""Chat sessions through the official SDK over real HTTP (contract §3)."""

from __future__ import annotations

import re
import warnings

import httpx
import pytest
from factories import LiveServer, Tenant, add_index, count_sessions
from llama_cloud import NotFoundError

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


def test_create_unbound_session_has_contract_defaults(tenant: Tenant) -> None:
    created = tenant.client.chat.create()

    assert created.session_id.startswith("ses-")
    assert TIMESTAMP.match(created.last_updated_at)
    assert created.shared_access == "read_only"
    assert created.index_ids is None
    assert created.job_metadata is None
    assert created.generated_title is None


def test_create_echoes_shared_access_and_bound_indexes(server: LiveServer, tenant: Tenant) -> None:
    first = add_index(server, tenant.scope, "reports")
    second = add_index(server, tenant.scope, "wiki")

    created = tenant.client.chat.create(index_ids=[second, first, second], shared_access="query")

    assert created.shared_access == "query"
    assert created.index_ids == [second, first]  # repeats dropped, order kept
    fetched = tenant.client.chat.get_summary(created.session_id)
    assert fetched.index_ids == [second, first]


def test_explicit_nulls_mean_defaults(tenant: Tenant) -> None:
    created = tenant.client.chat.create(index_ids=None, shared_access=None)
    assert created.index_ids is None
    assert created.shared_access == "read_only"


def test_binding_an_unknown_index_is_404_naming_it_and_writes_nothing(
    server: LiveServer, tenant: Tenant
) -> None:
    known = add_index(server, tenant.scope)
    before = count_sessions(server)

    with pytest.raises(NotFoundError) as caught:
        tenant.client.chat.create(index_ids=[known, "idx-missing"])

    assert "idx-missing" in caught.value.body["detail"]
    assert count_sessions(server) == before


def test_retrieve_returns_session_with_empty_history(tenant: Tenant) -> None:
    created = tenant.client.chat.create(shared_access="query")

    got = tenant.client.chat.retrieve(created.session_id)

    assert got.session_id == created.session_id
    assert got.events == []
    assert got.last_updated_at == created.last_updated_at
    assert got.shared_access == "query"


def test_summary_has_no_events_key(server: LiveServer, tenant: Tenant) -> None:
    created = tenant.client.chat.create()
    raw = httpx.get(
        f"{server.base_url}/api/v1/chat/{created.session_id}/summary",
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert raw.status_code == 200
    body = raw.json()
    assert "events" not in body
    assert set(body) == {
        "session_id",
        "last_updated_at",
        "shared_access",
        "generated_title",
        "index_ids",
        "job_metadata",
    }


def test_delete_removes_session(tenant: Tenant) -> None:
    created = tenant.client.chat.create()

    assert tenant.client.chat.delete(created.session_id) is None

    with pytest.raises(NotFoundError):
        tenant.client.chat.retrieve(created.session_id)
    with pytest.raises(NotFoundError):
        tenant.client.chat.delete(created.session_id)
    assert created.session_id not in [s.session_id for s in tenant.client.chat.list()]


def test_unknown_session_is_404_with_detail(tenant: Tenant) -> None:
    for call in (
        tenant.client.chat.retrieve,
        tenant.client.chat.get_summary,
        tenant.client.chat.delete,
    ):
        with pytest.raises(NotFoundError) as caught:
            call("ses-does-not-exist")
        assert "ses-does-not-exist" in caught.value.body["detail"]


def test_list_is_newest_first(tenant: Tenant) -> None:
    made = [tenant.client.chat.create().session_id for _ in range(5)]

    listed = [s.session_id for s in tenant.client.chat.list()]

    assert listed == list(reversed(made))


def test_beta_chat_sends_the_same_requests(tenant: Tenant) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        created = tenant.client.beta.chat.create(shared_access="query")
        assert tenant.client.beta.chat.retrieve(created.session_id).events == []
        assert tenant.client.beta.chat.get_summary(created.session_id).shared_access == "query"
        assert [s.session_id for s in tenant.client.beta.chat.list()] == [created.session_id]
        tenant.client.beta.chat.delete(created.session_id)
    assert list(tenant.client.chat.list()) == []


def test_health_and_docs_need_no_key(server: LiveServer) -> None:
    health = httpx.get(f"{server.base_url}/health").json()
    assert health["status"] == "ok"
    assert health["database"] == {"sqlite": "sqlite", "postgres": "postgresql"}[server.backend]
    assert httpx.get(f"{server.base_url}/docs").status_code == 200
    paths = httpx.get(f"{server.base_url}/openapi.json").json()["paths"]
    assert {
        "/api/v1/chat",
        "/api/v1/chat/{session_id}",
        "/api/v1/chat/{session_id}/summary",
        "/api/v1/projects",
        "/api/v1/projects/{project_id}",
    } <= set(paths)
