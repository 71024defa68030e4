"""``indexchat serve --workers N``: several server processes on one port and one PostgreSQL
database; refused on SQLite, which takes one server process."""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from deployments import INDEXCHAT, Deployment, wait_until
from factories import free_port


def test_two_processes_serve_one_postgres_fleet(deployment: Deployment) -> None:
    if deployment.database_url is None:
        pytest.skip("several server processes need PostgreSQL")
    deployment.serve("serve-workers", "--workers", "2")
    started = wait_until(
        lambda: (
            set(re.findall(r"Started server process \[(\d+)\]", deployment.log("serve-workers")))
            if deployment.log("serve-workers").count("Application startup complete") >= 2
            else None
        ),
        "both processes to start",
        timeout=60,
    )
    assert len(started) == 2
    client = deployment.client

    def create(_: int) -> str:
        return client.chat.create().session_id

    with ThreadPoolExecutor(8) as pool:
        created = set(pool.map(create, range(40)))
    listed = {s.session_id for s in client.chat.list(page_size=100)}
    assert created <= listed and len(created) == 40
    for session_id in list(created)[:5]:
        assert client.chat.retrieve(session_id).session_id == session_id


def test_sqlite_refuses_several_processes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    refused = subprocess.run(
        [INDEXCHAT, "serve", "--workers", "2", "--port", str(free_port())],
        env={"INDEXCHAT_DATA_DIR": str(tmp_path), "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "PostgreSQL" in refused.stderr, refused.stderr
