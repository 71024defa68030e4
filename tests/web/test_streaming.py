"""Turns on the chat page while they stream, answered by the scripted OpenAI-compatible fake in
slow mode: the answer grows before the stop, Stop and Esc cancel, a reload follows the turn to
its end, an error is shown and the chat goes on, and untrusted text stays inert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_llm import FakeLLM, Reply, ToolCall
from web.served import Browser, Served, drop_files, make_synced_index, sign_in

PAYLOAD_NAME = "<img src=x onerror=alert('name')>.md"
WORDS = [f"word{i} " for i in range(40)]


@pytest.fixture(autouse=True)
def fresh_script(fake_llm: FakeLLM) -> None:
    fake_llm.reset()


@pytest.fixture(scope="module")
def notes(scripted: Served) -> tuple[str, str]:
    """A project of its own with a synced index (its one file named like an HTML injection)."""
    key = scripted.new_project_key()
    files = {PAYLOAD_NAME: b"# Rivers\n\nThe Danube flows through Vienna and Budapest.\n"}
    return key, make_synced_index(scripted.sdk(key), "notes", files)


def open_chat(scripted: Served, browser: Browser, notes: tuple[str, str]) -> Any:
    page = browser.page
    sign_in(page, scripted, notes[0])
    page.locator(".index-option input:checked").wait_for()
    return page


def send(page: Any, prompt: str) -> Any:
    page.get_by_label("Message").fill(prompt)
    page.get_by_label("Message").press("Enter")
    return page.locator(".turn").last


def stored_stop(scripted: Served, notes: tuple[str, str], page: Any) -> Any:
    """The last event the server stored for the chat the page shows."""
    session_id = page.evaluate("() => new URLSearchParams(location.search).get('session')")
    return scripted.sdk(notes[0]).chat.retrieve(session_id).events[-1]


def the_chat_goes_on(page: Any, fake_llm: FakeLLM) -> Any:
    """Another question in the same chat is answered; its turn."""
    fake_llm.script(Reply(text="Back again."))
    turn = send(page, "Again?")
    turn.locator(".usage").wait_for()
    assert turn.locator(".answer").inner_text() == "Back again."
    assert turn.locator(".turn-error").count() == 0
    return turn


def answer_length(page: Any) -> int:
    return int(
        page.evaluate(
            "() => document.querySelector('.turn:last-child .answer')?.textContent.length ?? 0"
        )
    )


def test_the_answer_grows_on_screen_before_the_turn_ends(
    scripted: Served, notes: tuple[str, str], browser: Browser, fake_llm: FakeLLM, screenshots: Path
) -> None:
    fake_llm.script(Reply(reasoning="Think first.", text=WORDS, chunk_delay=0.05))
    page = open_chat(scripted, browser, notes)
    page.evaluate(
        """() => {
            window.samples = [];
            new MutationObserver(() => {
                const turn = document.querySelector('.turn:last-child');
                if (!turn) return;
                const answer = turn.querySelector('.answer');
                window.samples.push({
                    length: answer ? answer.textContent.length : 0,
                    streaming: Boolean(answer && answer.classList.contains('streaming')),
                    stopped: Boolean(turn.querySelector('.usage')),
                });
            }).observe(document.getElementById('turns'),
                { subtree: true, childList: true, characterData: true, attributes: true });
        }"""
    )
    turn = send(page, "Tell me about rivers.")
    page.wait_for_function("() => document.querySelector('.answer.streaming')")
    page.screenshot(path=screenshots / "chat-streaming.png")
    turn.locator(".usage").wait_for()

    samples = page.evaluate("() => window.samples")
    before_stop = [s["length"] for s in samples if not s["stopped"] and s["length"]]
    assert len(set(before_stop)) >= 5, samples
    assert before_stop == sorted(before_stop)  # it only grows
    assert any(s["streaming"] for s in samples if not s["stopped"])
    assert turn.locator(".answer").inner_text() == "".join(WORDS).strip()
    thinking = turn.locator("details.thinking")
    assert thinking.get_attribute("open") is None  # collapsed
    thinking.locator("summary").click()
    assert thinking.locator(".thinking-text").inner_text() == "Think first."
    assert "11 in / 7 out tokens" in turn.locator(".usage").inner_text()


def test_stop_cancels_the_running_turn_and_the_chat_goes_on(
    scripted: Served, notes: tuple[str, str], browser: Browser, fake_llm: FakeLLM
) -> None:
    fake_llm.disconnected.clear()
    fake_llm.script(Reply(text=WORDS * 5, chunk_delay=0.1))
    page = open_chat(scripted, browser, notes)
    turn = send(page, "A long answer, please.")
    page.wait_for_function("() => document.querySelector('.answer')?.textContent.length > 10")
    page.get_by_role("button", name="Stop").click()
    turn.get_by_text("Stopped.").wait_for()
    assert answer_length(page) < len("".join(WORDS * 5).strip())
    assert fake_llm.disconnected.wait(5), "the model call went on"
    stop = stored_stop(scripted, notes, page)
    assert stop.type == "stop" and "cancelled on request" in (stop.error or "")
    the_chat_goes_on(page, fake_llm)
    assert page.locator(".turn").count() == 2


def test_escape_stops_a_turn_started_with_enter(
    scripted: Served, notes: tuple[str, str], browser: Browser, fake_llm: FakeLLM
) -> None:
    fake_llm.script(Reply(text=WORDS * 5, chunk_delay=0.1))
    page = open_chat(scripted, browser, notes)
    page.keyboard.type("Keyboard only.")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('.answer')?.textContent.length > 10")
    page.keyboard.press("Escape")
    page.locator(".turn").get_by_text("Stopped.").wait_for()
    assert page.evaluate("() => document.activeElement.id") == "prompt"


def test_reloading_mid_turn_follows_the_turn_to_its_end(
    scripted: Served, notes: tuple[str, str], browser: Browser, fake_llm: FakeLLM
) -> None:
    fake_llm.script(Reply(text=WORDS, chunk_delay=0.1))
    page = open_chat(scripted, browser, notes)
    send(page, "Keep going while I reload.")
    page.wait_for_function("() => document.querySelector('.answer')?.textContent.length > 10")
    page.reload()
    turn = page.locator(".turn")
    assert turn.locator(".prompt").inner_text() == "Keep going while I reload."
    turn.locator(".usage").wait_for()
    assert turn.locator(".answer").inner_text() == "".join(WORDS).strip()
    assert turn.get_by_text("Stopped.").count() == 0
    stop = stored_stop(scripted, notes, page)
    assert stop.type == "stop" and stop.is_error is False


def test_an_error_is_shown_and_the_chat_goes_on(
    scripted: Served, notes: tuple[str, str], browser: Browser, fake_llm: FakeLLM
) -> None:
    fake_llm.script(Reply(fault="http_500"))
    page = open_chat(scripted, browser, notes)
    turn = send(page, "This one fails.")
    turn.locator(".usage").wait_for()
    assert turn.get_by_role("alert").inner_text()  # the error, as the server said it
    assert turn.locator(".turn-error").count() == 1
    the_chat_goes_on(page, fake_llm)


def test_untrusted_answers_and_file_names_render_inert(
    scripted: Served, notes: tuple[str, str], browser: Browser, fake_llm: FakeLLM, screenshots: Path
) -> None:
    answer = (
        "Found it <img src=x onerror=\"alert('answer')\"> <script>alert('script')</script> "
        "[click me](javascript:alert('link')) <b onmouseover=\"alert('hover')\">bold</b> "
        f"in {PAYLOAD_NAME}"
    )

    def reply(body: dict[str, Any]) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply(text=answer)
        return Reply(tool_calls=[ToolCall("retrieve", {"query": "<script>alert('q')</script>"})])

    fake_llm.default = reply
    page = open_chat(scripted, browser, notes)
    turn = send(page, "<img src=x onerror=alert('prompt')>")
    turn.locator(".usage").wait_for()
    page.screenshot(path=screenshots / "chat-untrusted.png")

    assert turn.locator(".prompt").inner_text() == "<img src=x onerror=alert('prompt')>"
    assert "<script>alert('q')</script>" in turn.locator(".step").inner_text()
    rendered = turn.locator(".answer")
    assert rendered.locator("b").inner_text() == "bold"
    rendered.locator("b").hover()
    link = rendered.locator("a", has_text="click me")
    assert link.get_attribute("href") is None  # the javascript: URL was dropped
    link.click()
    injected = page.evaluate(
        "() => document.querySelectorAll('#turns img, #turns script, #turns svg, [onerror], "
        '[onmouseover], a[href^="javascript"]\').length'
    )
    assert injected == 0
    source = turn.locator(".source-button .file")
    assert source.inner_text() == PAYLOAD_NAME
    source.click()
    assert page.locator("#source-title").inner_text() == PAYLOAD_NAME
    page.wait_for_timeout(300)  # time for anything that would run
    assert browser.dialogs == [] and len(browser.context.pages) == 1


def test_a_failed_file_named_like_markup_stays_text_on_the_indexes_page(
    scripted: Served, browser: Browser, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n%%EOF\n")
    name = "<svg onload=alert('indexes')>.pdf"
    key = scripted.new_project_key()
    page = browser.page
    sign_in(page, scripted, key)
    page.goto(f"{scripted.base_url}/indexes")
    page.get_by_role("button", name="New index").click()
    page.get_by_label("Name").fill("<b>bold</b>")
    page.get_by_role("button", name="Create index").click()
    card = page.locator(".index-card")
    card.wait_for()
    drop_files(page, ".index-card .dropzone", [broken], names=[name])
    card.locator(".failed-files summary").click(timeout=60_000)
    assert card.locator(".failed-files strong").inner_text() == name
    assert card.locator("h2").inner_text() == "<b>bold</b>"
    assert (
        page.evaluate("() => document.querySelectorAll('main svg, main b, [onload]').length") == 0
    )
    assert browser.dialogs == []
