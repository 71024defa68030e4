"""Shared fixtures: a real server on a loopback port, over SQLite and over PostgreSQL.

Every test that takes ``server`` runs once per backend. Set ``INDEXCHAT_TEST_BACKENDS=sqlite``
(or ``postgres``) to run one only.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn
from fastapi import FastAPI
from llama_cloud import LlamaCloud

from indexchat.api.app import create_app
from indexchat.api.serving import uvicorn_options
from indexchat.config import Settings
from indexchat.domain import Scope
from indexchat.runtime import Runtime
from indexchat.search.embeddings import LocalEmbedder
from indexchat.services import directories, indexes, tenancy

if TYPE_CHECKING:
    from deployments import Deployment

BACKENDS = [b for b in os.environ.get("INDEXCHAT_TEST_BACKENDS", "sqlite,postgres").split(",") if b]
# The real-world documents (see their MANIFEST.md): shared/ beside the repository, or elsewhere.
DOCS = Path(
    os.environ.get("INDEXCHAT_TEST_DOCS")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "docs"
)


@pytest.fixture(scope="session")
def docs() -> Path:
    """The shared real-world documents; tests that need them skip when they are not there."""
    if not DOCS.is_dir():
        pytest.skip(f"shared documents not found at {DOCS} (set INDEXCHAT_TEST_DOCS)")
    return DOCS


# The page tests' fixtures: indexchat serve in a subprocess, Chromium, screenshots.
pytest_plugins = ["web.served"]


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL (with pgvector) started from the pgserver package, one fresh database."""
    import pgserver

    pgdata = tmp_path_factory.mktemp("pgdata")
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    database = f"indexchat_{uuid.uuid4().hex[:8]}"
    server.psql(f"CREATE DATABASE {database};")
    yield f"postgresql+psycopg://postgres@/{database}?host={pgdata}"
    server.cleanup()


@dataclass
class LiveServer:
    base_url: str
    runtime: Runtime
    backend: str

    def sdk(self, api_key: str, **kwargs: object) -> LlamaCloud:
        return LlamaCloud(api_key=api_key, base_url=self.base_url, max_retries=0, **kwargs)  # type: ignore[arg-type]


@dataclass
class Tenant:
    """An organization with a project and a key for it, made through the service layer."""

    organization: str
    organization_id: str
    project: str
    project_id: str
    api_key: str
    key_id: str
    client: LlamaCloud

    @property
    def scope(self) -> Scope:
        return Scope(organization_id=self.organization_id, project_id=self.project_id)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(
    settings: Settings, backend: str, extend: Callable[[FastAPI], None] | None = None
) -> Iterator[LiveServer]:
    """``indexchat``'s app on uvicorn on a free loopback port, in a thread; ``extend`` may add
    routes to the app first."""
    runtime = Runtime.open(settings)
    port = free_port()
    app = create_app(settings, runtime)
    if extend is not None:
        extend(app)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        **uvicorn_options(),  # as `indexchat serve`
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uvicorn_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(base_url=f"http://127.0.0.1:{port}", runtime=runtime, backend=backend)
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=10)
        runtime.close()


@pytest.fixture(scope="session", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"data-{backend}")
    database_url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    with live_server(Settings(data_dir=data_dir, database_url=database_url), backend) as running:
        yield running


def make_tenant(
    server: LiveServer, *, organization: str | None = None, project: str | None = None
) -> Tenant:
    organization = organization or f"org-{uuid.uuid4().hex[:8]}"
    project = project or f"proj-{uuid.uuid4().hex[:8]}"
    with server.runtime.db.write() as tx:
        created = tenancy.create_project(tx, project, organization=organization)
        issued = tenancy.create_key(tx, project=project, organization=organization)
    return Tenant(
        organization=organization,
        organization_id=created.organization_id,
        project=project,
        project_id=created.id,
        api_key=issued.secret,
        key_id=issued.key.id,
        client=server.sdk(issued.secret),
    )


@pytest.fixture
def tenant(server: LiveServer) -> Tenant:
    return make_tenant(server)


def add_index(server: LiveServer, scope: Scope, name: str = "docs") -> str:
    """An index over a new, empty directory, made through the service layer."""
    with server.runtime.db.write() as tx:
        source = directories.create_directory(tx, scope, name=f"{name} files")
        return indexes.create_index(tx, scope, source_directory_id=source.id, name=name).id


def documented_statuses(server: LiveServer, method: str, path: str) -> set[int]:
    """The statuses the served OpenAPI document declares for one operation."""
    import httpx

    operation = httpx.get(f"{server.base_url}/openapi.json").json()["paths"][path][method.lower()]
    return {int(status) for status in operation["responses"]}


def count_sessions(server: LiveServer) -> int:
    from sqlalchemy import func, select

    from indexchat.storage.tables import ChatSession

    with server.runtime.db.read() as tx:
        return int(tx.scalar(select(func.count()).select_from(ChatSession)) or 0)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="session")
def model_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The exported embedding model, shared by every data dir (exporting takes ~40 s)."""
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    folder = cache.mkdir("indexchat-models") if cache else tmp_path_factory.mktemp("models")
    LocalEmbedder(folder).load()
    return Path(folder)


@pytest.fixture(params=BACKENDS)
def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, model_cache: Path
) -> Iterator[Deployment]:
    """A data dir and database for ``indexchat`` processes (see deployments.py), per backend."""
    from deployments import Deployment, fresh_postgres_database  # it imports this module

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "models").symlink_to(model_cache)
    url = None
    if request.param == "postgres":
        url = fresh_postgres_database(request.getfixturevalue("postgres_url"))
    deployment = Deployment(data_dir, url)
    yield deployment
    deployment.close()
