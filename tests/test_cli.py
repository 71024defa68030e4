"""The ``indexchat`` command: admin commands on a data dir, chat commands through the SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import LiveServer, Tenant, add_index, free_port
from llama_cloud import AuthenticationError, LlamaCloud
from typer.testing import CliRunner

from indexchat.cli import app
from indexchat.config import Settings
from indexchat.runtime import open_database
from indexchat.services import tenancy

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_projects_and_keys_admin_commands(data_dir: Path) -> None:
    code, out, _ = invoke(
        "projects", "create", "Research", "--org", "Acme", "--data-dir", str(data_dir)
    )
    assert code == 0, out
    created = json.loads(out)
    code, out, err = invoke(
        "projects", "create", "Research", "--org", "Acme", "--data-dir", str(data_dir)
    )
    assert code == 1 and "already exists" in err

    code, out, _ = invoke("projects", "list", "--format", "json", "--data-dir", str(data_dir))
    listed = {(p["organization"], p["name"]) for p in json.loads(out)}
    assert listed == {("Default", "Default"), ("Acme", "Research")}

    code, out, _ = invoke(
        "keys", "create", "--project", "Research", "--org", "Acme", "--data-dir", str(data_dir)
    )
    assert code == 0
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("llx-") and " " not in secret

    db = open_database(Settings(data_dir=data_dir))
    with db.read() as session:
        principal = tenancy.authenticate(session, secret)
        assert principal.project_id == created["id"]
        stored = [k.key_hash for k in tenancy.list_keys(session)]
    assert secret not in stored and tenancy.hash_key(secret) in stored

    code, out, _ = invoke("keys", "list", "--format", "json", "--data-dir", str(data_dir))
    [key] = json.loads(out)
    assert secret not in out
    code, out, _ = invoke("keys", "revoke", key["id"], "--data-dir", str(data_dir))
    assert code == 0
    with db.read() as session, pytest.raises(Exception, match="revoked"):
        tenancy.authenticate(session, secret)
    db.dispose()

    code, _, err = invoke("keys", "revoke", "key-nope", "--data-dir", str(data_dir))
    assert code == 1 and "not found" in err
    code, _, err = invoke("keys", "create", "--project", "Nope", "--data-dir", str(data_dir))
    assert code == 1 and "not found" in err and "Traceback" not in err


@pytest.fixture
def sdk_env(server: LiveServer, tenant: Tenant) -> dict[str, str]:
    return {"LLAMA_CLOUD_API_KEY": tenant.api_key, "LLAMA_CLOUD_BASE_URL": server.base_url}


@pytest.mark.parametrize("group", ["beta:chat", "chat"])
def test_chat_commands_round_trip(
    server: LiveServer, tenant: Tenant, sdk_env: dict[str, str], group: str
) -> None:
    index_id = add_index(server, tenant.scope)
    code, out, err = invoke(
        group, "create", "--index-id", index_id, "--shared-access", "query", env=sdk_env
    )
    assert code == 0, err
    created = json.loads(out)
    assert created["index_ids"] == [index_id] and created["shared_access"] == "query"
    sid = created["session_id"]
    assert tenant.client.chat.get_summary(sid).index_ids == [index_id]  # really on the server

    invoke(group, "create", env=sdk_env)
    code, out, _ = invoke(group, "list", "--page-size", "1", env=sdk_env)
    first = json.loads(out)
    assert len(first["items"]) == 1 and first["next_page_token"]
    code, out, _ = invoke(
        group, "list", "--page-size", "1", "--page-token", first["next_page_token"], env=sdk_env
    )
    second = json.loads(out)
    assert second["items"][0]["session_id"] == sid and "next_page_token" not in second

    code, out, _ = invoke(group, "get", "--session-id", sid, env=sdk_env)
    assert json.loads(out)["events"] == []
    code, out, _ = invoke(group, "summary", "--session-id", sid, "--format", "table", env=sdk_env)
    assert code == 0 and "query" in out
    code, out, _ = invoke(group, "delete", "--session-id", sid, env=sdk_env)
    assert code == 0
    code, _, err = invoke(group, "get", "--session-id", sid, env=sdk_env)
    assert code == 1 and "404" in err and sid in err and "Traceback" not in err


def test_chat_commands_report_errors_without_traceback(
    server: LiveServer, sdk_env: dict[str, str]
) -> None:
    code, _, err = invoke("chat", "list", "--page-size", "0", env=sdk_env)
    assert code == 1 and "page_size" in err
    code, _, err = invoke("chat", "create", "--index-id", "idx-missing", env=sdk_env)
    assert code == 1 and "idx-missing" in err
    code, _, err = invoke("chat", "list", "--api-key", "llx-wrong", "--base-url", server.base_url)
    assert code == 1 and "401" in err
    code, _, err = invoke(
        "chat", "list", "--api-key", "k", "--base-url", f"http://127.0.0.1:{free_port()}"
    )
    assert code == 1 and "cannot reach" in err
    for output in (err,):
        assert "Traceback" not in output


def test_serve_command_starts_a_usable_server(tmp_path: Path) -> None:
    """The README's path: a fresh data dir, `indexchat serve`, a key, the SDK."""
    port = free_port()
    indexchat = str(Path(sys.executable).with_name("indexchat"))
    env = {**os.environ, "INDEXCHAT_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [indexchat, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not come up"
            time.sleep(0.1)
        key = (
            subprocess.run(
                [indexchat, "keys", "create"], env=env, capture_output=True, text=True, check=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        client = LlamaCloud(api_key=key, base_url=f"http://127.0.0.1:{port}", max_retries=0)
        created = client.chat.create()
        assert [s.session_id for s in client.chat.list()] == [created.session_id]
        assert client.projects.list()[0].is_default
        with pytest.raises(AuthenticationError):
            LlamaCloud(
                api_key="llx-nope", base_url=f"http://127.0.0.1:{port}", max_retries=0
            ).chat.list()
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=15)
    assert f"http://127.0.0.1:{port}" in output and "indexchat keys create" in output


def test_ingest_folder_then_retrieve(
    server: LiveServer, tenant: Tenant, sdk_env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "bread.md").write_text("# Baking\n\nSourdough bread rises with wild yeast.")
    (folder / "sub" / "tides.txt").write_text("Tides follow the moon.")
    (folder / "broken.pdf").write_bytes(b"not a pdf")
    (folder / ".hidden").write_text("skipped")

    code, out, err = invoke("ingest", str(folder), "--index", "notes", env=sdk_env)
    assert code == 0, err
    assert "2 files searchable, 1 failed" in " ".join(out.split())
    [index] = list(tenant.client.indexes.list())
    assert index.name == "notes" and index.metadata["files_total"] == 3

    code, out, _ = invoke(
        "retrieve", "wild yeast", "--index", index.id, "--format", "json", env=sdk_env
    )
    results = json.loads(out)
    assert code == 0 and results[0]["file"] == "bread.md" and results[0]["rank"] == 1

    (folder / "comets.md").write_text("Comets have icy tails.")
    code, out, _ = invoke("ingest", str(folder), "--index", "notes", env=sdk_env)  # adds only new
    assert code == 0 and len(list(tenant.client.indexes.list())) == 1
    assert tenant.client.indexes.get(index.id).metadata["files_total"] == 4
