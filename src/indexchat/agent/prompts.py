"""The system prompt, the bounded history a turn sends to the model, and session titles."""

from __future__ import annotations

import re
from dataclasses import dataclass

from indexchat.agent.model import Message

SYSTEM_PROMPT = """\
You answer questions about the user's documents. Use the tools to look things up: start with \
`retrieve`; use `find_files`, `grep_file` and `read_file` to dig into one file. Answer only from \
what the tools returned; if they did not return the answer, say so plainly. Cite every claim \
with its source in square brackets, naming the file and page, like [report.pdf, p. 3] (leave \
out the page when there is none). Be concise."""

NO_INDEX_NOTE = (
    "This turn has no index to search, so there are no tools: say that no documents are "
    "connected, and answer only if the question needs no documents."
)

# Earlier turns sent along with a new prompt: at most this many, and this many characters.
HISTORY_TURNS = 8
HISTORY_CHARS = 24_000
TITLE_CHARS = 60


@dataclass(frozen=True)
class PastTurn:
    prompt: str
    answer: str


def build_messages(history: list[PastTurn], prompt: str, *, has_tools: bool) -> list[Message]:
    """System prompt, the newest earlier turns that fit the budget (oldest first), the prompt."""
    system = SYSTEM_PROMPT if has_tools else f"{SYSTEM_PROMPT}\n\n{NO_INDEX_NOTE}"
    kept: list[PastTurn] = []
    budget = HISTORY_CHARS
    for turn in reversed(history[-HISTORY_TURNS:]):
        budget -= len(turn.prompt) + len(turn.answer)
        if budget < 0:
            break
        kept.append(turn)
    messages: list[Message] = [{"role": "system", "content": system}]
    for turn in reversed(kept):
        messages.append({"role": "user", "content": turn.prompt})
        messages.append({"role": "assistant", "content": turn.answer})
    messages.append({"role": "user", "content": prompt})
    return messages


def title_from(prompt: str) -> str:
    """A short title from the first message: its first sentence or its first words, with an
    ellipsis when something was left out (e.g. "What were the main findings in Q3?...")."""
    text = " ".join(prompt.split())
    sentence = re.match(r".+?[.?!](?=\s|$)", text)
    title = sentence.group(0) if sentence else text
    if len(title) > TITLE_CHARS:
        cut = title[: TITLE_CHARS + 1].rsplit(" ", 1)[0] if " " in title[:TITLE_CHARS] else ""
        title = (cut or title[:TITLE_CHARS]).rstrip(",;:-")
    return title if title == text else f"{title}..."
