"""Bad request bodies get a clear 4xx with ``detail`` and write nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from factories import LiveServer, Tenant, count_sessions
from llama_cloud import UnprocessableEntityError

BAD_BODIES = [
    {"index_ids": "idx-1"},
    {"index_ids": 5},
    {"index_ids": [1, 2]},
    {"index_ids": [None]},
    {"index_ids": [""]},
    {"index_ids": ["x" * 500]},
    {"index_ids": [{"id": "idx"}]},
    {"shared_access": "admin"},
    {"shared_access": 1},
    {"shared_access": ["query"]},
    {"index_ids": [f"idx-{i}" for i in range(101)]},
    {"index_ids": [f"idx-{i}" for i in range(20_000)]},
    [],
    "text",
    None,
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=lambda b: repr(b)[:40])
def test_bad_create_bodies_are_422(server: LiveServer, tenant: Tenant, body: object) -> None:
    before = count_sessions(server)
    response = httpx.post(
        f"{server.base_url}/api/v1/chat",
        json=body,
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert count_sessions(server) == before


@pytest.mark.parametrize(
    "content,content_type",
    [
        (b"{not json", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b'{"index_ids": [', "application/json"),
        (b"index_ids=a", "application/x-www-form-urlencoded"),
    ],
)
def test_non_json_bodies_are_4xx(
    server: LiveServer, tenant: Tenant, content: bytes, content_type: str
) -> None:
    before = count_sessions(server)
    response = httpx.post(
        f"{server.base_url}/api/v1/chat",
        content=content,
        headers={"Authorization": f"Bearer {tenant.api_key}", "Content-Type": content_type},
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]
    assert count_sessions(server) == before


def test_oversized_body_is_413(server: LiveServer, tenant: Tenant) -> None:
    limit = server.runtime.settings.max_json_body_bytes
    before = count_sessions(server)
    response = httpx.post(
        f"{server.base_url}/api/v1/chat",
        content=b'{"index_ids": null}' + b" " * limit,
        headers={"Authorization": f"Bearer {tenant.api_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert str(limit) in response.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"index_ids": null}'
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    response = httpx.post(
        f"{server.base_url}/api/v1/chat",
        content=chunks(),
        headers={"Authorization": f"Bearer {tenant.api_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert count_sessions(server) == before


def test_sdk_maps_validation_errors(tenant: Tenant) -> None:
    with pytest.raises(UnprocessableEntityError) as caught:
        tenant.client.chat.create(shared_access="everyone")  # type: ignore[arg-type]
    assert caught.value.body["detail"][0]["loc"] == ["body", "shared_access"]


@pytest.mark.parametrize("session_id", ["%00", "a" * 300, "..%2F..%2Fetc", "ses-\u2603"])
def test_odd_session_ids_are_4xx(server: LiveServer, tenant: Tenant, session_id: str) -> None:
    response = httpx.get(
        f"{server.base_url}/api/v1/chat/{session_id}",
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert 400 <= response.status_code < 500


def test_repeated_scalar_query_params_are_422(server: LiveServer, tenant: Tenant) -> None:
    response = httpx.get(
        f"{server.base_url}/api/v1/chat?page_size=1&page_size=2",
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "page_size"]


NUL = "a\x00b"


def _nul_requests(server: LiveServer, tenant: Tenant) -> list[tuple[str, str, dict, str]]:
    """(method, path, httpx arguments, the field the 422 must name) for every free-text input."""
    directory = tenant.client.beta.directories.create(name="nul-probe")
    stored = tenant.client.files.create(file=("n.txt", b"x"), purpose="user_data")
    chat = tenant.client.chat.create()
    directories = "/api/v1/beta/directories"
    upload = {"files": {"upload_file": ("u.txt", b"x")}}
    return [
        ("POST", directories, {"json": {"name": NUL}}, "name"),
        ("POST", directories, {"json": {"name": "ok", "description": NUL}}, "description"),
        ("PATCH", f"{directories}/{directory.id}", {"json": {"description": NUL}}, "description"),
        (
            "POST",
            f"{directories}/{directory.id}/files",
            {"json": {"file_id": stored.id, "display_name": NUL}},
            "display_name",
        ),
        (
            "POST",
            f"{directories}/{directory.id}/files",
            {"json": {"file_id": stored.id, "unique_id": NUL}},
            "unique_id",
        ),
        *(
            (
                "POST",
                f"{directories}/{directory.id}/files/upload",
                {**upload, "data": {field: NUL}},
                field,
            )
            for field in ("display_name", "unique_id", "external_file_id")
        ),
        (
            "POST",
            "/api/v1/beta/files",
            {
                "files": {"file": ("f.txt", b"x")},
                "data": {"purpose": "user_data", "external_file_id": NUL},
            },
            "external_file_id",
        ),
        (
            "POST",
            f"/api/v1/chat/{chat.session_id}/messages/stream",
            {"json": {"index_ids": [], "prompt": NUL}},
            "prompt",
        ),
        (
            "POST",
            "/api/v1/retrieval/retrieve",
            {
                "json": {
                    "index_id": "idx-1",
                    "query": "q",
                    "custom_filters": {"k": {"operator": "eq", "value": NUL}},
                }
            },
            "value",
        ),
        (
            "POST",
            "/api/v1/retrieval/retrieve",
            {"json": {"index_id": "idx-1", "query": NUL}},
            "query",
        ),
        (
            "POST",
            "/api/v1/retrieval/files/find",
            {"json": {"index_id": "idx-1", "file_name": NUL}},
            "file_name",
        ),
        (
            "POST",
            "/api/v1/retrieval/files/grep",
            {"json": {"index_id": "idx-1", "file_id": "fil-1", "pattern": NUL}},
            "pattern",
        ),
        ("POST", "/api/v1/beta/files/query", {"json": {"filter": {"file_name": NUL}}}, "file_name"),
        ("GET", "/api/v1/beta/files", {"params": {"file_name": NUL}}, "file_name"),
        (
            "GET",
            f"{directories}/{directory.id}/files",
            {"params": {"display_name_contains": NUL}},
            "display_name_contains",
        ),
        ("GET", directories, {"params": {"name": NUL}}, "name"),
    ]


def test_nul_characters_are_422_naming_the_field(server: LiveServer, tenant: Tenant) -> None:
    """PostgreSQL cannot store NUL in text (it answered 500); both backends refuse it alike."""
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers) as client:
        for method, path, arguments, field in _nul_requests(server, tenant):
            response = client.request(method, path, **arguments)
            assert response.status_code == 422, (method, path, field, response.text)
            locations = [error["loc"] for error in response.json()["detail"]]
            assert any(field in loc for loc in locations), (path, field, locations)


def _request_schemas(document: dict) -> Iterator[tuple[str, dict]]:
    """(where, schema) of every parameter and request body of the OpenAPI document, with every
    schema reachable from them (references followed once each)."""
    components = document["components"]["schemas"]
    seen: set[str] = set()

    def walk(where: str, schema: object) -> Iterator[tuple[str, dict]]:
        if isinstance(schema, list):
            for item in schema:
                yield from walk(where, item)
        if not isinstance(schema, dict):
            return
        reference = schema.get("$ref")
        if isinstance(reference, str):
            name = reference.rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                yield from walk(name, components[name])
            return
        yield where, schema
        for key, value in schema.items():
            if key in {"properties", "$defs"}:
                for name, item in value.items():
                    yield from walk(f"{where}.{name}", item)
            elif isinstance(value, dict | list):
                yield from walk(where, value)

    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            for parameter in operation.get("parameters", []):
                where = f"{method.upper()} {path} {parameter['in']} {parameter['name']}"
                yield from walk(where, parameter.get("schema"))
            for media in operation.get("requestBody", {}).get("content", {}).values():
                yield from walk(f"{method.upper()} {path} body", media.get("schema"))


def test_every_integer_input_is_bounded_in_the_schema(server: LiveServer) -> None:
    document = httpx.get(f"{server.base_url}/openapi.json").json()
    unbounded = [
        where
        for where, schema in _request_schemas(document)
        if schema.get("type") == "integer" and ("minimum" not in schema or "maximum" not in schema)
    ]
    assert not unbounded


def test_every_integer_parameter_past_its_bound_is_422(server: LiveServer, tenant: Tenant) -> None:
    document = httpx.get(f"{server.base_url}/openapi.json").json()
    checked = 0
    for path, methods in document["paths"].items():
        url = re.sub(r"\{[^}]+\}", "x", path)  # any id: the 422 comes before any lookup
        for method, operation in methods.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                integer = next(
                    (s for s in [schema, *schema.get("anyOf", [])] if s.get("type") == "integer"),
                    None,
                )
                if integer is None or parameter["in"] != "query":
                    continue
                top, bottom = integer.get("maximum", 10**23), integer.get("minimum", -(10**23))
                for value in (top + 1, bottom - 1, 10**23):
                    response = httpx.request(
                        method,
                        f"{server.base_url}{url}",
                        params={parameter["name"]: str(value)},
                        headers={"Authorization": f"Bearer {tenant.api_key}"},
                    )
                    assert response.status_code == 422, (method, path, value, response.text)
                    locations = [error["loc"] for error in response.json()["detail"]]
                    assert ["query", parameter["name"]] in locations, (method, path, value)
                    checked += 1
    assert checked >= 30


def _form_fields(document: dict, schema: dict) -> dict[str, dict]:
    reference = schema.get("$ref", "")
    return dict(document["components"]["schemas"][reference.rsplit("/", 1)[-1]]["properties"])


def _form_part(name: str, schema: dict) -> tuple[str, tuple[str | None, bytes]]:
    if schema.get("contentMediaType") == "application/octet-stream":
        return name, ("part.txt", b"some text")
    return name, (None, str(schema.get("enum", ["x"])[0]).encode())


def test_a_form_field_sent_twice_is_422_naming_it(server: LiveServer, tenant: Tenant) -> None:
    """A form sends a list as a repeated field: every single-valued field of every multipart
    operation refuses one, as its JSON twin refuses a list."""
    document = httpx.get(f"{server.base_url}/openapi.json").json()
    checked = 0
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            media = operation.get("requestBody", {}).get("content", {})
            if "multipart/form-data" not in media:
                continue
            fields = _form_fields(document, media["multipart/form-data"]["schema"])
            for twice in fields:
                parts = [_form_part(name, schema) for name, schema in fields.items()]
                parts.append(_form_part(twice, fields[twice]))
                response = httpx.request(
                    method,
                    f"{server.base_url}{re.sub(r'[{][^}]+[}]', 'x', path)}",
                    files=parts,
                    headers={"Authorization": f"Bearer {tenant.api_key}"},
                )
                assert response.status_code == 422, (path, twice, response.text)
                assert response.json()["detail"][0]["loc"] == ["body", twice], response.text
                checked += 1
    assert checked >= 8
