"""Deployments of real ``indexchat serve`` / ``indexchat worker`` processes for tests: a data
dir and a database (a fresh one per test on PostgreSQL), the processes started on them, their
logs, and an official SDK client for the newest server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
from conftest import free_port
from llama_cloud import LlamaCloud
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from indexchat.config import Settings
from indexchat.runtime import open_database
from indexchat.services import tenancy
from indexchat.storage import jobs
from indexchat.storage.tables import Job

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
        return LlamaCloud(api_key=self.api_key, base_url=self.base_url, max_retries=0)

    def job(self, index_id: str) -> Job:
        with self.db.read() as tx:
            job = jobs.latest_for_index(tx, index_id)
        assert job is not None
        return job

    def close(self) -> None:
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
