"""The API docs pages work offline: /docs and /redoc load only files this server serves."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import httpx
import pytest
from factories import LiveServer

# The pages touch no storage: one backend is enough.
pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)

URL = re.compile(
    r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']|(https?://[^\s"'<>)]+)"""
)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_references_only_local_files(server: LiveServer, page: str) -> None:
    response = httpx.get(server.base_url + page)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    found = [next(g for g in m.groups() if g) for m in URL.finditer(response.text)]
    assert found, response.text
    external = [url for url in found if not url.startswith("/")]
    assert external == [], f"{page} loads from elsewhere: {external}"
    for url in found:  # each one is served, with content
        asset = httpx.get(urljoin(server.base_url, url))
        assert asset.status_code == 200 and asset.content, url
    scripts = [u for u in found if u.endswith(".js")]
    assert scripts and all(u.startswith("/static/vendor/") for u in scripts)


def test_swagger_oauth2_redirect_is_served(server: LiveServer) -> None:
    response = httpx.get(server.base_url + "/docs/oauth2-redirect")
    assert response.status_code == 200 and "oauth2" in response.text.lower()


def test_every_openapi_reference_resolves(server: LiveServer) -> None:
    """ReDoc refuses a document with a dangling $ref ("Invalid reference token")."""
    document = httpx.get(server.base_url + "/openapi.json").json()
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        target: object = document
        for part in ref[2:].split("/"):
            assert isinstance(target, dict) and part in target, f"dangling $ref {ref}"
            target = target[part]
