"""No request stalls another: work that grows with the data runs off the event loop.

On SQLite small requests run their database work on the event loop (no thread hop). Each heavy
read here is held, on purpose, inside the service call it makes; while it is held, ``/health``
and a small request must still answer. Had the heavy read run on the event loop, nothing else
could be served until it was let go. Heavy reads also take turns (each one in flight is one
more thread the event loop shares the GIL with), and retrieval, which mostly waits without the
GIL, does not wait for them.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from factories import LiveServer, Tenant, live_server, make_tenant
from fastapi import FastAPI

from indexchat.api.serving import GIL_SWITCH_INTERVAL_S
from indexchat.config import Settings
from indexchat.runtime import Runtime
from indexchat.services import directories, files, indexes, retrieval, session_search, sessions
from indexchat.services import turns as turn_service

HOLD_SECONDS = 30  # longest a held call waits to be let go (a failing test's worst case)
ANSWER_SECONDS = 10  # what the other requests get to answer while a heavy read is held


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    def loop_thread_route(app: FastAPI) -> None:
        @app.get("/test/loop-thread")
        async def loop_thread() -> int:  # async: runs on the event loop's thread
            return threading.get_ident()

        @app.get("/test/switch-interval")
        async def switch_interval() -> float:
            return sys.getswitchinterval()

    settings = Settings(data_dir=tmp_path_factory.mktemp("data-stalls"))
    with live_server(settings, "sqlite", extend=loop_thread_route) as running:
        yield running


@pytest.fixture(scope="module")
def owner(sqlite_server: LiveServer) -> Tenant:
    return make_tenant(sqlite_server)


@pytest.fixture(scope="module")
def targets(sqlite_server: LiveServer, owner: Tenant) -> dict[str, str]:
    """A session with a share link, a directory, and a file, made over the API."""
    with _http(sqlite_server, owner) as http:
        session_id = http.post("/api/v1/chat", json={}).json()["session_id"]
        link = http.post(f"/api/v1/chat/{session_id}/share-links", json={}).json()
        directory = http.post("/api/v1/beta/directories", json={"name": "d"}).json()["id"]
        upload = {"upload_file": ("a.txt", b"some text")}
        placed = http.post(f"/api/v1/beta/directories/{directory}/files/upload", files=upload)
        assert placed.status_code == 200, placed.text
    return {
        "session": session_id,
        "share_token": link["url"].rstrip("/").rsplit("/", 1)[1],
        "directory": directory,
        "file": placed.json()["file_id"],
    }


def _http(server: LiveServer, tenant: Tenant) -> httpx.Client:
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=HOLD_SECONDS * 2)


@pytest.fixture
def http(sqlite_server: LiveServer, owner: Tenant) -> Iterator[httpx.Client]:
    """The owner's client, closed after the test (its pooled connections with it)."""
    with _http(sqlite_server, owner) as client:
        yield client


