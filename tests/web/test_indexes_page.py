"""The indexes page in a real browser: create an index, drop real files on it, watch the upload
and the sync, see failed files with their reasons; sync, cancel and delete."""

from __future__ import annotations

import re
from pathlib import Path

from web.served import Browser, Served, docs, drop_files, sign_in


def create_index(page, name: str) -> object:  # type: ignore[no-untyped-def]
    page.get_by_role("button", name="New index").click()
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create index").click()
    card = page.locator(".index-card", has=page.get_by_role("heading", name=name))
    card.wait_for()
    return card


def test_dropping_files_on_a_new_index_uploads_and_syncs_them(
    extractive: Served, browser: Browser, screenshots: Path
) -> None:
    files = docs("tracemonkey.pdf", "word_sample.docx", "docling-README.md", "invalid.pdf")
    key = extractive.new_project_key()
    page = browser.page
    sign_in(page, extractive, key)
    page.get_by_role("link", name="Indexes").click()
    page.get_by_text("No indexes yet").wait_for()
    card = create_index(page, "Handbook")
    # Record what the page shows while it works: upload bars, then the sync's progress bar.
    page.evaluate(
        """(card) => {
            window.seen = { uploads: 0, syncBar: false };
            new MutationObserver(() => {
                const uploads = card.querySelectorAll('.upload').length;
                window.seen.uploads = Math.max(window.seen.uploads, uploads);
                const bar = card.querySelector('.sync-progress');
                if (bar && !bar.hidden) window.seen.syncBar = true;
            }).observe(card, { subtree: true, childList: true, attributes: true });
        }""",
        card.element_handle(),
    )

    drop_files(page, ".index-card .dropzone", files)

    uploads = card.locator(".upload")
    uploads.first.wait_for()
    assert sorted(uploads.locator(".name").all_inner_texts()) == sorted(p.name for p in files)
    card.locator(".index-state.synced").wait_for(timeout=240_000)
    page.screenshot(path=screenshots / "indexes.png", full_page=True)

    seen = page.evaluate("() => window.seen")
    assert seen == {"uploads": 4, "syncBar": True}
    stats = dict(
        zip(card.locator("dt").all_inner_texts(), card.locator("dd").all_inner_texts(), strict=True)
    )
    assert stats["Files"] == "3" and stats["Failed"] == "1" and int(stats["Chunks"]) > 3
    assert stats["Last synced"] == "just now"
    failures = card.locator(".failed-files")
    failures.locator("summary").click()
    assert failures.locator("li strong").all_inner_texts() == ["invalid.pdf"]
    assert "not a valid PDF" in failures.locator(".reason").inner_text()
    assert card.locator(".upload").count() == 0  # finished uploads make way once synced

    client = extractive.sdk(key)
    (index,) = client.indexes.list().items
    assert index.name == "Handbook" and index.metadata["files_parsed"] == 3


def test_sync_cancel_and_delete(extractive: Served, browser: Browser) -> None:
    key = extractive.new_project_key()
    page = browser.page
    sign_in(page, extractive, key)
    page.goto(f"{extractive.base_url}/indexes")
    card = create_index(page, "Papers")
    drop_files(page, ".index-card .dropzone", docs("tracemonkey.pdf", "redp5110_sampled.pdf"))
    # Once the sync runs (a queued one is cancelled before it starts, and says nothing).
    card.get_by_text(re.compile(r"\d+ of 2 files")).wait_for(timeout=60_000)
    card.get_by_role("button", name="Cancel sync").click()
    card.locator(".index-state:not(.syncing)").wait_for(timeout=120_000)
    assert card.locator(".index-state").inner_text() == "Last sync was cancelled"
    client = extractive.sdk(key)
    (index,) = client.indexes.list().items
    assert index.metadata["last_sync_status"] == "cancelled"

    card.get_by_role("button", name="Sync", exact=True).click()
    card.locator(".index-state.synced").wait_for(timeout=240_000)
    assert client.indexes.get(index.id).metadata["files_parsed"] == 2

    card.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    assert "Delete Papers?" in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel").click()
    assert client.indexes.list().items
    card.get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete").click()
    page.get_by_text("No indexes yet").wait_for()
    assert client.indexes.list().items == []
    assert client.beta.directories.list().items == []  # its files' directory went with it


def test_choosing_a_folder_keeps_the_paths_of_its_files(
    extractive: Served, browser: Browser, tmp_path: Path
) -> None:
    folder = tmp_path / "handbook"
    (folder / "leave").mkdir(parents=True)
    (folder / "leave" / "policy.md").write_text("# Leave\n\nAsk your manager two weeks ahead.\n")
    (folder / "travel.md").write_text("# Travel\n\nBook trains for trips under four hours.\n")
    key = extractive.new_project_key()
    page = browser.page
    sign_in(page, extractive, key)
    page.goto(f"{extractive.base_url}/indexes")
    card = create_index(page, "Handbook")
    card.get_by_label("Choose a folder to add to Handbook").set_input_files(folder)
    card.locator(".index-state.synced").wait_for(timeout=120_000)
    client = extractive.sdk(key)
    (index,) = client.indexes.list().items
    names = {f.display_name for f in client.beta.directories.files.list(index.source_directory_id)}
    assert names == {"handbook/leave/policy.md", "handbook/travel.md"}
    assert index.metadata["files_parsed"] == 2
