"""Tool results as the model reads them: trimmed to fit, always valid JSON, saying what was cut;
and the extractive answerer, which reports a result it cannot read instead of "nothing found"."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexchat.agent.extractive import HEADER, NOTHING_FOUND, ExtractiveModel
from indexchat.agent.model import ModelError, TextDelta
from indexchat.agent.tools import TOOL_SPECS
from indexchat.agent.trimming import MIN_KEPT_CHARS, fit_json

MARKER = re.compile(r" …\[([\d,]+) more characters\]$")


def hit(n: int, content: str) -> dict[str, Any]:
    return {"file_id": f"dfl-{n}", "file_name": "paper.pdf", "page_start": n, "content": content}


def test_a_result_that_fits_is_sent_whole() -> None:
    hits = [hit(1, "short"), hit(2, "also short")]
    assert fit_json(hits, 16_000) == json.dumps(hits, ensure_ascii=False)


def test_long_passages_are_shortened_alike_and_say_how_much_was_cut() -> None:
    hits = [hit(1, "a" * 2_000), hit(2, "b" * 9_000), hit(3, "c" * 300), hit(4, "d" * 9_000)]
    text = fit_json(hits, 12_000)
    assert len(text) <= 12_000
    fitted = json.loads(text)
    assert [h["file_id"] for h in fitted] == ["dfl-1", "dfl-2", "dfl-3", "dfl-4"]
    assert fitted[0]["content"] == "a" * 2_000 and fitted[2]["content"] == "c" * 300
    for original, trimmed in ((hits[1], fitted[1]), (hits[3], fitted[3])):
        cut = MARKER.search(trimmed["content"])
        assert cut is not None, trimmed["content"][-60:]
        kept = trimmed["content"][: cut.start()]
        assert original["content"].startswith(kept)
        assert len(kept) + int(cut.group(1).replace(",", "")) == len(original["content"])
    assert len(fitted[1]["content"]) == len(fitted[3]["content"])


def test_a_list_too_long_even_shortened_leaves_out_its_last_items_and_says_so() -> None:
    hits = [hit(n, "x" * 5_000) for n in range(50)]
    fitted = json.loads(fit_json(hits, 4_000))
    assert fitted[-1] == {"trimmed": f"{50 - (len(fitted) - 1)} more results left out"}
    kept = fitted[:-1]
    assert kept and [h["file_id"] for h in kept] == [f"dfl-{n}" for n in range(len(kept))]
    assert all(len(h["content"]) < MIN_KEPT_CHARS + 40 for h in kept)


def test_a_file_read_too_long_keeps_its_fields_and_the_start_of_its_text() -> None:
    text = "".join(f"line {n} of the file\n" for n in range(2_000))
    read = {"file_id": "dfl-9", "file_name": "log.txt", "offset": 0, "content": text}
    fitted = json.loads(fit_json(read, 16_000))
    assert {k: v for k, v in fitted.items() if k != "content"} == {
        "file_id": "dfl-9",
        "file_name": "log.txt",
        "offset": 0,
    }
    assert MARKER.search(fitted["content"]) and text.startswith(MARKER.split(fitted["content"])[0])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3_000),
    lambda children: (
        st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=10), children, max_size=6)
    ),
    max_leaves=40,
)


@given(value=json_values, limit=st.integers(min_value=200, max_value=6_000))
def test_the_text_always_fits_and_is_valid_json(value: Any, limit: int) -> None:
    text = fit_json(value, limit)
    assert len(text) <= limit
    json.loads(text)
    if len(json.dumps(value, ensure_ascii=False)) <= limit:
        assert json.loads(text) == value


def answer(tool_content: str) -> str:
    """What the extractive answerer says after a retrieve call that returned ``tool_content``."""
    messages = [
        {"role": "user", "content": "What is a trace tree?"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "call_1", "content": tool_content},
    ]

    async def run() -> str:
        parts = [o async for o in ExtractiveModel().stream(messages, TOOL_SPECS)]
        return "".join(o.text for o in parts if isinstance(o, TextDelta))

    return asyncio.run(run())


def test_the_extractive_answer_quotes_a_trimmed_result() -> None:
    hits = [hit(n, f"Passage {n}: trace trees. " + "words " * 1_500) for n in range(1, 7)]
    said = answer(fit_json(hits, 16_000))
    assert said.startswith(HEADER) and "Passage 1: trace trees." in said
    assert "[paper.pdf, p. 1]" in said


def test_the_extractive_answerer_reports_a_result_it_cannot_read() -> None:
    cut = json.dumps([hit(1, "trace trees " * 2_000)])[:16_000]
    with pytest.raises(ModelError, match="could not read the retrieve result"):
        answer(cut)
    with pytest.raises(ModelError, match="expected a list of passages"):
        answer('{"content": "not a list"}')
    assert answer("[]") == NOTHING_FOUND  # a result with no passage is what "nothing" means
