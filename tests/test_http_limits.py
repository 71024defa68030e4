"""What an unauthenticated or careless client cannot do to the server: make it read a body
before its key is checked, send bodies or heads without bound, or lose its pooled connection
to an error. Driven over raw sockets where the point is what is (not) sent."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from factories import LiveServer, Tenant, live_server
from fastapi import FastAPI

from indexchat.api.serving import MAX_HEAD_BYTES, MAX_URL_BYTES
from indexchat.config import Settings


def _connect(server: LiveServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body[:length]


def _request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


UPLOAD_HEADERS = {
    "Content-Type": "multipart/form-data; boundary=xyz",
    "Content-Length": str(300 * 1024 * 1024),
}
CHAT_HEADERS = {"Content-Type": "text/plain", "Content-Length": str(400 * 1024 * 1024)}


@pytest.mark.parametrize(
    "path,headers",
    [("/api/v1/beta/files", UPLOAD_HEADERS), ("/api/v1/chat", CHAT_HEADERS)],
    ids=["upload", "text-body"],
)
@pytest.mark.parametrize("key", [None, "llx-not-a-real-key"], ids=["no-key", "bad-key"])
def test_a_body_without_a_valid_key_is_refused_before_it_is_sent(
    server: LiveServer, path: str, headers: dict[str, str], key: str | None
) -> None:
    sent = dict(headers)
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    with _connect(server) as sock:
        # Only the head and a few bytes: the answer must come without the rest of the body.
        sock.sendall(_request_head("POST", path, sent) + b"--xyz\r\n")
        status, response_headers, body = _read_response(sock)
    assert status == 401, body
    assert response_headers["content-type"] == "application/json"
    assert json.loads(body)["detail"]


def test_a_body_with_a_valid_key_is_served(server: LiveServer, tenant: Tenant) -> None:
    # The early check is the route's own: a Bearer key needs no Origin, whatever it says.
    response = httpx.post(
        f"{server.base_url}/api/v1/chat",
        json={},
        headers={"Authorization": f"Bearer {tenant.api_key}", "Origin": "https://evil.example"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", None])
def test_every_body_is_bounded_whatever_its_content_type(
    server: LiveServer, tenant: Tenant, content_type: str | None
) -> None:
    limit = server.runtime.settings.max_json_body_bytes
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    if content_type:
        headers["Content-Type"] = content_type
    declared = httpx.post(
        f"{server.base_url}/api/v1/chat", content=b"x" * (limit + 1), headers=headers
    )
    assert declared.status_code == 413, declared.text
    assert str(limit) in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    streamed = httpx.post(f"{server.base_url}/api/v1/chat", content=chunks(), headers=headers)
    assert streamed.status_code == 413, streamed.text


def test_uploads_take_files_larger_than_the_body_limit(server: LiveServer, tenant: Tenant) -> None:
    size = server.runtime.settings.max_json_body_bytes * 2
    created = tenant.client.files.create(file=("big.txt", b"a" * size), purpose="user_data")
    assert created.id and created.name == "big.txt"


def test_an_upload_above_the_file_limit_is_refused_unread(
    server: LiveServer, tenant: Tenant
) -> None:
    too_large = server.runtime.settings.max_upload_bytes + 2 * 1024 * 1024
    headers = {**UPLOAD_HEADERS, "Content-Length": str(too_large)}
    headers["Authorization"] = f"Bearer {tenant.api_key}"
    with _connect(server) as sock:
        sock.sendall(_request_head("POST", "/api/v1/beta/files", headers) + b"--xyz\r\n")
        status, _, body = _read_response(sock)
    assert status == 413, body


def test_an_over_long_url_is_414_json(server: LiveServer) -> None:
    response = httpx.get(f"{server.base_url}/health?q={'a' * (MAX_URL_BYTES + 10)}")
    assert response.status_code == 414
    assert "URL" in response.json()["detail"]


def test_over_large_headers_are_431_json(server: LiveServer) -> None:
    many = {f"x-filler-{i}": "v" * 1000 for i in range(MAX_HEAD_BYTES // 1000 + 2)}
    response = httpx.get(f"{server.base_url}/health", headers=many)
    assert response.status_code == 431
    assert "headers" in response.json()["detail"]


def test_one_endless_header_is_cut_off(server: LiveServer) -> None:
    """A header that never ends is refused once it passes the bound, not buffered forever."""
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(64):  # 4 MiB at most; the refusal comes after ~1 MiB
                sock.sendall(b"v" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, body = _read_response(sock)
    assert status == 431, body


def test_normal_requests_keep_working_next_to_the_limits(server: LiveServer) -> None:
    response = httpx.get(
        f"{server.base_url}/health?q={'a' * (MAX_URL_BYTES // 2)}",
        headers={"x-filler": "v" * (MAX_HEAD_BYTES // 2)},
    )
    assert response.status_code == 200


def _with_failing_route(app: FastAPI) -> None:
    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")


@pytest.fixture(scope="module")
def failing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("data-failing")
    with live_server(Settings(data_dir=data_dir), "sqlite", extend=_with_failing_route) as running:
        yield running


def test_a_500_leaves_the_connection_usable(failing_server: LiveServer) -> None:
    with _connect(failing_server) as sock:
        sock.sendall(_request_head("GET", "/boom", {}))
        status, headers, body = _read_response(sock)
        assert status == 500
        assert json.loads(body) == {"detail": "internal server error"}
        assert headers.get("connection") != "close"
        sock.sendall(_request_head("GET", "/health", {}))  # the same connection
        status, _, _ = _read_response(sock)
    assert status == 200


def test_event_numbers_beyond_64_bits_are_422(server: LiveServer, tenant: Tenant) -> None:
    chat = tenant.client.chat.create()
    response = httpx.get(
        f"{server.base_url}/api/v1/chat/{chat.session_id}/messages/stream",
        params={"after": "9223372036854775808"},
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "after"]


def test_405_names_the_allowed_methods(server: LiveServer, tenant: Tenant) -> None:
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    response = httpx.put(f"{server.base_url}/api/v1/chat", headers=headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    response = httpx.post(f"{server.base_url}/api/v1/indexes/idx-1", headers=headers)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"DELETE", "GET"}
