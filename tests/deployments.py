"""Deployments of real ``indexchat serve`` / ``indexchat worker`` processes for tests: a data
dir and a database (a fresh one per test on PostgreSQL), the processes started on them, their
logs, and an official SDK client for the newest server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from factories import free_port
from llama_cloud import LlamaCloud
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from indexchat.config import Settings
from indexchat.runtime import open_database
from indexchat.search.embeddings import LOCAL_DIMENSION
from indexchat.search.sqlite import text_tables as sqlite_text_tables
from indexchat.services import tenancy
from indexchat.services.sync import BATCH_FILES
from indexchat.storage import jobs
from indexchat.storage.db import Database
from indexchat.storage.tables import Chunk, Job

T = TypeVar("T")

INDEXCHAT = str(Path(sys.executable).with_name("indexchat"))


def wait_until(check: Callable[[], T | None], what: str, timeout: float = 120) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@dataclass
class Deployment:
    """One data dir + database, and the indexchat processes started on it."""

    data_dir: Path
    database_url: str | None
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    api_key: str = ""
    clients: list[LlamaCloud] = field(default_factory=list)

    def __post_init__(self) -> None:
        settings = Settings(data_dir=self.data_dir, database_url=self.database_url)
        self.db = open_database(settings)
        with self.db.write() as tx:
            self.api_key = tenancy.create_key(tx, project=None, organization=None).secret

    def env(self, **settings: object) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
        env["INDEXCHAT_DATA_DIR"] = str(self.data_dir)
        if self.database_url:
            env["INDEXCHAT_DATABASE_URL"] = self.database_url
        env.update({f"INDEXCHAT_{k.upper()}": str(v) for k, v in settings.items()})
        return env

    def start(self, args: list[str], log_name: str, **settings: object) -> subprocess.Popen[str]:
        log = open(self.data_dir / f"{log_name}.log", "w")  # noqa: SIM115 - the process owns it
        process = subprocess.Popen(
            [INDEXCHAT, *args], env=self.env(**settings), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.processes.append(process)
        return process

    def log(self, log_name: str) -> str:
        return (self.data_dir / f"{log_name}.log").read_text()

    def serve(
        self, log_name: str = "serve", *args: str, **settings: object
    ) -> subprocess.Popen[str]:
        port = free_port()
        process = self.start(["serve", "--port", str(port), *args], log_name, **settings)
        self.base_url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert process.poll() is None, self.log(log_name)
            try:
                return httpx.get(f"{self.base_url}/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, "the server to start", timeout=60)
        return process

    def worker(self, log_name: str, *args: str, **settings: object) -> subprocess.Popen[str]:
        """Start ``indexchat worker``; ``wait_ready`` before counting on it."""
        return self.start(["worker", *args], log_name, **settings)

    def wait_ready(self, log_name: str, process: subprocess.Popen[str]) -> None:
        def ready() -> bool:
            log = self.log(log_name)
            if "waiting for jobs" in log:
                return True
            assert process.poll() is None, log
            return False

        wait_until(ready, "the worker to start", timeout=60)

    @property
    def client(self) -> LlamaCloud:
        """A new SDK client for the newest server; ``close()`` closes it, so no pooled
        connection to a killed server is left for the garbage collector."""
        client = LlamaCloud(api_key=self.api_key, base_url=self.base_url, max_retries=0)
        self.clients.append(client)
        return client

    def job(self, index_id: str) -> Job:
        with self.db.read() as tx:
            job = jobs.latest_for_index(tx, index_id)
        assert job is not None
        return job

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self.db.dispose()


def fresh_postgres_database(url: str) -> str:
    parsed = make_url(url)
    database = f"indexchat_jobs_{uuid.uuid4().hex[:8]}"
    engine = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {database}")
    engine.dispose()
    return parsed.set(database=database).render_as_string(hide_password=False)


def database_for(request: pytest.FixtureRequest, backend: str) -> str | None:
    """A fresh database URL for ``backend``: None on SQLite (the data dir holds it)."""
    if backend != "postgres":
        return None
    return fresh_postgres_database(request.getfixturevalue("postgres_url"))


# Seven batches of passages the model reads in full (~128 tokens each): a sync lasts long enough
# to be stopped with work done on both sides, even on a fast CPU.
FILES = 6 * BATCH_FILES + 8


FILLER = " ".join(
    f"Paragraph {n} records an observation about the sample and its measurement." for n in range(10)
)


def marker(i: int) -> str:
    return f"zq{i:04d}x"


def note(i: int) -> bytes:
    return f"Note {i}: the marker {marker(i)} belongs to this file only. {FILLER}".encode()


def make_index(client: LlamaCloud, files: range, name: str = "notes") -> str:
    directory = client.beta.directories.create(name=name)

    def upload(i: int) -> None:
        client.beta.directories.files.upload(
            directory.id, upload_file=(f"note-{i:04d}.txt", note(i))
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(upload, files))
    return client.indexes.create(source_directory_id=directory.id, name=name).id


def start_sync(deployment: Deployment, index_id: str, client: LlamaCloud | None = None) -> int:
    started = (client or deployment.client).indexes.sync(index_id)
    assert started["status"] == "started"
    return int(started["job_id"])


def wait_for_progress(deployment: Deployment, index_id: str, files: int) -> dict[str, Any]:
    """The job's progress once at least one batch is written, asserting the sync is not done."""

    def progressed() -> dict[str, Any] | None:
        progress = deployment.job(index_id).progress or {}
        return progress if progress.get("files_done", 0) >= BATCH_FILES else None

    progress = wait_until(progressed, "a first batch")
    assert progress["files_done"] < files, "the sync finished before it could be interrupted"
    return progress


