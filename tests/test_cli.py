"""The ``indexchat`` command: admin commands on a data dir, chat commands through the SDK."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from factories import LiveServer, Tenant, add_index, free_port, make_tenant
from llama_cloud import AuthenticationError, LlamaCloud
from typer.testing import CliRunner

import indexchat
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
    with db.read() as tx:
        principal = tenancy.authenticate(tx, secret)
        assert principal.project_id == created["id"]
        stored = [k.key_hash for k in tenancy.list_keys(tx)]
    assert secret not in stored and tenancy.hash_key(secret) in stored

    code, out, _ = invoke("keys", "list", "--format", "json", "--data-dir", str(data_dir))
    [key] = json.loads(out)
    assert secret not in out
    code, out, _ = invoke("keys", "revoke", key["id"], "--data-dir", str(data_dir))
    assert code == 0
    with db.read() as tx, pytest.raises(Exception, match="revoked"):
        tenancy.authenticate(tx, secret)
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
    summary = " ".join(out.split())
    assert "3 added, 0 updated, 0 removed, 0 unchanged" in summary
    assert "2 files searchable, 1 failed" in summary
    [index] = list(tenant.client.indexes.list())
    assert index.name == "notes" and index.metadata["files_total"] == 3

    # By id or by name, everywhere an index is taken.
    for ref in (index.id, "notes"):
        code, out, err = invoke(
            "retrieve", "wild yeast", "--index", ref, "--format", "json", env=sdk_env
        )
        assert code == 0, err
        results = json.loads(out)
        assert results[0]["file"] == "bread.md" and results[0]["rank"] == 1
        code, out, err = invoke("indexes", "get", ref, env=sdk_env)
        assert code == 0, err
        assert json.loads(out)["id"] == index.id

    (folder / "comets.md").write_text("Comets have icy tails.")
    code, out, _ = invoke("ingest", str(folder), "--index", "notes", env=sdk_env)  # adds only new
    assert code == 0 and len(list(tenant.client.indexes.list())) == 1
    assert "1 added, 0 updated, 0 removed, 3 unchanged" in " ".join(out.split())
    assert tenant.client.indexes.get(index.id).metadata["files_total"] == 4


def _retrieve_texts(tenant: Tenant, index_id: str, query: str) -> list[str]:
    hits = tenant.client.retrieval.retrieve(index_id=index_id, query=query, top_k=10).results
    return [hit.content for hit in hits]


def test_ingest_again_mirrors_the_folder(
    server: LiveServer, tenant: Tenant, sdk_env: dict[str, str], tmp_path: Path
) -> None:
    """A changed file is indexed with its new content; a deleted one leaves with --delete."""
    folder = tmp_path / "handbook"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    (folder / "leave.md").write_text("Leave is requested from your manager two weeks ahead.")
    (folder / "a" / "notes.md").write_text("Parking is free on the north lot.")
    (folder / "b" / "notes.md").write_text("Lunch is served from noon.")  # same name, other folder
    (folder / "old.md").write_text("The old expense policy used paper forms.")
    code, out, err = invoke("ingest", str(folder), "--index", "handbook", env=sdk_env)
    assert code == 0, err
    assert "4 added" in out
    [index] = list(tenant.client.indexes.list())

    (folder / "leave.md").write_text("Leave is requested in the HR portal one week ahead.")
    (folder / "old.md").unlink()
    code, out, err = invoke("ingest", str(folder), "--index", "handbook", env=sdk_env)
    assert code == 0, err
    summary = " ".join(out.split())
    assert "0 added, 1 updated, 0 removed, 2 unchanged" in summary
    assert "1 indexed files are no longer in the folder (old.md)" in summary
    texts = " ".join(_retrieve_texts(tenant, index.id, "how is leave requested"))
    assert "HR portal" in texts and "two weeks" not in texts  # the new content only
    assert "paper forms" in " ".join(_retrieve_texts(tenant, index.id, "expense policy"))

    code, out, err = invoke("ingest", str(folder), "--index", "handbook", "--delete", env=sdk_env)
    assert code == 0, err
    assert "0 added, 0 updated, 1 removed, 3 unchanged" in " ".join(out.split())
    assert "paper forms" not in " ".join(_retrieve_texts(tenant, index.id, "expense policy"))
    listed = tenant.client.beta.directories.files.list(index.source_directory_id)
    assert sorted(f.unique_id for f in listed) == ["a/notes.md", "b/notes.md", "leave.md"]
    assert tenant.client.indexes.get(index.id).metadata["files_total"] == 3


def test_commands_take_index_names_and_project_ids(
    server: LiveServer, sdk_env: dict[str, str]
) -> None:
    organization = f"org-{os.urandom(4).hex()}"
    first = make_tenant(server, organization=organization)
    second = make_tenant(server, organization=organization)
    with server.runtime.db.write() as tx:  # a key for every project of the organization
        key = tenancy.create_key(tx, project=None, organization=organization).secret
    env = {**sdk_env, "LLAMA_CLOUD_API_KEY": key}
    mine = add_index(server, second.scope, name="handbook")
    add_index(server, first.scope, name="handbook")

    code, out, err = invoke(
        "indexes", "get", "handbook", "--project-id", second.project_id, env=env
    )
    assert code == 0, err
    assert json.loads(out)["id"] == mine
    code, out, err = invoke(
        "chat", "create", "--index", "handbook", "--project-id", second.project_id, env=env
    )
    assert code == 0, err
    assert json.loads(out)["index_ids"] == [mine]

    twin = add_index(server, second.scope, name="handbook")
    code, _, err = invoke("indexes", "get", "handbook", "--project-id", second.project_id, env=env)
    assert code == 1 and "2 indexes are named 'handbook'" in err
    assert mine in err and twin in err and "Traceback" not in err
    code, _, err = invoke("indexes", "sync", "nope", "--project-id", second.project_id, env=env)
    assert code == 1 and "no index 'nope'" in err


def test_help_shows_defaults_and_version() -> None:
    wide = {"COLUMNS": "200"}
    _, out, _ = invoke("serve", "--help", env=wide)
    assert "Listen address. [env var: INDEXCHAT_HOST] [default: (127.0.0.1)]" in out
    assert "[default: (8000)]" in out and "[default: (extractive)]" in out
    _, out, _ = invoke("keys", "create", "--help", env=wide)
    assert "Project name. [default: (the organization's default project)]" in out
    _, out, _ = invoke("retrieve", "--help", env=wide)
    assert "How many chunks to return. [default: 5]" in out
    assert "--project-id" in out and "[default: (http://127.0.0.1:8000)]" in out
    code, out, _ = invoke("--version")
    assert code == 0 and out.strip() == f"indexchat {indexchat.__version__}"


def test_help_imports_no_server_or_sdk_code() -> None:
    """`indexchat --help` loads the CLI alone: the SDK, the database, the web framework and
    the model runtime are imported by the commands that use them."""
    script = (
        "import sys\n"
        "sys.argv = ['indexchat', '--help']\n"
        "from indexchat.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "Usage: indexchat" in done.stdout
    loaded = {name.split(".")[0] for name in done.stderr.split()}
    heavy = {"llama_cloud", "sqlalchemy", "pydantic", "fastapi", "uvicorn", "numpy", "httpx"}
    assert not loaded & heavy
    assert not {"indexchat.runtime", "indexchat.config"} & set(done.stderr.split())


def test_serve_on_a_taken_port_says_so_before_serving(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = invoke(
            "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"), env={}
        )
    assert code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in err
    assert "serving" not in out
