"""Shared fixtures: a real server on a loopback port, over SQLite and over PostgreSQL.

Every test that takes ``server`` runs once per backend. Set ``INDEXCHAT_TEST_BACKENDS=sqlite``
(or ``postgres``) to run one only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from deployments import Deployment, fresh_postgres_database
from factories import (
    BACKENDS,
    LiveServer,
    Tenant,
    live_server,
    make_tenant,
)

from indexchat.config import Settings
from indexchat.search.embeddings import LocalEmbedder

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


@pytest.fixture(scope="session", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"data-{backend}")
    database_url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    with live_server(Settings(data_dir=data_dir, database_url=database_url), backend) as running:
        yield running


@pytest.fixture
def tenant(server: LiveServer) -> Tenant:
    return make_tenant(server)


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
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "models").symlink_to(model_cache)
    url = None
    if request.param == "postgres":
        url = fresh_postgres_database(request.getfixturevalue("postgres_url"))
    deployment = Deployment(data_dir, url)
    yield deployment
    deployment.close()
