"""The chat page in a real browser, answered by the offline extractive model: a question with
its tool line, answer and sources, a source's passage, page screenshot and file link; a chat
reopened from history, exported and deleted; the keyboard alone; the sidebar's paging."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from web.served import Browser, Served, docs, make_synced_index, sign_in

QUESTION = "How does trace-based compilation handle type specialization?"


@pytest.fixture(scope="module")
def library(extractive: Served) -> tuple[str, str]:
    """A project of its own with one synced index of real documents: (key, index id)."""
    files = {p.name: p.read_bytes() for p in docs("tracemonkey.pdf", "docling-README.md")}
    key = extractive.new_project_key()
    return key, make_synced_index(extractive.sdk(key), "papers", files)


def ask(page: Any, question: str) -> Any:
    """Type a question and send it with Enter; the turn it makes on screen."""
    page.get_by_label("Message").fill(question)
    page.get_by_label("Message").press("Enter")
    turn = page.locator(".turn").last
    turn.locator(".usage").wait_for(timeout=120_000)
    return turn


def test_a_question_shows_its_search_answer_and_sources(
    extractive: Served, library: tuple[str, str], browser: Browser, screenshots: Path
) -> None:
    key, index_id = library
    page = browser.page
    sign_in(page, extractive, key)
    option = page.locator(".index-option", has_text="papers")
    assert option.locator("input").is_checked()  # a synced index is picked by default
    assert re.fullmatch(r"2 files · synced .+", option.locator(".state").inner_text())

    turn = ask(page, QUESTION)

    assert turn.locator(".prompt").inner_text() == QUESTION
    step = turn.locator(".step").first.inner_text()
    assert re.fullmatch(rf"Searched papers for “{re.escape(QUESTION)}” — \d+ passages", step)
    assert "extractive" in turn.locator(".answer").first.inner_text().lower()
    assert re.search(r"\d\.\d s", turn.locator(".usage").inner_text())
    chip = page.locator("#chat-indexes .chip")
    assert chip.all_inner_texts() == ["papers"]  # the chat's indexes, now fixed
    page.wait_for_url(re.compile(r"/\?session=ses-"))

    source = turn.locator(".source-button", has_text="tracemonkey.pdf").first
    page_number = int(re.search(r"p+\. (\d+)", source.inner_text()).group(1))  # type: ignore[union-attr]
    source.click()
    panel = page.locator("#source-panel")
    assert panel.locator("h2").inner_text() == "tracemonkey.pdf"
    assert re.match(rf"Pages? {page_number}\b", panel.locator("#source-where").inner_text())
    assert len(panel.locator("#source-passage").inner_text()) > 100
    image = panel.locator("#source-image")
    image.wait_for()
    page.wait_for_function("() => document.getElementById('source-image').naturalWidth > 0")
    assert image.get_attribute("alt") == f"Page {page_number} of tracemonkey.pdf"
    assert "/attachment-downloads/" in (image.get_attribute("src") or "")
    link = panel.get_by_role("link", name=f"Open the file at page {page_number}")
    href = link.get_attribute("href") or ""
    assert href.endswith(f"#page={page_number}")
    original = httpx.get(href.split("#")[0])
    assert original.status_code == 200 and original.content.startswith(b"%PDF")
    assert original.headers["content-disposition"].startswith("inline")
    page.screenshot(path=screenshots / "chat.png")
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=screenshots / "chat-dark.png")

    page.set_viewport_size({"width": 375, "height": 740})
    page.screenshot(path=screenshots / "chat-375-dark.png")
    page.emulate_media(color_scheme="light")
    page.screenshot(path=screenshots / "chat-375.png")
    page.keyboard.press("Escape")
    assert panel.is_hidden()


def test_a_chat_reopens_from_history_and_is_exported_and_deleted(
    extractive: Served, library: tuple[str, str], browser: Browser
) -> None:
    key, index_id = library
    client = extractive.sdk(key)
    chat = client.chat.create(index_ids=[index_id])
    client.chat.stream(chat.session_id, index_ids=[index_id], prompt="What is a trace tree?")
    page = browser.page
    sign_in(page, extractive, key)

    page.goto(f"{extractive.base_url}/?session={chat.session_id}")
    page.locator(f".session-list a[href$='{chat.session_id}']").wait_for()
    turn = page.locator(".turn")
    turn.locator(".usage").wait_for()
    assert turn.locator(".prompt").inner_text() == "What is a trace tree?"
    assert turn.locator(".step").count() == 1 and turn.locator(".source-button").count() >= 1
    assert page.locator("h1").inner_text() == "What is a trace tree?"
    current = page.locator(".session-list a[aria-current=page]")
    assert current.locator(".title").inner_text() == "What is a trace tree?"

    page.get_by_text("Export").click()
    with page.expect_download() as markdown:
        page.get_by_role("link", name="Markdown (.md)").click()
    text = Path(markdown.value.path()).read_text()
    assert "What is a trace tree?" in text and markdown.value.suggested_filename.endswith(".md")
    page.get_by_text("Export").click()
    with page.expect_download() as exported:
        page.get_by_role("link", name="JSON (.json)").click()
    history = json.loads(Path(exported.value.path()).read_text())
    assert history["session_id"] == chat.session_id and history["events"][-1]["type"] == "stop"

    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.wait_for_url(f"{extractive.base_url}/")
    assert page.locator(f".session-list a[href$='{chat.session_id}']").count() == 0
    assert chat.session_id not in [s.session_id for s in client.chat.list().items]
    assert page.locator("h1").inner_text() == "New chat"


def test_send_and_open_a_source_with_the_keyboard_alone(
    extractive: Served, library: tuple[str, str], browser: Browser
) -> None:
    key, _ = library
    page = browser.page
    sign_in(page, extractive, key)
    assert page.evaluate("() => document.activeElement.id") == "prompt"
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    assert page.get_by_label("Message").input_value() == "first line\nsecond line"
    assert page.locator(".turn").count() == 0  # Shift+Enter only made a new line
    page.keyboard.press("Enter")
    turn = page.locator(".turn")
    turn.locator(".usage").wait_for(timeout=120_000)
    assert turn.locator(".prompt").inner_text() == "first line\nsecond line"

    for _ in range(40):  # Tab through the page until a source has the focus
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('source-button')"):
            break
    else:
        pytest.fail("no source button is reachable with Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "source-title"
    assert page.locator("#source-panel").is_visible()
    page.keyboard.press("Escape")
    assert page.locator("#source-panel").is_hidden()
    assert page.evaluate("() => document.activeElement.classList.contains('source-button')")


def test_the_sidebar_pages_through_every_session_newest_first(
    extractive: Served, browser: Browser
) -> None:
    key = extractive.new_project_key()
    client = extractive.sdk(key)
    for _ in range(120):
        client.chat.create()
    expected = [s.session_id for s in client.chat.list(page_size=100)]  # the SDK follows pages
    page = browser.page
    sign_in(page, extractive, key)
    links = page.locator(".session-list a")
    page.wait_for_function("() => document.querySelectorAll('.session-list a').length === 50")
    for shown in (100, 120):
        links.last.scroll_into_view_if_needed()
        page.wait_for_function(
            f"() => document.querySelectorAll('.session-list a').length === {shown}"
        )
    ids = page.evaluate(
        "() => [...document.querySelectorAll('.session-list a')]"
        ".map((a) => new URL(a.href).searchParams.get('session'))"
    )
    assert ids == expected
    assert set(links.locator(".title").all_text_contents()) == {"New chat"}
