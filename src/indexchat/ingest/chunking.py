"""ParsedDocument → TextChunk values, aware of headings, paragraphs and sentences.

Offsets are into ``full_text(document)``: the pages' texts joined with a blank line ("\\n\\n").
Every chunk's text is exactly ``full_text[start_char:end_char]``, so a chunk can be found,
highlighted or re-read without guessing.

How a document is cut, deterministically:

1. Sections. In Markdown-like kinds (``document.is_markdown``) every ``#`` heading outside a
   fenced code block starts a section, and its ``heading_path`` is the chain of enclosing
   headings (["Guide", "Install"]). Chunks never cross a section boundary. A heading with no
   body of its own is kept at the start of the next section rather than made a chunk alone.
   Other kinds are one section with an empty heading path. Sections flow across pages, except
   where pages stand alone (``document.pages_are_sections``: PPTX slides), where each page
   starts afresh with an empty heading path.
2. Pieces. A section is cut into paragraphs (blank lines, and always at page boundaries); a
   paragraph longer than ``max_chars`` into sentences, then lines, then words, and only a
   single word longer than ``max_chars`` is cut mid-word.
3. Packing. Consecutive pieces are packed greedily into chunks of at most ``max_chars``. Each
   chunk after the first in a section starts with up to ``overlap_chars`` of the previous
   chunk's tail, begun at a sentence (or else word) boundary, when that still fits.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass

from indexchat.ingest.parsers import ParsedDocument

PAGE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class TextChunk:
    index: int  # 0-based within the file
    text: str  # == full_text(document)[start_char:end_char]
    start_char: int
    end_char: int
    page_start: int
    page_end: int
    heading_path: list[str]
    token_estimate: int


def full_text(document: ParsedDocument) -> str:
    """The document's text as chunk offsets see it: pages joined with a blank line."""
    return PAGE_SEPARATOR.join(page.text for page in document.pages)


def page_offsets(document: ParsedDocument) -> list[int]:
    """Where each page starts in ``full_text(document)``, in page order."""
    offsets, position = [], 0
    for page in document.pages:
        offsets.append(position)
        position += len(page.text) + len(PAGE_SEPARATOR)
    return offsets


# Longer than the embedding model reads: it reads the start of a chunk, full text search all of
# it. Longer chunks mean fewer to embed, and ranked better on SciFact (BENCHMARKS.md).
DEFAULT_MAX_CHARS = 2500


def chunk(
    document: ParsedDocument, *, max_chars: int = DEFAULT_MAX_CHARS, overlap_chars: int = 150
) -> list[TextChunk]:
    """Cut a document into chunks of at most ``max_chars`` characters (see the module doc)."""
    if max_chars < 1 or not 0 <= overlap_chars < max_chars:
        raise ValueError("need max_chars >= 1 and 0 <= overlap_chars < max_chars")
    text = full_text(document)
    starts = page_offsets(document)
    numbers = [page.number for page in document.pages]

    def page_at(offset: int) -> int:
        return numbers[bisect.bisect_right(starts, offset) - 1]

    chunks: list[TextChunk] = []
    sections = _sections(text, starts, document.is_markdown, document.pages_are_sections)
    for section in sections:
        pieces = [
            piece
            for start, end in section.blocks
            for piece in _pieces(text, start, end, max_chars, 0)
        ]
        for start, end in _pack(text, pieces, max_chars, overlap_chars):
            chunks.append(
                TextChunk(
                    index=len(chunks),
                    text=text[start:end],
                    start_char=start,
                    end_char=end,
                    page_start=page_at(start),
                    page_end=page_at(end - 1),
                    heading_path=list(section.heading_path),
                    token_estimate=(end - start) // 4,
                )
            )
    return chunks


# ---- sections ---------------------------------------------------------------------------------

_HEADING = re.compile(r"(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*")
_FENCE = re.compile(r"[ ]{0,3}(```|~~~)")
_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")


@dataclass
class _Section:
    heading_path: tuple[str, ...]
    blocks: list[tuple[int, int]]  # spans of text with no page boundary inside
    has_body: bool = False


