"""Chat turns from the CLI against a real server and a real synced index: `chat stream` (text
and JSON lines, errors) and the interactive `chat` driven through piped stdin."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from factories import (
    LiveServer,
    Tenant,
    add_index,
    live_server,
    llm_settings,
    make_index,
    make_tenant,
    minimal_pdf,
    wait_for_sync,
)
from fake_llm import FakeLLM, Reply
from typer.testing import CliRunner

from indexchat.cli import app

# The commands only speak HTTP through the SDK, so one backend is enough.
sqlite_only = pytest.mark.parametrize("server", ["sqlite"], indirect=True)

runner = CliRunner()

NOTES = {
    "rivers.md": b"# Rivers\n\nThe Danube flows through Vienna, Bratislava and Budapest.",
    "cats.md": b"# Cats\n\nDomestic cats sleep for twelve to sixteen hours a day.",
}
DANUBE = "Which cities does the Danube flow through?"
CATS = "How long do domestic cats sleep?"
# The extractive answerer runs no language model: no model calls, no tokens.
USAGE = re.compile(r"^no model calls · \d+\.\d s$", re.M)


@pytest.fixture
def notes(tenant: Tenant) -> str:
    files = dict(NOTES)
    files["fjords.pdf"] = minimal_pdf(
        ["Glaciers carve valleys.", "The Danube delta lies far from any Norwegian fjord."]
    )
    index_id, _, _ = make_index(tenant, files)
    assert wait_for_sync(tenant.client, index_id)["files_parsed"] == 3
    return index_id


@pytest.fixture
def env(server: LiveServer, tenant: Tenant) -> dict[str, str]:
    return {"LLAMA_CLOUD_API_KEY": tenant.api_key, "LLAMA_CLOUD_BASE_URL": server.base_url}


def invoke(*args: str, env: dict[str, str], input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env, input=input)
    return result.exit_code, result.stdout, result.stderr


def turns_of(tenant: Tenant, session_id: str) -> list[str]:
    events = tenant.client.chat.retrieve(session_id).events
    return [e.content for e in events if e.type == "user_input"]


@sqlite_only
def test_stream_prints_the_answer_tool_calls_sources_and_usage(
    tenant: Tenant, notes: str, env: dict[str, str]
) -> None:
    chat = tenant.client.chat.create(index_ids=[notes])
    code, out, err = invoke(
        "beta:chat", "stream", "--session-id", chat.session_id, "--index-id", notes,
        "--prompt", DANUBE, env=env,
    )  # fmt: skip
    assert code == 0, err
    assert f'→ retrieve {{"query": "{DANUBE}", "top_k": 6}}' in out
    assert re.search(r"^← retrieve: 3 passages$", out, re.M)
    assert "> # Rivers The Danube flows through Vienna, Bratislava and Budapest." in out
    assert USAGE.search(out), out
    sources = out[out.index("Sources:") :].splitlines()
    assert sources[1] == "  [1] rivers.md"
    # The PDF's passage is cited with the page it came from.
    history = tenant.client.chat.retrieve(chat.session_id).events
    hits = next(e for e in history if e.type == "tool_result").result
    pdf_hit = next(h for h in hits if h["file_name"] == "fjords.pdf")
    assert pdf_hit["page_end"] == 2
    assert any(re.fullmatch(r"  \[\d\] fjords\.pdf, pp?\. (1–)?2", line) for line in sources)
    assert out.index("→ retrieve") < out.index("Vienna") < out.index("Sources:")
    assert turns_of(tenant, chat.session_id) == [DANUBE]


@sqlite_only
def test_stream_json_lines_are_the_events_ending_with_stop(
    tenant: Tenant, notes: str, env: dict[str, str]
) -> None:
    chat = tenant.client.chat.create()
    code, out, err = invoke(
        "chat", "stream", "--session-id", chat.session_id, "--index-id", notes,
        "--prompt", CATS, "--format", "json", env=env,
    )  # fmt: skip
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "user_input" and kinds[-1] == "stop" and "tool_call" in kinds
    answer = next(e for e in events if e["type"] == "text")["content"]
    assert "".join(e["content"] for e in events if e["type"] == "text_delta") == answer
    assert "twelve to sixteen hours" in answer and events[-1]["is_error"] is False


@sqlite_only
def test_stream_reports_errors_and_exits_non_zero(
    server: LiveServer, tenant: Tenant, notes: str, env: dict[str, str]
) -> None:
    code, out, err = invoke(
        "chat", "stream", "--session-id", "ses-missing", "--prompt", "Hello?", env=env
    )
    assert code == 1 and "404" in err and "ses-missing" in err and "Traceback" not in err

    other = add_index(server, tenant.scope, name="other")
    bound = tenant.client.chat.create(index_ids=[notes])
    code, out, err = invoke(
        "chat", "stream", "--session-id", bound.session_id, "--index-id", other,
        "--prompt", DANUBE, env=env,
    )  # fmt: skip
    assert code == 1 and "409" in err and "bound" in err and other in err
    assert turns_of(tenant, bound.session_id) == []

    # A turn that fails after streaming began: stop with is_error, printed, exit 1.
    unbound = tenant.client.chat.create()
    code, out, err = invoke(
        "chat", "stream", "--session-id", unbound.session_id, "--index-id", notes,
        "--index-id", other, "--require-all-indexes", "--prompt", DANUBE, env=env,
    )  # fmt: skip
    assert code == 1 and "Error:" in err and other in err
    assert f"skipped indexes (unknown or never synced): {other}" in out
    assert "no model calls" in out
    assert turns_of(tenant, unbound.session_id) == [DANUBE]  # the turn is kept, as failed


@sqlite_only
def test_interactive_chat_keeps_one_session_across_questions(
    tenant: Tenant, notes: str, env: dict[str, str]
) -> None:
    earlier = tenant.client.chat.create(index_ids=[notes])
    with tenant.client.chat.with_streaming_response.stream(
        earlier.session_id, index_ids=[notes], prompt="Where are fjords?"
    ) as response:
        response.read()
    before = {s.session_id for s in tenant.client.chat.list()}

    script = f"{DANUBE}\n{CATS}\n/sessions\n/open {earlier.session_id}\n/bogus\n/quit\n"
    code, out, err = invoke("chat", "--index", "notes", env=env, input=script)
    assert code == 0, err
    [created] = {s.session_id for s in tenant.client.chat.list()} - before
    assert turns_of(tenant, created) == [DANUBE, CATS]  # both questions, one new session
    assert tenant.client.chat.get_summary(created).index_ids == [notes]  # --index by name

    assert "Vienna, Bratislava and Budapest" in out and "twelve to sixteen hours" in out
    assert len(USAGE.findall(out)) == 2
    listing = out[out.index("/sessions") : out.index(f"/open {earlier.session_id}")]
    assert re.search(rf"^ 1\* {created}  .*  Which cities do", listing, re.M)
    assert re.search(rf"^ 2  {earlier.session_id}  .*  Where are fjord", listing, re.M)
    opened = out[out.index(f"/open {earlier.session_id}") :]
    assert "you> Where are fjords?" in opened and "unknown command /bogus" in err
    assert turns_of(tenant, earlier.session_id) == ["Where are fjords?"]  # only looked at


@sqlite_only
def test_interactive_chat_continues_an_opened_session_and_ends_at_eof(
    tenant: Tenant, notes: str, env: dict[str, str]
) -> None:
    code, out, err = invoke("chat", "--index", notes, env=env, input=f"{DANUBE}\n")
    assert code == 0, err  # end of input quits
    [session] = tenant.client.chat.list()
    code, out, err = invoke(
        "beta:chat", "--session-id", session.session_id, env=env, input=f"{CATS}\n/export\n"
    )
    assert code == 0, err
    assert turns_of(tenant, session.session_id) == [DANUBE, CATS]
    assert f"Session `{session.session_id}`" in out and "## You" in out  # the Markdown export

    code, out, err = invoke("chat", "--index", "nope", env=env, input="/quit\n")
    assert code == 1 and "no index 'nope'" in err and "(indexes: notes)" in err
    assert len(list(tenant.client.chat.list())) == 1


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as llm:
        yield llm


@pytest.fixture(scope="module")
def llm_server(fake: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = llm_settings(tmp_path_factory.mktemp("cli-llm"), None, fake.base_url)
    with live_server(settings, "sqlite") as running:
        yield running


def test_stream_shows_thinking_and_ctrl_c_cancels_the_turn(
    llm_server: LiveServer, fake: FakeLLM
) -> None:
    """Every wait is on an event, never on a clock: the answer is far too long to finish by
    itself (~5 min), so the turn can only end because Ctrl-C cancelled it."""
    tenant = make_tenant(llm_server)
    chat = tenant.client.chat.create()
    fake.disconnected.clear()
    completed = fake.completed
    fake.script(
        Reply(
            reasoning="Weighing the sources.",
            text=[f"word{i} " for i in range(6000)],
            chunk_delay=0.05,
        )
    )
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("indexchat")), "chat", "stream",
         "--session-id", chat.session_id, "--prompt", "Tell me a long story."],
        env={**os.environ, "LLAMA_CLOUD_API_KEY": tenant.api_key,
             "LLAMA_CLOUD_BASE_URL": llm_server.base_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = b""
    while b"word3 " not in seen:  # the answer streams: it shows before the turn ends
        chunk = os.read(proc.stdout.fileno(), 1024)
        assert chunk, seen
        seen += chunk
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert seen.index(b"Weighing the sources.") < seen.index(b"word0 word1 word2 word3")
    assert b"Cancelled" in err and b"Traceback" not in err

    # The server cancels the model call, then ends the turn with a stop event: follow the
    # session's events until that stop (the follow stream ends with it).
    assert fake.disconnected.wait(timeout=120), "the model call was not cancelled"
    followed = tenant.client.with_options(timeout=120).get(
        f"/api/v1/chat/{chat.session_id}/messages/stream",
        cast_to=httpx.Response,
        options={"params": {"after": 0}},
    )
    events = [json.loads(line[5:]) for line in followed.text.splitlines() if line[:5] == "data:"]
    last = events[-1]
    assert last["type"] == "stop" and last["is_error"]
    assert "client disconnected" in (last["error"] or "")
    assert fake.completed == completed  # the long answer never ran to its end


def test_stream_summary_counts_model_calls_and_tokens(
    llm_server: LiveServer, fake: FakeLLM
) -> None:
    tenant = make_tenant(llm_server)
    chat = tenant.client.chat.create()
    fake.script(Reply(text="Vienna.", usage=(11, 7)))
    env = {"LLAMA_CLOUD_API_KEY": tenant.api_key, "LLAMA_CLOUD_BASE_URL": llm_server.base_url}
    code, out, err = invoke(
        "chat", "stream", "--session-id", chat.session_id, "--prompt", "Where?", env=env
    )
    assert code == 0, err
    assert re.search(r"^1 model call · 11 input / 7 output tokens · \d+\.\d s$", out, re.M), out