def wait_for_sync(
    deployment: Deployment, index_id: str, timeout: float = 180, client: LlamaCloud | None = None
) -> dict[str, Any]:
    client = client or deployment.client
    wait_until(
        lambda: not client.indexes.get(index_id, expand=["sync_in_progress"]).sync_in_progress,
        "the sync to finish",
        timeout,
    )
    return client.indexes.get(index_id).metadata


def search_entry_ids(db: Database) -> set[int]:
    """Chunk ids held by the search store, text and vectors alike."""
    with db.read() as tx:
        if db.is_sqlite:
            connection = tx.connection()
            words = [
                rowid
                for table in sqlite_text_tables(connection)
                for rowid in connection.exec_driver_sql(f"SELECT rowid FROM {table}").scalars()
            ]
            vectors = tx.execute(
                text(f"SELECT rowid FROM chunk_vectors_{LOCAL_DIMENSION}")
            ).scalars()
            found = set(words)
            assert set(vectors) == found, "text and vector entries differ"
            return found
        return set(
            tx.execute(text(f"SELECT chunk_id FROM chunk_search_{LOCAL_DIMENSION}")).scalars()
        )


def indexed_markers(db: Database, index_id: str) -> tuple[list[str], set[int]]:
    with db.read() as tx:
        rows = tx.execute(select(Chunk.id, Chunk.text).where(Chunk.index_id == index_id)).all()
    markers = sorted(m for _, chunk_text in rows for m in re.findall(r"zq\d{4}x", chunk_text))
    return markers, {chunk_id for chunk_id, _ in rows}


def assert_indexed_once(
    deployment: Deployment, index_id: str, files: range, client: LlamaCloud | None = None
) -> None:
    """Every file searchable, each by exactly one chunk: none missing, none twice."""
    client = client or deployment.client
    metadata = client.indexes.get(index_id).metadata
    count = len(files)
    assert (metadata["files_total"], metadata["files_parsed"], metadata["chunks"]) == (
        count,
        count,
        count,
    )
    markers, chunk_ids = indexed_markers(deployment.db, index_id)
    assert markers == [marker(i) for i in files]
    assert chunk_ids <= search_entry_ids(deployment.db)
    # Through the API, one file per batch boundary: its marker finds its one chunk only.
    for i in sorted({files[0], files[-1], *files[BATCH_FILES - 1 :: BATCH_FILES]}):
        results = client.retrieval.retrieve(
            index_id=index_id,
            query=marker(i),
            top_k=5,
            full_text_pipeline_weight=1,
            vector_pipeline_weight=0,
        ).results
        assert [marker(i) in r.content for r in results] == [True], (i, results)


def assert_store_matches_tables(deployment: Deployment) -> None:
    """No search entry without its chunk (nothing left behind by an interrupted batch)."""
    with deployment.db.read() as tx:
        chunk_ids = set(tx.scalars(select(Chunk.id)))
    assert search_entry_ids(deployment.db) == chunk_ids
