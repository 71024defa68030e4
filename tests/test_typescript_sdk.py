"""The official TypeScript SDK (``@llamaindex/llama-cloud``, pinned in ``tests/ts``) against a
live server: ``tests/ts/conformance.mjs`` makes every chat, index, retrieval, directory and
file call the SDK has, checks each answer against the SDK's declared types, and reports what
it saw."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import LiveServer, Tenant

TS = Path(__file__).parent / "ts"
SDK_VERSION = json.loads((TS / "package.json").read_text())["dependencies"][
    "@llamaindex/llama-cloud"
]
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (CI installs it)")


@pytest.fixture(scope="session")
def sdk_installed() -> None:
    """``npm ci`` from the committed lock file, unless that exact version is installed."""
    installed = TS / "node_modules" / "@llamaindex" / "llama-cloud" / "package.json"
    if installed.is_file() and json.loads(installed.read_text())["version"] == SDK_VERSION:
        return
    npm = shutil.which("npm")
    assert npm is not None, "node is installed but npm is not"
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=TS, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"


def run_conformance(server: LiveServer, tenant: Tenant) -> dict[str, Any]:
    env = {
        **os.environ,
        "LLAMA_CLOUD_API_KEY": tenant.api_key,
        "LLAMA_CLOUD_BASE_URL": server.base_url,
    }
    assert NODE is not None
    done = subprocess.run(
        [NODE, "conformance.mjs"], cwd=TS, env=env, capture_output=True, text=True, timeout=900
    )
    # A failing step prints the SDK's error; show everything the script said.
    assert done.returncode == 0, f"TypeScript SDK run failed:\n{done.stdout}\n{done.stderr}"
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def test_typescript_sdk_drives_every_call(
    sdk_installed: None, server: LiveServer, tenant: Tenant
) -> None:
    seen = run_conformance(server, tenant)
    assert seen["shape_problems"] == []  # every answer fits the SDK's declared types

    files = seen["files"]
    assert files["listed"] == files["queried"] and len(files["listed"]) == 1
    assert httpx.get(files["content_url"]).content == b"Parking permits are renewed every January."
    assert files["project"] == tenant.project_id and tenant.project_id in files["projects"]

    directories = seen["directories"]
    assert directories["renamed"] == directories["got"] == "ts handbook (renamed)"
    # page_size 1: the SDK followed next_page_token over both directories, once each.
    assert len(directories["listed"]) == len(set(directories["listed"])) == 2
    assert directories["files"] == ["expenses.md", "leave.md", "parking-permits.txt"]
    assert directories["got_file"] == "parking.txt"
    assert directories["updated_file"] == "parking-permits.txt"
    assert directories["upload_metadata"] == {"topic": "leave"}

    assert seen["sync"]["status"] == "started"
    indexes = seen["indexes"]
    assert len(indexes["listed"]) == len(set(indexes["listed"])) == 2
    assert indexes["metadata"]["files_parsed"] == 3 and indexes["metadata"]["files_failed"] == 0

    retrieval = seen["retrieval"]
    assert "annual leave" in retrieval["first"] and retrieval["first_file"].startswith("dfl-")
    assert retrieval["found"] == ["expenses.md", "leave.md", "parking-permits.txt"]
    text = retrieval["read"]
    assert [content for content, _, _ in retrieval["matches"]] == ["Leave", "leave"]
    assert all(text[start:end] == content for content, start, end in retrieval["matches"])

    chat = seen["chat"]
    assert sorted(chat["listed"]) == sorted(chat["created"])  # 3 sessions over 2 pages
    assert chat["stream_type"] == "string"  # stream() resolves to the whole SSE text
    for events in (chat["streamed"], chat["incremental"]["events"]):
        assert events[0] == "user_input" and events[-1] == "stop"
        assert {"tool_call", "tool_result", "text_delta", "text"} <= set(events)
    assert chat["incremental"]["content_type"].startswith("text/event-stream")
    assert chat["incremental"]["chunks"] > 1  # read as it was sent, not in one piece
    assert chat["history"] == [e for e in chat["streamed"] if not e.endswith("_delta")]
    assert "HR portal" in chat["answer"]
    assert chat["summary_title"] == "How do I request annual leave?"
    assert chat["summary_has_events"] is False

    assert seen["deleted"]["files_left"] == ["expenses.md", "leave.md"]
    sessions = {s.session_id for s in tenant.client.chat.list()}
    assert sessions == set(chat["created"][:2])  # the third was deleted through the SDK
