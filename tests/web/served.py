"""What the page tests stand on: ``indexchat serve`` in a subprocess (on SQLite or PostgreSQL),
Debian's Chromium driven by Playwright, the shared real-world documents, screenshots.

``tests/conftest.py`` loads this module as a plugin (a second ``conftest.py`` would clash with
that one as the module ``conftest``); test modules import its helpers.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from deployments import database_for
from factories import BACKENDS, free_port
from fake_llm import FakeLLM
from llama_cloud import LlamaCloud
from web.chromium import CHROMIUM, launch

from indexchat.services import tenancy
from indexchat.storage.db import Database

# The shared real-world documents, beside the repository (or where INDEXCHAT_TEST_DOCS says).
DOCS = Path(
    os.environ.get("INDEXCHAT_TEST_DOCS")
    or Path(__file__).resolve().parents[2].parent / "shared" / "data" / "docs"
)
SERVE_TIMEOUT = 90


def docs(*names: str) -> list[Path]:
    """Files of the shared real-world documents; the test is skipped when they are missing."""
    paths = [DOCS / name for name in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"shared documents not found beside the repository: {', '.join(missing)}")
    return paths


@dataclass
class Served:
    """A running ``indexchat serve``: its URL, the sign-in link it printed, its database."""

    base_url: str
    link: str
    db: Database
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None  # copies the process's output into ``output``

    def new_project_key(self) -> str:
        """A key for a new project of its own, so a test sees only what it made."""
        with self.db.write() as tx:
            project = tenancy.create_project(tx, f"proj-{uuid.uuid4().hex[:8]}")
            return tenancy.create_key(tx, project=project.name).secret

    def sdk(self, api_key: str) -> LlamaCloud:
        return LlamaCloud(api_key=api_key, base_url=self.base_url, max_retries=0)


def start_serve(data_dir: Path, database_url: str | None, **env: str) -> Served:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("INDEXCHAT_", "OPENAI_"))}
    clean.update(env, INDEXCHAT_DATA_DIR=str(data_dir), COLUMNS="200")
    if database_url:
        clean["INDEXCHAT_DATABASE_URL"] = database_url
    process = subprocess.Popen(
        [sys.executable, "-m", "indexchat", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean,
    )
    output: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVE_TIMEOUT
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _close_output(process, reader)
            raise RuntimeError("indexchat serve did not start:\n" + "".join(output))
        link = next((line.strip() for line in output if "/login?token=" in line), None)
        if link and _healthy(base_url):
            break
        time.sleep(0.1)
    url = database_url or f"sqlite:///{data_dir / 'indexchat.db'}"
    return Served(
        base_url=base_url,
        link=link,
        db=Database(url),
        process=process,
        output=output,
        reader=reader,
    )


def stop_serve(served: Served) -> None:
    served.process.terminate()
    try:
        served.process.wait(15)
    except subprocess.TimeoutExpired:
        served.process.kill()
    _close_output(served.process, served.reader)
    served.db.dispose()


def _close_output(process: subprocess.Popen[str], reader: threading.Thread | None) -> None:
    """Close the output pipe once the reader has seen its end (the process has exited)."""
    process.wait()
    if reader is not None:
        reader.join(10)
    if process.stdout is not None:
        process.stdout.close()


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests leave a screenshot of each page, for a reviewer to look at."""
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    factory = getattr(config, "_tmp_path_factory", None)
    folder = factory.getbasetemp() / "screenshots" if factory is not None else None
    if folder is not None and folder.is_dir() and any(folder.iterdir()):
        terminalreporter.write_line(f"page screenshots: {folder}")


class Browser:
    """One browser context (its own cookies), recording dialogs and uncaught script errors."""

    def __init__(self, chromium: Any, **options: Any) -> None:
        self.context = chromium.new_context(viewport={"width": 1280, "height": 800}, **options)
        self.context.set_default_timeout(30_000)
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page = self.new_page()

    def new_page(self) -> Any:
        page = self.context.new_page()
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def browser(chromium: Any) -> Iterator[Browser]:
    opened = Browser(chromium)
    yield opened
    opened.close()
    assert not opened.errors, f"the page threw: {opened.errors}"


def sign_in(page: Any, served: Served, api_key: str) -> None:
    page.goto(f"{served.base_url}/login")
    page.get_by_label("API key").fill(api_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{served.base_url}/")


def drop_files(page: Any, selector: str, paths: list[Path], names: list[str] | None = None) -> None:
    """Drag and drop real files onto an element, as a file manager would."""
    files = [
        {
            "name": (names or [p.name for p in paths])[i],
            "data": base64.b64encode(path.read_bytes()).decode(),
            "type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        }
        for i, path in enumerate(paths)
    ]
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name, { type: f.type }));
            }
            return transfer;
        }""",
        files,
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def make_synced_index(
    client: LlamaCloud, name: str, files: dict[str, bytes], timeout: float = 240
) -> str:
    """An index (with page screenshots) over uploaded files, synced, through the API."""
    directory = client.beta.directories.create(name=f"{name} files")
    for file_name, data in files.items():
        client.beta.directories.files.upload(directory.id, upload_file=(file_name, data))
    index = client.indexes.create(
        source_directory_id=directory.id, name=name, store_attachments=["screenshots"]
    )
    client.indexes.sync(index.id)
    deadline = time.monotonic() + timeout
    while client.indexes.get(index.id, expand=["sync_in_progress"]).sync_in_progress:
        assert time.monotonic() < deadline, "sync did not finish"
        time.sleep(0.3)
    return index.id


@pytest.fixture(scope="session", params=BACKENDS)
def extractive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """``indexchat serve`` as installed: the offline extractive answerer."""
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"serve-{backend}")
    served = start_serve(data_dir, database_for(request, backend))
    yield served
    stop_serve(served)


@pytest.fixture(params=BACKENDS)
def newcomer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """A first ``indexchat serve`` on an empty data dir, as right after ``pip install .``."""
    backend: str = request.param
    served = start_serve(tmp_path / "data", database_for(request, backend))
    yield served
    stop_serve(served)


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as llm:
        yield llm


@pytest.fixture(scope="session", params=BACKENDS)
def scripted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeLLM
) -> Iterator[Served]:
    """``indexchat serve`` answering with the scripted OpenAI-compatible fake."""
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"serve-llm-{backend}")
    served = start_serve(
        data_dir,
        database_for(request, backend),
        INDEXCHAT_LLM="openai",
        INDEXCHAT_LLM_MODEL="fake-model",
        INDEXCHAT_LLM_BASE_URL=fake_llm.base_url,
        INDEXCHAT_LLM_API_KEY="sk-test",
        INDEXCHAT_LLM_TIMEOUT_SECONDS="10",
    )
    yield served
    stop_serve(served)
