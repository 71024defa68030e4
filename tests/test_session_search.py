"""Session search (an extension, ``GET /api/v1/chat/search``) over real HTTP on both backends:
what it finds, in what order, for whom, for how long, and page by page."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from factories import LiveServer, Tenant, make_tenant
from streams import stream_turn
from typer.testing import CliRunner

from indexchat.cli import app
from indexchat.domain import Scope
from indexchat.events import Stop, Text
from indexchat.processes import ProcessId
from indexchat.search import session_text
from indexchat.services import session_search, tenancy, turns
from indexchat.storage.db import Database
from indexchat.storage.migrate import alembic_config, upgrade
from indexchat.storage.tables import ChatEvent, ChatSession

FILLER = " ".join(f"filler{i % 37} words about nothing in particular" for i in range(120))


def word() -> str:
    """A word no other test's session contains (the server is shared)."""
    return "zq" + uuid.uuid4().hex[:10]


def add_turn(server: LiveServer, scope: Scope, session_id: str, prompt: str, answer: str) -> None:
    """One finished turn written as the turn runner writes it (prompt, text event, stop)."""
    db = server.runtime.db
    with db.write() as tx:
        plan = turns.begin_turn(
            tx,
            scope,
            session_id,
            owner=ProcessId.of_this_process(),
            index_ids=[],
            prompt=prompt,
            require_all_indexes=False,
        )
    seq = plan.user_input_seq
    with db.write() as tx:
        turns.record_event(tx, plan, seq + 1, Text(answer))
    with db.write() as tx:
        turns.finish_turn(tx, plan, seq + 2, Stop())


def new_chat(server: LiveServer, tenant: Tenant, *turn_texts: tuple[str, str]) -> str:
    session_id = tenant.client.chat.create().session_id
    for prompt, answer in turn_texts:
        add_turn(server, tenant.scope, session_id, prompt, answer)
    return session_id


def search(tenant: Tenant, q: str, **params: Any) -> httpx.Response:
    """A raw request: the path is an extension the SDK has no method for."""
    return httpx.get(
        str(tenant.client.base_url).rstrip("/") + "/api/v1/chat/search",
        params={"q": q, "project_id": tenant.project_id, **params},
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )


def found(tenant: Tenant, q: str, **params: Any) -> list[dict[str, Any]]:
    response = search(tenant, q, **params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_finds_a_phrase_from_the_middle_of_a_long_answer(
    server: LiveServer, tenant: Tenant
) -> None:
    rare = word()
    answer = f"{FILLER} The {rare} negotiated a treaty with the otters. {FILLER}"
    session_id = new_chat(server, tenant, ("what happened at the lake?", answer))

    items = found(tenant, f"{rare} negotiated treaty")

    assert [i["session_id"] for i in items] == [session_id]
    item = items[0]
    assert item["event_index"] == 1  # events: user_input, text, stop
    assert f"«{rare}»" in item["snippet"] and "«negotiated»" in item["snippet"]
    assert len(item["snippet"]) < 400  # the matching part, not the whole answer
    assert item["generated_title"] == "what happened at the lake?"
    assert set(item) >= {"session_id", "last_updated_at", "shared_access", "index_ids"}
    assert tenant.client.chat.retrieve(session_id).events[1].content == answer


def test_a_title_match_ranks_first(server: LiveServer, tenant: Tenant) -> None:
    rare = word()
    in_answers = new_chat(
        server,
        tenant,
        ("tell me about seals", f"{rare} and seals. {FILLER} {rare} again, {rare}."),
        ("and sea lions?", f"Sea lions are not {rare}s."),
    )
    titled = new_chat(server, tenant, (f"{rare} migration routes", "They swim north."))

    items = found(tenant, rare)

    assert [i["session_id"] for i in items] == [titled, in_answers]
    assert items[0]["event_index"] == 0 and items[0]["snippet"].startswith(f"«{rare}»")


def test_a_term_only_another_project_has_finds_nothing(server: LiveServer, tenant: Tenant) -> None:
    rare = word()
    other = make_tenant(server)
    theirs = new_chat(server, other, (f"about {rare}", f"{rare} is theirs"))

    assert found(tenant, rare) == []
    assert [i["session_id"] for i in found(other, rare)] == [theirs]


def test_a_deleted_session_is_forgotten(server: LiveServer, tenant: Tenant) -> None:
    rare = word()
    gone = new_chat(server, tenant, (f"{rare} question", f"an answer with {rare}"))
    kept = new_chat(server, tenant, ("another", f"{rare} stays"))
    assert {i["session_id"] for i in found(tenant, rare)} == {gone, kept}

    tenant.client.chat.delete(gone)

    assert [i["session_id"] for i in found(tenant, rare)] == [kept]
    with server.runtime.db.read() as tx:
        left = tx.connection().exec_driver_sql(
            "SELECT count(*) FROM session_texts WHERE session_id = '" + gone + "'"
        )
        assert left.scalar() == 0


def test_results_page_with_tokens_that_belong_to_their_query(
    server: LiveServer, tenant: Tenant
) -> None:
    rare = word()
    made = {new_chat(server, tenant, (f"q{n}", f"{rare} " * (n + 1) + FILLER)) for n in range(5)}

    seen: list[str] = []
    tokens: list[str] = []
    while True:
        params = {"page_size": 2} | ({"page_token": tokens[-1]} if tokens else {})
        body = search(tenant, rare, **params).json()
        seen += [i["session_id"] for i in body["items"]]
        if "next_page_token" not in body:
            break
        tokens.append(body["next_page_token"])
    assert len(tokens) == 2 and len(seen) == 5 and set(seen) == made
    assert seen == [i["session_id"] for i in found(tenant, rare, page_size=10)]

    other_query = search(tenant, rare + " more", page_token=tokens[0])
    assert other_query.status_code == 400 and "page_token" in other_query.json()["detail"]
    tampered = search(tenant, rare, page_token=tokens[0][:-2] + "xx")
    assert tampered.status_code == 400


@pytest.mark.parametrize("q", ["", "x" * 501])
def test_a_bad_query_is_a_clear_4xx(tenant: Tenant, q: str) -> None:
    response = search(tenant, q)
    assert response.status_code == 422


def test_a_query_without_words_finds_nothing(tenant: Tenant) -> None:
    assert found(tenant, "?! -- …") == []


def test_the_last_word_matches_as_a_prefix_for_search_as_you_type(
    server: LiveServer, tenant: Tenant
) -> None:
    rare = word()
    session_id = new_chat(server, tenant, ("hello", f"the {rare}ification of everything"))
    assert [i["session_id"] for i in found(tenant, f"everything {rare}")] == [session_id]
    assert found(tenant, f"{rare} everythingness") == []


def test_a_turn_run_through_the_api_is_searchable(tenant: Tenant) -> None:
    rare = word()
    chat = tenant.client.chat.create()
    events = stream_turn(tenant.client, chat.session_id, prompt=f"Is {rare} a river?")
    answer = next(e["content"] for e in events if e["type"] == "text")

    items = found(tenant, rare)

    assert [(i["session_id"], i["event_index"]) for i in items] == [(chat.session_id, 0)]
    answer_word = next(w for w in answer.split() if w.isalpha() and len(w) > 4)
    assert chat.session_id in {i["session_id"] for i in found(tenant, answer_word, page_size=100)}


def test_the_migration_makes_existing_sessions_searchable(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(db.engine)
    with db.engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0011")  # the revision before search
        connection.commit()
    with db.write() as tx:
        project = tenancy.create_project(tx, "backfill")
        chat = ChatSession(
            id="ses-old", project_id=project.id, shared_access="read_only", generated_title="Old"
        )
        tx.add(chat)
        tx.flush()
        payloads = [
            {"type": "user_input", "content": "Old question about puffins"},
            {"type": "text", "content": "Puffins nest in burrows on cliffs."},
            {"type": "stop", "is_error": False},
        ]
        tx.add_all(
            ChatEvent(session_id=chat.id, seq=n + 1, type=p["type"], payload=p)
            for n, p in enumerate(payloads)
        )
    with db.engine.connect() as connection:
        command.upgrade(alembic_config(connection), "head")
        connection.commit()
    scope = Scope(organization_id=project.organization_id, project_id=project.id)
    with db.read() as tx:
        page = session_search.search_sessions(tx, scope, "burrows", after=None, page_size=5)
        assert [(f.session.id, f.event_index) for f in page.items] == [("ses-old", 1)]
        titled = session_search.search_sessions(tx, scope, "old", after=None, page_size=5)
        assert [f.event_index for f in titled.items] == [0]
    db.dispose()


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)  # the CLI only speaks HTTP
def test_the_cli_prints_the_matching_sessions_as_a_table_or_json(
    server: LiveServer, tenant: Tenant
) -> None:
    rare = word()
    session_id = new_chat(server, tenant, ("where do eels go?", f"Eels go to the {rare} sea."))
    env = {"LLAMA_CLOUD_API_KEY": tenant.api_key, "LLAMA_CLOUD_BASE_URL": server.base_url}
    runner = CliRunner()

    table = runner.invoke(app, ["chat", "search", rare], env={**env, "COLUMNS": "250"})
    as_json = runner.invoke(app, ["chat", "search", rare, "--format", "json"], env=env)
    nothing = runner.invoke(app, ["chat", "search", word()], env=env)
    bad = runner.invoke(app, ["chat", "search", "x" * 501], env=env)

    assert table.exit_code == 0, table.output
    assert session_id in table.stdout and f"«{rare}»" in table.stdout
    assert [i["session_id"] for i in json.loads(as_json.stdout)["items"]] == [session_id]
    assert nothing.exit_code == 0 and "No chat session matches." in nothing.stdout
    assert bad.exit_code == 1 and "at most 500 characters" in bad.stderr


def test_a_word_in_more_texts_than_are_ranked_finds_the_newest_chats(
    server: LiveServer, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    rare = word()
    oldest = new_chat(server, tenant, ("first", f"{rare} {rare} {rare} {rare}"))
    newer = [new_chat(server, tenant, (f"q{n}", f"{rare} {FILLER}")) for n in range(3)]
    monkeypatch.setattr(session_text, "CANDIDATES", 3)  # the newest 3 matching texts

    first_page = {i["session_id"] for i in found(tenant, rare, page_size=2)}
    assert len(first_page) == 2 and first_page < set(newer)
    # Fewer than a page among the newest: then every match is ranked.
    assert found(tenant, rare, page_size=10)[0]["session_id"] == oldest
    monkeypatch.undo()
    assert found(tenant, rare, page_size=2)[0]["session_id"] == oldest