def _sections(
    text: str, page_starts: list[int], markdown: bool, pages_are_sections: bool
) -> Iterator[_Section]:
    """Split the text at headings (Markdown kinds only) into spans that never cross a page."""
    page_ends = [start - len(PAGE_SEPARATOR) for start in page_starts[1:]] + [len(text)]
    section = _Section((), [])
    stack: list[tuple[int, str]] = []  # (level, title) of the enclosing headings
    in_fence = False
    for page_start, page_end in zip(page_starts, page_ends, strict=True):
        if pages_are_sections and section.blocks:
            yield section
            section, stack, in_fence = _Section((), []), [], False
        block_start = page_start
        lines = _lines(text, page_start, page_end) if markdown else iter(())
        for line_start, line_end in lines:
            line = text[line_start:line_end]
            if _FENCE.match(line):
                in_fence = not in_fence
            heading = None if in_fence else _HEADING.fullmatch(line)
            if heading is None:
                section.has_body = section.has_body or bool(line.strip())
                continue
            section.blocks.append((block_start, line_start))
            block_start = line_start
            if section.has_body:
                yield section
                section = _Section((), [])
            else:  # keep a bodiless heading: the next section's first chunk starts with it
                section = _Section((), section.blocks)
            section.heading_path = _enter(stack, len(heading.group(1)), heading.group(2).strip())
        section.blocks.append((block_start, page_end))
    yield section


def _enter(stack: list[tuple[int, str]], level: int, title: str) -> tuple[str, ...]:
    """Update the enclosing-heading stack for a heading; return the new heading path."""
    while stack and stack[-1][0] >= level:
        stack.pop()
    stack.append((level, title))
    return tuple(name for _, name in stack)


def _lines(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    position = start
    while position < end:
        newline = text.find("\n", position, end)
        line_end = end if newline < 0 else newline
        yield position, line_end
        position = line_end + 1


# ---- pieces -----------------------------------------------------------------------------------

# Each level splits at its separators' spans; a piece still too long goes one level down.
_SENTENCE_END = re.compile(r"[.!?…]['\"”’)\]]*(\s+)|[。！？](\s*)")
_LINE_BREAK = re.compile(r"(\n)")
_WHITESPACE = re.compile(r"(\s+)")
_LEVELS = [_BLANK_LINES, _SENTENCE_END, _LINE_BREAK, _WHITESPACE]


def _pieces(
    text: str, start: int, end: int, max_chars: int, level: int
) -> Iterator[tuple[int, int]]:
    """Spans of at most max_chars, trimmed of whitespace, in order, covering text[start:end]."""
    start, end = _trim(text, start, end)
    if start >= end:
        return
    if end - start <= max_chars:
        yield start, end
        return
    if level == len(_LEVELS):  # one enormous word: cut it
        for cut in range(start, end, max_chars):
            yield cut, min(cut + max_chars, end)
        return
    for piece_start, piece_end in _split(text, start, end, _LEVELS[level]):
        yield from _pieces(text, piece_start, piece_end, max_chars, level + 1)


def _split(
    text: str, start: int, end: int, separator: re.Pattern[str]
) -> Iterator[tuple[int, int]]:
    """The spans between the separator's matches (its last non-empty group, or whole match)."""
    position = start
    for match in separator.finditer(text, start, end):
        group = next((g for g in range(separator.groups, 0, -1) if match.start(g) >= 0), 0)
        sep_start, sep_end = match.span(group)
        if sep_end <= position:
            continue
        yield position, sep_start
        position = sep_end
    yield position, end


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


# ---- packing ----------------------------------------------------------------------------------

_SENTENCE_START = re.compile(r"[.!?…。！？]['\"”’)\]]*\s+(?=\S)")
_WORD_START = re.compile(r"\s+(?=\S)")


def _pack(
    text: str, pieces: list[tuple[int, int]], max_chars: int, overlap_chars: int
) -> Iterator[tuple[int, int]]:
    """Greedy packing of consecutive pieces, each chunk but the first opening with overlap."""
    index, previous = 0, None
    while index < len(pieces):
        start = pieces[index][0]
        if previous is not None and overlap_chars:
            overlap = _overlap_start(text, previous, overlap_chars)
            if overlap is not None and pieces[index][1] - overlap <= max_chars:
                start = overlap
        end = pieces[index][1]
        index += 1
        while index < len(pieces) and pieces[index][1] - start <= max_chars:
            end = pieces[index][1]
            index += 1
        yield start, end
        previous = (start, end)


def _overlap_start(text: str, previous: tuple[int, int], overlap_chars: int) -> int | None:
    """Where the repeated tail of the previous chunk begins: a sentence start if there is one
    in the window, else a word start; None when the tail is one long word."""
    prev_start, prev_end = previous
    window_start = max(prev_start + 1, prev_end - overlap_chars)
    for pattern in (_SENTENCE_START, _WORD_START):
        # the separator may begin just before the window; the word it leads to must not
        match = pattern.search(text, max(prev_start, window_start - 8), prev_end)
        while match is not None and match.end() < window_start:
            match = pattern.search(text, match.end(), prev_end)
        if match is not None and match.end() < prev_end:
            return match.end()
    return None
