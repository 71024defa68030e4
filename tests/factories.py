"""Plain functions that make what tests need: servers, tenants, indexes, files, settings.

Tests import these from here, never from one another; fixtures stay in conftest.py.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from llama_cloud import LlamaCloud

from indexchat.api.app import create_app
from indexchat.api.serving import uvicorn_options
from indexchat.config import Settings
from indexchat.domain import Scope
from indexchat.runtime import Runtime
from indexchat.services import directories, indexes, sign_ins, tenancy

BACKENDS = [b for b in os.environ.get("INDEXCHAT_TEST_BACKENDS", "sqlite,postgres").split(",") if b]


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


def add_index(server: LiveServer, scope: Scope, name: str = "docs") -> str:
    """An index over a new, empty directory, made through the service layer."""
    with server.runtime.db.write() as tx:
        source = directories.create_directory(tx, scope, name=f"{name} files")
        return indexes.create_index(tx, scope, source_directory_id=source.id, name=name).id


def documented_statuses(server: LiveServer, method: str, path: str) -> set[int]:
    """The statuses the served OpenAPI document declares for one operation."""
    operation = httpx.get(f"{server.base_url}/openapi.json").json()["paths"][path][method.lower()]
    return {int(status) for status in operation["responses"]}


def count_sessions(server: LiveServer) -> int:
    from sqlalchemy import func, select

    from indexchat.storage.tables import ChatSession

    with server.runtime.db.read() as tx:
        return int(tx.scalar(select(func.count()).select_from(ChatSession)) or 0)


NOTES = {
    "volcano.md": "# Volcanoes\n\nBasaltic lava from shield volcanoes flows far before it cools.",
    "bread.md": "# Baking\n\nSourdough bread rises with wild yeast and lactobacilli.",
    "tides.txt": "Tides follow the moon: two high waters a day on most coasts.",
}


def wait_for_sync(client: LlamaCloud, index_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while client.indexes.get(index_id, expand=["sync_in_progress"]).sync_in_progress:
        assert time.monotonic() < deadline, "sync did not finish"
        time.sleep(0.2)
    return client.indexes.get(index_id).metadata


def make_index(tenant: Tenant, files: dict[str, bytes], **options: object) -> tuple[str, str, dict]:
    directory = tenant.client.beta.directories.create(name="notes")
    placed = {}
    for name, data in files.items():
        placed[name] = tenant.client.beta.directories.files.upload(
            directory.id,
            upload_file=(name, data),
            metadata=json.dumps({"topic": name.split(".")[0]}),
        ).id
    index = tenant.client.indexes.create(source_directory_id=directory.id, **options)
    assert tenant.client.indexes.sync(index.id)["status"] == "started"
    return index.id, directory.id, placed


def synced_index(server: LiveServer, notes: dict[str, str]) -> tuple[Tenant, str]:
    """A new tenant with one synced index over ``notes`` (file name -> text)."""
    tenant = make_tenant(server)
    index_id, _, _ = make_index(tenant, {name: text.encode() for name, text in notes.items()})
    wait_for_sync(tenant.client, index_id)
    return tenant, index_id


def minimal_pdf(pages: list[str]) -> bytes:
    """A PDF with one line of Helvetica text per page."""
    count = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(count))
    font = 3 + 2 * count
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>",
    ]
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects += [
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * i} 0 R >>",
            f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        ]
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    return out + trailer.encode()


def llm_settings(tmp: Any, database_url: str | None, base_url: str) -> Settings:
    return Settings(
        data_dir=tmp,
        database_url=database_url,
        llm="openai",
        llm_model="fake-model",
        llm_base_url=base_url,
        llm_api_key="sk-test",
        llm_timeout_seconds=TIMEOUT,
        max_model_calls=MAX_CALLS,
    )


def new_link(server: LiveServer, tenant: Tenant) -> str:
    with server.runtime.db.write() as tx:
        return sign_ins.create_link(tx, organization=tenant.organization, project=tenant.project)


TURN_NOTES = {
    "rivers.md": "# Rivers\n\nThe Danube flows through Vienna, Bratislava and Budapest.",
    "cats.md": "# Cats\n\nDomestic cats sleep for twelve to sixteen hours a day.",
    "tea.txt": "Green tea is steamed or pan-fired soon after picking to stop oxidation.",
}


MAX_CALLS = 3


TIMEOUT = 2.0


# A two-page PDF and a note whose parsed text differs from its bytes (the line endings): losing
# one blob leaves the other.
FJORDS = minimal_pdf(["Glaciers carve valleys.", "Fjords are drowned glacial valleys."])
NOTE = b"# Sourdough\r\n\r\nSourdough bread rises with wild yeast.\r\n"


def synced_pdf_and_note(tenant: Tenant) -> str:
    """A synced index over ``FJORDS`` and ``NOTE`` that stores page screenshots."""
    index_id, _, _ = make_index(
        tenant, {"fjords.pdf": FJORDS, "bread.md": NOTE}, store_attachments=["screenshots"]
    )
    state = wait_for_sync(tenant.client, index_id)
    assert state["files_parsed"] == 2
    return index_id


def parsed_ids(tenant: Tenant, index_id: str) -> dict[str, str]:
    """File name -> id of each parsed file of an index."""
    return {f.file_name: f.file_id for f in tenant.client.retrieval.find(index_id=index_id)}


def login(server: LiveServer, api_key: str, **extra: str) -> httpx.Response:
    """The sign-in form posted from the server's own origin."""
    return httpx.post(
        f"{server.base_url}/login",
        data={"api_key": api_key, **extra},
        headers={"Origin": server.base_url},
    )


def signed_in(server: LiveServer, api_key: str) -> httpx.Client:
    """A client holding the cookie of a sign-in made with ``api_key`` (and nothing else)."""
    response = login(server, api_key)
    assert response.status_code == 303, response.text
    return httpx.Client(base_url=server.base_url, cookies={"session": response.cookies["session"]})


def upload_index(client: LlamaCloud, files: dict[str, bytes]) -> str:
    """An index (not yet synced) over a new directory holding ``files``."""
    directory = client.beta.directories.create(name="uploads")
    for name, data in files.items():
        client.beta.directories.files.upload(directory.id, upload_file=(name, data))
    return client.indexes.create(source_directory_id=directory.id, name="uploads").id


def sync_and_wait(client: LlamaCloud, index_id: str, timeout: float = 60) -> dict[str, object]:
    """Start a sync and return the index's metadata once it is over."""
    assert client.indexes.sync(index_id)["status"] == "started"
    return wait_for_sync(client, index_id, timeout)


def failures(metadata: dict[str, object]) -> dict[str, str]:
    """File name -> error of each file a sync failed."""
    failed = metadata["failed_files"]
    assert isinstance(failed, list)
    return {f["file_name"]: f["error"] for f in failed}
