"""Tenancy: two organizations with two projects each; foreign ids are 404 and change nothing."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from factories import LiveServer, Tenant, add_index, count_sessions, make_tenant
from llama_cloud import AuthenticationError, LlamaCloud, NotFoundError

from indexchat.services import tenancy


@dataclass
class World:
    tenants: list[Tenant]  # org A: tenants[0], tenants[1]; org B: tenants[2], tenants[3]
    sessions: dict[str, str]  # project_id -> a session in it
    indexes: dict[str, str]  # project_id -> an index in it


@pytest.fixture
def world(server: LiveServer) -> World:
    run = uuid.uuid4().hex[:8]
    tenants = [
        make_tenant(server, organization=f"{org}-{run}", project=project)
        for org, project in itertools.product(("A", "B"), ("one", "two"))
    ]
    return _populate(server, tenants)


def _populate(server: LiveServer, tenants: list[Tenant]) -> World:
    sessions, indexes = {}, {}
    for t in tenants:
        indexes[t.project_id] = add_index(server, t.scope)
        sessions[t.project_id] = t.client.chat.create(index_ids=[indexes[t.project_id]]).session_id
    return World(tenants=tenants, sessions=sessions, indexes=indexes)


def test_world_has_two_orgs_with_two_projects_each(world: World) -> None:
    orgs = [t.organization_id for t in world.tenants]
    assert orgs[0] == orgs[1] != orgs[2] == orgs[3]
    assert len({t.project_id for t in world.tenants}) == 4


def _session_calls(client: LlamaCloud) -> list[Callable[..., Any]]:
    return [client.chat.retrieve, client.chat.get_summary, client.chat.delete]


def test_foreign_sessions_are_404_and_untouched(server: LiveServer, world: World) -> None:
    before = count_sessions(server)
    for me, other in itertools.permutations(world.tenants, 2):
        foreign = world.sessions[other.project_id]
        for call in _session_calls(me.client):
            with pytest.raises(NotFoundError):
                call(foreign)
    assert count_sessions(server) == before
    for t in world.tenants:  # each still sees exactly its own session
        assert [s.session_id for s in t.client.chat.list()] == [world.sessions[t.project_id]]


def test_foreign_project_and_organization_params_are_404(server: LiveServer, world: World) -> None:
    before = count_sessions(server)
    for me, other in itertools.permutations(world.tenants, 2):
        mine = world.sessions[me.project_id]
        scopes: list[dict[str, str]] = [{"project_id": other.project_id}]
        if other.organization_id != me.organization_id:
            scopes.append({"organization_id": other.organization_id})
        for scope in scopes:
            with pytest.raises(NotFoundError):
                me.client.chat.list(**scope)
            with pytest.raises(NotFoundError):
                me.client.chat.create(**scope)
            for call in _session_calls(me.client):
                with pytest.raises(NotFoundError):
                    call(mine, **scope)
            with pytest.raises(NotFoundError):
                me.client.projects.get(
                    other.project_id,
                    **(
                        {"organization_id": scope["organization_id"]}
                        if "organization_id" in scope
                        else {}
                    ),
                )
    for unknown in ({"project_id": "no-such-project"}, {"organization_id": "no-such-org"}):
        with pytest.raises(NotFoundError):
            world.tenants[0].client.chat.list(**unknown)
    assert count_sessions(server) == before


def test_binding_a_foreign_index_is_404(server: LiveServer, world: World) -> None:
    before = count_sessions(server)
    for me, other in itertools.permutations(world.tenants, 2):
        with pytest.raises(NotFoundError):
            me.client.chat.create(index_ids=[world.indexes[other.project_id]])
    assert count_sessions(server) == before


def test_projects_list_shows_only_reachable_projects(world: World) -> None:
    for t in world.tenants:
        listed = t.client.projects.list()
        assert [p.id for p in listed] == [t.project_id]
        assert listed[0].organization_id == t.organization_id
        assert t.client.projects.get(t.project_id).name == t.project
        assert t.client.projects.list(project_name=t.project)[0].id == t.project_id
        assert t.client.projects.list(project_name="nope") == []


def test_organization_wide_key_reaches_its_projects_only(server: LiveServer, world: World) -> None:
    a_one, a_two, b_one, _ = world.tenants
    with server.runtime.db.write() as tx:
        issued = tenancy.create_key(tx, organization=a_one.organization)
    client = server.sdk(issued.secret)

    assert {p.id for p in client.projects.list()} == {a_one.project_id, a_two.project_id}
    created = client.chat.create(project_id=a_two.project_id)
    assert created.session_id in [s.session_id for s in a_two.client.chat.list()]
    assert client.chat.retrieve(world.sessions[a_one.project_id], project_id=a_one.project_id)
    with pytest.raises(NotFoundError):
        client.chat.list(project_id=b_one.project_id)
    with pytest.raises(NotFoundError):
        client.chat.retrieve(world.sessions[a_two.project_id], project_id=a_one.project_id)


ENDPOINTS = [
    ("GET", "/api/v1/chat"),
    ("POST", "/api/v1/chat"),
    ("GET", "/api/v1/chat/ses-x"),
    ("GET", "/api/v1/chat/ses-x/summary"),
    ("DELETE", "/api/v1/chat/ses-x"),
    ("GET", "/api/v1/projects"),
    ("GET", "/api/v1/projects/p"),
]


@pytest.mark.parametrize("method,path", ENDPOINTS)
def test_missing_bad_and_revoked_keys_are_401(server: LiveServer, method: str, path: str) -> None:
    tenant = make_tenant(server)
    with server.runtime.db.write() as tx:
        tenancy.revoke_key(tx, tenant.key_id)
    before = count_sessions(server)
    for headers in (
        {},
        {"Authorization": "Bearer llx-wrong"},
        {"Authorization": f"Bearer {tenant.api_key}"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
    ):
        response = httpx.request(
            method, server.base_url + path, headers=headers, json={} if method == "POST" else None
        )
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["detail"]
    assert count_sessions(server) == before


def test_sdk_raises_authentication_error_for_revoked_key(server: LiveServer) -> None:
    tenant = make_tenant(server)
    assert list(tenant.client.chat.list()) == []
    with server.runtime.db.write() as tx:
        tenancy.revoke_key(tx, tenant.key_id)
    with pytest.raises(AuthenticationError):
        tenant.client.chat.list()
