"""No other local user can read the data dir: the database holds the key that signs download
links, the blobs every tenant's files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from deployments import fresh_postgres_database
from factories import BACKENDS, live_server, make_tenant

from indexchat.config import Settings
from indexchat.services.backup import backup


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_private(root: Path) -> None:
    """``root`` and every folder below it 0700, every file 0600 (model files aside)."""
    assert mode(root) == 0o700, root
    for path in root.rglob("*"):
        if "models" in path.relative_to(root).parts:
            continue  # a published model, not anyone's data
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path


@pytest.mark.parametrize("backend", BACKENDS)
def test_data_dir_database_and_blobs_are_private(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    data_dir = tmp_path / "new" / "data"
    url = None
    if backend == "postgres":
        url = fresh_postgres_database(request.getfixturevalue("postgres_url"))
    settings = Settings(data_dir=data_dir, database_url=url)
    with live_server(settings, backend) as server:
        tenant = make_tenant(server)
        tenant.client.files.create(file=("secret.txt", b"payroll"), purpose="user_data")
        names = {p.name for p in data_dir.iterdir()}
        assert "blobs" in names
        if backend == "sqlite":
            assert {"indexchat.db", "indexchat.db-wal", "indexchat.db-shm"} <= names
        assert mode(data_dir.parent) == 0o700  # made by us too
        assert_private(data_dir)
        if backend == "sqlite":
            target = tmp_path / "backup"
            backup(settings.resolved_database_url(), data_dir / "blobs", target)
            assert_private(target)


def test_an_existing_data_dir_is_narrowed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    database = data_dir / "indexchat.db"
    database.touch(mode=0o644)
    settings = Settings(data_dir=data_dir)
    with live_server(settings, "sqlite"):
        assert mode(data_dir) == 0o700 and mode(database) == 0o600
