"""The sidebar's search box in a real browser: results as one types, matches marked, and a
click opens the chat scrolled to the turn that matched."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from playwright.sync_api import expect
from web.served import Browser, Served, sign_in

from indexchat.domain import Scope
from indexchat.events import Stop, Text
from indexchat.processes import ProcessId
from indexchat.services import tenancy, turns

FILLER = " ".join(
    "The committee read the minutes, then the budget, then the minutes again." for _ in range(12)
)


def write_chat(served: Served, scope: Scope, texts: list[tuple[str, str]]) -> str:
    """A chat of finished turns, written as the server writes them."""
    from indexchat.services import sessions

    with served.db.write() as tx:
        chat_id = sessions.create_session(tx, scope, index_ids=None, shared_access="query").id
    for prompt, answer in texts:
        with served.db.write() as tx:
            plan = turns.begin_turn(
                tx, scope, chat_id, owner=ProcessId.of_this_process(), index_ids=[],
                prompt=prompt, require_all_indexes=False,
            )  # fmt: skip
        seq = plan.user_input_seq
        with served.db.write() as tx:
            turns.record_event(tx, plan, seq + 1, Text(answer))
        with served.db.write() as tx:
            turns.finish_turn(tx, plan, seq + 2, Stop())
    return chat_id


def test_typing_in_the_search_box_finds_chats_and_opens_one_at_the_matching_turn(
    extractive: Served, browser: Browser, screenshots: Path
) -> None:
    with extractive.db.write() as tx:
        project = tenancy.create_project(tx, f"proj-{uuid.uuid4().hex[:8]}")
        key = tenancy.create_key(tx, project=project.name).secret
    scope = Scope(organization_id=project.organization_id, project_id=project.id)
    meeting = [(f"What happened at meeting {n}?", f"{FILLER} Nothing new.") for n in range(8)]
    meeting[5] = ("And the sixth one?", f"{FILLER} They approved the lighthouse repairs. {FILLER}")
    long_chat = write_chat(extractive, scope, meeting)
    titled = write_chat(extractive, scope, [("Lighthouse keepers' rota", "Alternate weeks.")])
    write_chat(extractive, scope, [("Unrelated question", "An unrelated answer.")])

    page = browser.page
    sign_in(page, extractive, key)
    expect(page.locator("#session-list [role=listitem]")).to_have_count(3)
    box = page.get_by_role("searchbox", name="Search chats")
    box.press_sequentially("lighthouse rep", delay=40)  # as a person types

    results = page.locator("#search-results [role=listitem]")
    expect(results).to_have_count(1)
    expect(page.locator("#session-list")).to_be_hidden()
    first = results.first
    assert first.locator("mark").all_inner_texts() == ["lighthouse", "repairs"]
    page.screenshot(path=screenshots / "session-search-typing.png")

    box.fill("lighthouse")
    expect(results).to_have_count(2)
    titles = [t.inner_text() for t in page.locator("#search-results .title").all()]
    assert titles == ["Lighthouse keepers' rota", "What happened at meeting 0?"]  # title first
    page.screenshot(path=screenshots / "session-search-results.png")

    results.nth(1).locator("a").click()
    page.wait_for_url(re.compile(rf"/\?session={long_chat}&event=16$"))
    matching = page.locator(".turn").nth(5)
    expect(matching).to_have_class(re.compile(r"\bsearch-hit\b"))
    expect(matching.locator(".answer mark").first).to_be_in_viewport()
    assert matching.locator("mark").all_inner_texts() == ["lighthouse"]
    expect(page.locator(".turn").last).not_to_be_in_viewport()
    assert "lighthouse repairs" in matching.inner_text()
    page.screenshot(path=screenshots / "session-search-opened.png")

    box.press("Escape")
    expect(page.locator("#search-area")).to_be_hidden()
    expect(page.locator("#session-list [role=listitem]")).to_have_count(3)
    assert titled  # the other chat stays in the recent list
