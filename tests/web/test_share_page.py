"""Share links on the page, in real browsers: the owner's Share dialog (create, copy, list,
revoke), and a viewer in a fresh browser context with no sign-in who sees the transcript with
its sources and page screenshot, sees a later turn appear, asks in a copy that survives a
reload, and meets the 404 page once the link is revoked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from web.served import Browser, Served, docs, make_synced_index, sign_in

QUESTION = "How does trace-based compilation handle type specialization?"
LATER = "What is a trace tree?"


@pytest.fixture(scope="module")
def shared_library(extractive: Served) -> tuple[str, str]:
    files = {p.name: p.read_bytes() for p in docs("tracemonkey.pdf")}
    key = extractive.new_project_key()
    return key, make_synced_index(extractive.sdk(key), "papers", files)


def turns_shown(page: Any, count: int) -> None:
    page.wait_for_function(
        "(n) => document.querySelectorAll('.turn .usage').length >= n", arg=count, timeout=60_000
    )


def test_share_dialog_and_a_viewer_who_asks_in_a_copy(
    extractive: Served,
    shared_library: tuple[str, str],
    browser: Browser,
    chromium: Any,
    screenshots: Path,
) -> None:
    key, index_id = shared_library
    sdk = extractive.sdk(key)
    chat = sdk.chat.create(index_ids=[index_id], shared_access="query")
    sdk.chat.stream(chat.session_id, index_ids=[index_id], prompt=QUESTION)
    owner = browser.page
    sign_in(owner, extractive, key)
    owner.goto(f"{extractive.base_url}/?session={chat.session_id}")
    turns_shown(owner, 1)

    owner.get_by_role("button", name="Share").click()
    dialog = owner.locator("#share-dialog")
    assert dialog.get_by_label("Grants").input_value() == "query"  # the chat's own grant
    dialog.get_by_role("button", name="Create link").click()
    url_box = dialog.get_by_label("New link: copy it now, it is shown only once")
    url_box.wait_for()
    url = url_box.input_value()
    assert url.startswith(f"{extractive.base_url}/s/")
    dialog.locator(".share-link").first.wait_for()
    assert "Read and ask" in dialog.locator(".share-link").first.inner_text()
    assert "expires in 7 days" in dialog.locator(".share-link").first.inner_text()
    owner.screenshot(path=screenshots / "share-dialog.png")
    owner.emulate_media(color_scheme="dark")
    owner.set_viewport_size({"width": 375, "height": 740})
    owner.screenshot(path=screenshots / "share-dialog-375-dark.png")
    owner.set_viewport_size({"width": 1280, "height": 800})
    owner.emulate_media(color_scheme="light")
    dialog.get_by_role("button", name="Close").click()

    viewer = Browser(chromium)  # a fresh context: no sign-in, no cookies
    try:
        page = viewer.page
        page.goto(url)
        turns_shown(page, 1)
        turn = page.locator(".turn").first
        assert turn.locator(".prompt").inner_text() == QUESTION
        assert page.locator(".topbar-project").count() == 0  # nothing of the project shows
        source = turn.locator(".source-button").first
        source.click()
        page.wait_for_function("() => document.getElementById('source-image').naturalWidth > 0")
        assert (page.locator("#source-image").get_attribute("src") or "").startswith("blob:")
        page.screenshot(path=screenshots / "shared-viewer.png")
        page.emulate_media(color_scheme="dark")
        page.set_viewport_size({"width": 375, "height": 740})
        page.screenshot(path=screenshots / "shared-viewer-375-dark.png")
        page.locator("#source-close").click()
        page.screenshot(path=screenshots / "shared-viewer-375-dark-transcript.png")
        page.set_viewport_size({"width": 1280, "height": 800})
        page.emulate_media(color_scheme="light")

        sdk.chat.stream(chat.session_id, index_ids=[index_id], prompt=LATER)
        turns_shown(page, 2)  # the owner's later turn appears by itself
        assert page.locator(".turn .prompt").nth(1).inner_text() == LATER

        hint = page.locator("#composer-hint").inner_text()
        assert "your own copy" in hint
        page.get_by_label("Your question").fill("Which benchmarks were used?")
        page.get_by_label("Your question").press("Enter")
        turns_shown(page, 3)
        page.wait_for_function(
            "() => document.getElementById('shared-note').textContent.includes('own copy')"
        )
        page.reload()
        turns_shown(page, 3)  # the copy survives a reload
        assert "own copy" in page.locator("#shared-note").inner_text()
        page.screenshot(path=screenshots / "shared-viewer-fork.png")
        assert [e.type for e in sdk.chat.retrieve(chat.session_id).events].count("user_input") == 2

        owner.get_by_role("button", name="Share").click()
        dialog.locator(".share-link").first.get_by_role("button", name="Revoke").click()
        dialog.get_by_text("No links yet.").wait_for()
        page.reload()
        assert page.get_by_role("heading", name="This link does not work").is_visible()
    finally:
        viewer.close()
    assert not viewer.errors, viewer.errors


def test_a_read_only_link_has_no_question_box(
    extractive: Served, shared_library: tuple[str, str], chromium: Any
) -> None:
    key, index_id = shared_library
    sdk = extractive.sdk(key)
    chat = sdk.chat.create(index_ids=[index_id])
    sdk.chat.stream(chat.session_id, index_ids=[index_id], prompt=QUESTION)
    link = sdk.post(f"/api/v1/chat/{chat.session_id}/share-links", cast_to=object, body={})
    viewer = Browser(chromium)
    try:
        viewer.page.goto(link["url"])  # type: ignore[index]
        page = viewer.page
        turns_shown(page, 1)
        assert page.locator("#prompt").count() == 0
        assert "read-only" in page.locator(".shared-badge").inner_text()
        sdk.chat.stream(chat.session_id, index_ids=[index_id], prompt=LATER)
        turns_shown(page, 2)  # a later turn appears for a read-only viewer too
        token = link["url"].rsplit("/s/", 1)[1]  # type: ignore[index]
        api = f"{extractive.base_url}/s/{token}/chat/messages/stream"
        headers = {"Origin": extractive.base_url}
        refused = page.request.post(api, data={"prompt": "May I?"}, headers=headers)
        assert refused.status == 403
        # The browser holds no sign-in: the project's own API stays closed.
        other = sdk.chat.create()
        assert (
            page.request.get(f"{extractive.base_url}/api/v1/chat/{other.session_id}").status == 401
        )
    finally:
        viewer.close()
    assert not viewer.errors, viewer.errors