@contextmanager
def held(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> Iterator[Callable[[], int]]:
    """``module.name`` waits, once called, until the block ends; yields a function that waits
    for the call and returns the id of the thread it runs on."""
    original = getattr(module, name)
    called, release = threading.Event(), threading.Event()
    threads: list[int] = []

    def holding(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        called.set()
        release.wait(HOLD_SECONDS)
        return original(*args, **kwargs)

    def entered() -> int:
        assert called.wait(HOLD_SECONDS), f"{name} was never called"
        return threads[0]

    monkeypatch.setattr(module, name, holding)
    try:
        yield entered
    finally:
        release.set()


# (service module, function the route calls, method, path or path template, JSON body)
HEAVY: list[tuple[Any, str, str, str, Any]] = [
    (sessions, "session_events", "GET", "/api/v1/chat/{session}", None),
    (sessions, "session_events", "GET", "/api/v1/chat/{session}/export?format=md", None),
    (sessions, "session_events", "GET", "/api/v1/chat/{session}/export?format=json", None),
    (turn_service, "events_after", "GET", "/api/v1/chat/{session}/messages/stream?after=0", None),
    (sessions, "session_events", "GET", "/s/{share_token}/chat", None),
    (turn_service, "events_after", "GET", "/s/{share_token}/chat/messages/stream", None),
    (session_search, "search_sessions", "GET", "/api/v1/chat/search?q=word", None),
    (sessions, "list_sessions", "GET", "/api/v1/chat?page_size=100", None),
    (directories, "list_directories", "GET", "/api/v1/beta/directories?page_size=1000", None),
    (
        directories,
        "list_files",
        "GET",
        "/api/v1/beta/directories/{directory}/files?page_size=500",
        None,
    ),
    (files, "list_files", "GET", "/api/v1/beta/files?page_size=1000", None),
    (files, "list_files", "POST", "/api/v1/beta/files/query", {"page_size": 1000}),
    (indexes, "list_indexes", "GET", "/api/v1/indexes?page_size=100", None),
    (retrieval, "attachments", "GET", "/api/v1/beta/attachments?source_id={file}", None),
]


@pytest.mark.parametrize(
    ("module", "name", "method", "path", "body"),
    HEAVY,
    ids=[f"{method} {path}" for _m, _n, method, path, _b in HEAVY],
)
def test_a_heavy_read_in_progress_does_not_stall_the_server(
    http: httpx.Client,
    targets: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    module: Any,
    name: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    loop_thread = http.get("/test/loop-thread").json()
    answers: list[httpx.Response] = []
    with held(monkeypatch, module, name) as entered:
        heavy = threading.Thread(
            target=lambda: answers.append(http.request(method, path.format(**targets), json=body))
        )
        heavy.start()
        assert entered() != loop_thread, "the heavy read runs on the event loop"
        health = http.get("/health", timeout=ANSWER_SECONDS)
        assert health.status_code == 200
        small = http.get(f"/api/v1/chat/{targets['session']}/summary", timeout=ANSWER_SECONDS)
        assert small.status_code == 200
    heavy.join(HOLD_SECONDS)
    assert [a.status_code for a in answers] == [200], answers[0].text if answers else "no answer"


def test_heavy_reads_take_turns_and_small_requests_pass_them(
    sqlite_server: LiveServer,
    owner: Tenant,
    targets: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each heavy read in flight is one more thread the event loop shares the GIL with: a
    second one waits for the first, while small requests are still served."""
    http = _http(sqlite_server, owner)
    second_entered = threading.Event()
    original = files.list_files

    def recording(*args: Any, **kwargs: Any) -> Any:
        second_entered.set()
        return original(*args, **kwargs)

    monkeypatch.setattr(files, "list_files", recording)
    answers: dict[str, int] = {}

    def ask(name: str, path: str) -> None:
        answers[name] = http.get(path).status_code

    first = threading.Thread(target=ask, args=("first", f"/api/v1/chat/{targets['session']}"))
    second = threading.Thread(target=ask, args=("second", "/api/v1/beta/files?page_size=1000"))
    with held(monkeypatch, sessions, "session_events") as entered:
        first.start()
        entered()
        second.start()
        assert http.get("/health", timeout=ANSWER_SECONDS).status_code == 200
        small = http.get(f"/api/v1/chat/{targets['session']}/summary", timeout=ANSWER_SECONDS)
        assert small.status_code == 200
        assert not second_entered.wait(1), "a second heavy read ran beside the first"
    first.join(HOLD_SECONDS)
    second.join(HOLD_SECONDS)
    assert second_entered.is_set()
    assert answers == {"first": 200, "second": 200}


def test_a_retrieval_does_not_wait_for_a_heavy_read(
    sqlite_server: LiveServer,
    owner: Tenant,
    targets: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Retrieval mostly waits without the GIL (the embedding model, an embedding or rerank
    service): made to take turns, it would hold the heavy reads up, and they it."""
    http = _http(sqlite_server, owner)
    retrieving = threading.Event()

    def retrieve(*args: Any, **kwargs: Any) -> list[Any]:
        retrieving.set()
        return []

    monkeypatch.setattr(retrieval, "retrieve", retrieve)
    with held(monkeypatch, sessions, "session_events") as entered:
        heavy = threading.Thread(target=http.get, args=(f"/api/v1/chat/{targets['session']}",))
        heavy.start()
        entered()
        body = {"index_id": "idx-00000000-0000-0000-0000-000000000000", "query": "word"}
        answer = http.post("/api/v1/retrieval/retrieve", json=body, timeout=ANSWER_SECONDS)
        assert retrieving.is_set()
        assert answer.status_code == 200, answer.text
    heavy.join(HOLD_SECONDS)


def test_the_server_gives_the_gil_back_to_the_event_loop_sooner(
    sqlite_server: LiveServer, owner: Tenant
) -> None:
    interval = _http(sqlite_server, owner).get("/test/switch-interval").json()
    assert interval == GIL_SWITCH_INTERVAL_S < 0.005  # Python's own default


def test_a_small_page_is_still_served_on_the_event_loop(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the choice: a small page costs less than a thread hop would."""
    loop_thread = http.get("/test/loop-thread").json()
    threads: list[int] = []
    original = files.list_files

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(files, "list_files", recording)
    assert http.get("/api/v1/beta/files?page_size=20").status_code == 200
    assert threads == [loop_thread]


def test_the_chat_model_is_built_at_start_up_not_by_the_first_turn(tmp_path: Any) -> None:
    """Building it imports the model's SDK, seconds of work: the first turn would do it on the
    event loop, and every request and live stream of the server would wait meanwhile."""
    settings = Settings(
        data_dir=tmp_path,
        llm="openai",
        llm_model="fake-model",
        llm_base_url="http://127.0.0.1:9/v1",
        llm_api_key="unused",
    )
    runtime = Runtime.open(settings)
    try:
        assert runtime._chat_model is None
        runtime.warm_up()  # what the server runs in a thread of its own at start-up
        assert runtime._chat_model is not None
    finally:
        runtime.close()
        gc.unfreeze()  # warm_up froze this test process's objects too
