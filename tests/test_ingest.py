"""ingest/: parsing real-world and hostile files, chunking, page screenshots.

The real-world files are in shared/data/docs (see its MANIFEST.md for what each one is); the
tests skip when that folder is not beside the repository. Hostile inputs are built here.
"""

from __future__ import annotations

import io
import random
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from indexchat.ingest.chunking import (
    DEFAULT_MAX_CHARS,
    TextChunk,
    chunk,
    full_text,
    page_offsets,
)
from indexchat.ingest.pages import render_pdf_pages
from indexchat.ingest.parsers import (
    ParsedDocument,
    ParsedPage,
    ParseError,
    ParseLimits,
    detect_kind,
    normalize_text,
    parse,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff]")


@dataclass(frozen=True)
class Expect:
    """What parsing one shared file must give: its kind, page count and text on given pages."""

    kind: str
    pages: int
    on_page: dict[int, list[str]]  # page number → phrases found on that page
    absent: tuple[str, ...] = ()


EXPECTED_TEXT: dict[str, Expect] = {
    "i1040nr.pdf": Expect(
        "pdf",
        50,
        {
            1: ["Page 1 of 48", "U.S. Nonresident Alien Income Tax Return"],
            20: ["Page 20 of 48"],
            41: ["Page 41 of 48", "2007 Tax Table"],
            50: ["Foreign Earned Income Tax Worksheet"],
        },
    ),
    "redp5110_sampled.pdf": Expect("pdf", 18, {1: ["Row and Column Access Control"]}),
    # "com\ufffepile" in PDFium's output: the line-end hyphen marker is dropped, the word whole
    "tracemonkey.pdf": Expect(
        "pdf", 14, {1: ["Trace-based Just-in-Time Type Specialization", "difficult to compile"]}
    ),
    # scanned, with a poor hidden OCR layer: it has text, even if garbled
    "pdf-with-ocr-text.pdf": Expect("pdf", 1, {1: ["progress of the Foundation"]}),
    "zen_of_python_corrupted.pdf": Expect("pdf", 1, {1: ["Beautiful is better than ugly."]}),
    # AES-encrypted with an empty user password: opens without one
    "copy-protected.pdf": Expect("pdf", 2, {1: ["LayoutParser"]}),
    "korean-text-with-tables.pdf": Expect("pdf", 1, {1: ["삼성카드", "적립 제외 대상"]}),
    "multilang.pdf": Expect(
        "pdf",
        1,
        {
            1: [
                "Hello World",
                "مرحبا بالعالم",
                "Привет, мир",
                "你好世界",
                "สวัสดีชาวโลก",
                "こんにちは世界",
            ]
        },
    ),
    "word_sample.docx": Expect(
        "docx", 1, {1: ["# Let’s swim!", "## Let’s eat", "Calories per portion"]}
    ),
    "powerpoint_sample.pptx": Expect(
        "pptx",
        3,
        {
            1: ["# Test Table Slide", "A merged with B"],
            2: ["# Second slide title", "Some notes on the second slide."],
            3: ["Final notes on the third slide."],
        },
        absent=("<!-- Slide number",),
    ),
    "2023-half-year-analyses-by-segment.xlsx": Expect(
        "xlsx", 1, {1: ["## ", "Zone NA", "Nestlé Health Science"]}, absent=("NaN", "Unnamed:")
    ),
    "wiki_duck.html": Expect(
        "html",
        1,
        {1: ["is the common name for numerous species of waterfowl", "## Etymology"]},
        absent=("Jump to content", "Main menu", "<script", "![", "upload.wikimedia.org"),
    ),
    "docling-README.md": Expect("markdown", 1, {1: ["# Docling", "## Features"]}),
    "UDHR_first_article_all.txt": Expect(
        "text",
        1,
        {1: ["Все люди рождаются свободными", "人人生而自由", "सभी मनुष्यों", "Alle Menschen"]},
    ),
    "book-war-and-peace-1225p.txt": Expect(
        "text", 1, {1: ["CHAPTER I", "Well, Prince, so Genoa and Lucca"]}
    ),
    "laucnty16.csv": Expect("csv", 1, {1: ["LAUS Code", '"Autauga County, AL"']}),
}

EXPECTED_ERRORS: dict[str, str] = {
    "invalid.pdf": "not a valid PDF",
    "unreadablemetadata.pdf": "not a valid PDF",  # broken page tree: PDFium cannot open it
    "libreoffice-writer-password.pdf": "encrypted PDF (password required)",
    "loremipsum-flat.pdf": "no extractable text (image-only / scanned PDF",
}


_PARSED: dict[str, ParsedDocument] = {}


def parsed(docs: Path, name: str) -> ParsedDocument:
    """Parse a shared file once per test run (several tests look at the same documents)."""
    if name not in _PARSED:
        _PARSED[name] = parse((docs / name).read_bytes(), name)
    return _PARSED[name]


# ---- shared documents -------------------------------------------------------------------------


def test_every_shared_file_has_an_expectation(docs: Path) -> None:
    names = {path.name for path in docs.iterdir() if path.name != "MANIFEST.md"}
    assert names == set(EXPECTED_TEXT) | set(EXPECTED_ERRORS)


@pytest.mark.parametrize("name", sorted(EXPECTED_TEXT))
def test_shared_file_parses(docs: Path, name: str) -> None:
    expect = EXPECTED_TEXT[name]
    document = parsed(docs, name)
    assert document.kind == expect.kind
    assert document.page_count == expect.pages
    assert [page.number for page in document.pages] == list(range(1, expect.pages + 1))
    for number, phrases in expect.on_page.items():
        for phrase in phrases:
            assert phrase in document.pages[number - 1].text, (number, phrase)
    text = full_text(document)
    for phrase in expect.absent:
        assert phrase not in text
    for page in document.pages:
        assert not CONTROL_CHARS.search(page.text)
        assert "\n\n\n\n" not in page.text
        assert page.text == page.text.strip("\n")


@pytest.mark.parametrize("name", sorted(EXPECTED_ERRORS))
def test_shared_file_fails_with_a_clear_reason(docs: Path, name: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse((docs / name).read_bytes(), name)
    assert EXPECTED_ERRORS[name] in caught.value.reason
    assert str(caught.value) == caught.value.reason


def test_pdf_page_numbers_match_the_printed_ones(docs: Path) -> None:
    # i1040nr.pdf prints "Page N of 48" on its first 48 pages; pages 49-50 are an insert.
    document = parsed(docs, "i1040nr.pdf")
    for page in document.pages[:48]:
        assert f"Page {page.number} of 48 " in page.text
        others = [p.number for p in document.pages if f"Page {page.number} of 48 " in p.text]
        assert others == [page.number]


def test_truncated_pdf_is_parsed_or_refused_cleanly(docs: Path) -> None:
    data = (docs / "i1040nr.pdf").read_bytes()
    for cut in (len(data) // 2, 1000):
        try:
            document = parse(data[:cut], "truncated.pdf")
        except ParseError as exc:
            assert exc.reason
        else:
            assert document.page_count >= 1


def test_page_limit(docs: Path) -> None:
    with pytest.raises(ParseError, match=r"too many pages \(50; the limit is 10\)"):
        parse((docs / "i1040nr.pdf").read_bytes(), "i1040nr.pdf", limits=ParseLimits(max_pages=10))


# ---- hostile and odd input ----------------------------------------------------------------------


def _zip_with_zeros(member_mb: int) -> bytes:
    """A DOCX-looking zip whose document part is member_mb MB of zeros (streamed, level 1)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = bytes(1024 * 1024)
            for _ in range(member_mb):
                member.write(block)
    return buffer.getvalue()


def test_zip_bomb_total_size() -> None:
    data = _zip_with_zeros(256)
    assert len(data) < 2 * 1024 * 1024  # small on the wire, 256 MB unpacked
    with pytest.raises(ParseError, match="possible zip bomb"):
        parse(data, "bomb.docx")


def test_zip_bomb_compression_ratio() -> None:
    data = _zip_with_zeros(20)  # under the total limit, but ~200:1 on one big member
    with pytest.raises(ParseError, match="possible zip bomb"):
        parse(data, "bomb.xlsx")
    with pytest.raises(ParseError, match="possible zip bomb"):
        parse(data, "bomb.pptx", limits=ParseLimits(max_unzipped_bytes=10**12))


def test_file_over_the_size_limit() -> None:
    with pytest.raises(ParseError, match="file too large"):
        parse(b"x" * 2000, "big.txt", limits=ParseLimits(max_bytes=1000))


@pytest.mark.parametrize("name", ["random.pdf", "random.docx", "random.pptx", "random.xlsx"])
def test_random_bytes(name: str) -> None:
    data = random.Random(1234).randbytes(4096)
    with pytest.raises(ParseError) as caught:
        parse(data, name)
    assert "not a valid" in caught.value.reason


def test_zip_that_is_not_an_office_file() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hello")
    with pytest.raises(ParseError, match="could not read DOCX file"):
        parse(buffer.getvalue(), "fake.docx")


def test_empty_and_blank_files() -> None:
    with pytest.raises(ParseError, match="^empty file$"):
        parse(b"", "empty.pdf")
    with pytest.raises(ParseError, match="no extractable text"):
        parse(b" \n\t\n\x00\x01 ", "blank.txt")


def test_unsupported_file_types() -> None:
    with pytest.raises(ParseError, match=r"unsupported file type '\.xyz'"):
        parse(b"data", "file.xyz")
    with pytest.raises(ParseError, match="unsupported file type 'image/png'"):
        parse(b"data", "upload", "image/png")


def test_media_type_is_used_when_the_name_says_nothing() -> None:
    assert detect_kind("upload", "text/plain; charset=utf-8") == "text"
    assert detect_kind("notes.md", "text/html") == "markdown"  # the extension wins
    assert parse(b"hello", "upload", "text/csv").kind == "csv"


def test_control_characters_are_removed() -> None:
    raw = "a\x00b\x01c\x7f\x9fd\r\ne\rf\x0cg\th\ufffe\n\n\n\n\n\n\nend  \n"
    document = parse(raw.encode(), "control.txt")
    assert document.pages[0].text == "abcd\ne\nf\ng\th\n\n\nend"
    assert normalize_text("x\u2028y\u2029z") == "x\ny\nz"


def test_text_encodings() -> None:
    french = "Le cœur a ses raisons que la raison ne connaît point. Déjà vu, été, où. " * 5
    assert "raisons" in parse(french.encode("cp1252"), "f.txt").pages[0].text
    assert "connaît" in parse(french.encode("cp1252"), "f.txt").pages[0].text
    assert parse(french.encode("utf-16"), "f.txt").pages[0].text == french.strip()
    assert parse(b"\xef\xbb\xbfhi", "bom.txt").pages[0].text == "hi"
    with pytest.raises(ParseError, match="binary content"):
        parse(b"\x00\x01\x02\xff\xfe\x00" * 100, "binary.txt")


def test_html_images_become_their_alt_text() -> None:
    html = (
        b'<p>A duck <img src="//upload.wikimedia.org/duck.jpg" alt="Mallard  on water">'
        b' swims.<img src="/pixel.gif"></p>'
    )
    text = parse(html, "page.html").pages[0].text
    assert text == "A duck Mallard on water swims."


@pytest.mark.filterwarnings("ignore:HTML document is too deeply nested")
def test_deeply_nested_html_does_not_crash() -> None:
    html = "<html><body>" + "<div>" * 3000 + "deep text" + "</div>" * 3000 + "</body></html>"
    try:
        document = parse(html.encode(), "deep.html")
    except ParseError as exc:
        assert exc.reason
    else:
        assert "deep text" in document.pages[0].text


# ---- chunking ---------------------------------------------------------------------------------


def check_chunks(document: ParsedDocument, chunks: list[TextChunk], max_chars: int) -> None:
    """Invariants every chunking must keep: exact slices, sizes, pages, coverage, order."""
    text = full_text(document)
    starts = page_offsets(document)
    ends = [start + len(page.text) for start, page in zip(starts, document.pages, strict=True)]
    covered_to, gaps = 0, []
    for position, piece in enumerate(chunks):
        assert piece.index == position
        assert text[piece.start_char : piece.end_char] == piece.text
        assert 0 < len(piece.text) <= max_chars
        assert piece.text == piece.text.strip()
        assert piece.token_estimate == len(piece.text) // 4
        first, last = piece.page_start - 1, piece.page_end - 1
        assert starts[first] <= piece.start_char < ends[first]
        assert starts[last] < piece.end_char <= ends[last]
        if piece.start_char > covered_to:
            gaps.append(text[covered_to : piece.start_char])
        covered_to = max(covered_to, piece.end_char)
    gaps.append(text[covered_to:])
    assert "".join(gaps).strip() == ""  # every visible character is in some chunk


@pytest.mark.parametrize("name", sorted(EXPECTED_TEXT))
def test_chunking_shared_documents(docs: Path, name: str) -> None:
    document = parsed(docs, name)
    chunks = chunk(document)
    check_chunks(document, chunks, DEFAULT_MAX_CHARS)
    assert chunks == chunk(document)  # deterministic


def test_chunks_know_their_pages(docs: Path) -> None:
    document = parsed(docs, "i1040nr.pdf")
    chunks = chunk(document, max_chars=800, overlap_chars=100)
    check_chunks(document, chunks, 800)
    holding = [c for c in chunks if "Page 20 of 48" in c.text]
    assert holding and all(c.page_start <= 20 <= c.page_end for c in holding)
    assert {c.page_start for c in chunks} == set(range(1, 51))
    assert any(c.page_start < c.page_end for c in chunks)  # text flows across pages


def test_pptx_headings_do_not_leak_into_the_next_slide(docs: Path) -> None:
    chunks = chunk(parsed(docs, "powerpoint_sample.pptx"))
    by_page = {c.page_start: c.heading_path for c in chunks}
    assert by_page[1] == ["Test Table Slide"]
    assert chunks[-1].page_start == 3
    assert "Second slide title" not in chunks[-1].heading_path


GUIDE = """Intro before any heading.

# Guide

Welcome to the guide.

## Install

```bash
# not a heading: a comment in a code block
pip install thing
```

## Use

### Details

Details here.

# Appendix

The end.
"""


def test_heading_paths() -> None:
    document = ParsedDocument([ParsedPage(1, GUIDE)], "markdown")
    chunks = chunk(document, max_chars=200, overlap_chars=20)
    check_chunks(document, chunks, 200)
    paths = [(c.heading_path, c.text.splitlines()[0]) for c in chunks]
    assert paths == [
        ([], "Intro before any heading."),
        (["Guide"], "# Guide"),
        (["Guide", "Install"], "## Install"),
        (["Guide", "Use", "Details"], "## Use"),  # a heading with no body joins the next
        (["Appendix"], "# Appendix"),
    ]


def test_hash_lines_are_not_headings_in_plain_text() -> None:
    document = ParsedDocument([ParsedPage(1, "# not a heading\n\nbody")], "text")
    assert [c.heading_path for c in chunk(document)] == [[]]


def _words(count: int, seed: int) -> str:
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        words = [rng.choice(["alpha", "beta", "gamma", "delta", "epsilon"]) for _ in range(12)]
        sentences.append(" ".join(words).capitalize() + ".")
    paragraphs = [" ".join(sentences[i : i + 7]) for i in range(0, count, 7)]
    return "\n\n".join(paragraphs)


def test_chunks_split_between_words_and_overlap() -> None:
    pages = [ParsedPage(1, _words(60, 1)), ParsedPage(2, _words(60, 2))]
    document = ParsedDocument(pages, "text")
    text = full_text(document)
    chunks = chunk(document, max_chars=300, overlap_chars=60)
    check_chunks(document, chunks, 300)
    for piece in chunks:
        assert piece.start_char == 0 or text[piece.start_char - 1].isspace()
        assert piece.end_char == len(text) or text[piece.end_char].isspace()
    overlaps = [a.end_char - b.start_char for a, b in zip(chunks, chunks[1:], strict=False)]
    assert all(overlap <= 60 for overlap in overlaps)
    assert sum(overlap > 0 for overlap in overlaps) >= len(overlaps) // 2


def test_a_word_longer_than_a_chunk_is_cut() -> None:
    document = ParsedDocument([ParsedPage(1, "short " + "x" * 250 + " tail")], "text")
    chunks = chunk(document, max_chars=100, overlap_chars=10)
    check_chunks(document, chunks, 100)
    assert chunks[0].text == "short"


def test_chunk_arguments_are_checked() -> None:
    document = ParsedDocument([ParsedPage(1, "text")], "text")
    with pytest.raises(ValueError):
        chunk(document, max_chars=100, overlap_chars=100)


# ---- page screenshots -------------------------------------------------------------------------


def test_render_pdf_pages(docs: Path) -> None:
    from PIL import Image

    rendered = list(render_pdf_pages((docs / "tracemonkey.pdf").read_bytes(), max_pages=2))
    assert [number for number, _ in rendered] == [1, 2]
    for _, png in rendered:
        assert png.startswith(PNG_SIGNATURE)
        assert 20_000 < len(png) < 5_000_000
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (612, 792)  # US Letter at 72 dpi


def test_render_caps_the_bitmap_size(docs: Path) -> None:
    from PIL import Image

    data = (docs / "multilang.pdf").read_bytes()
    [(_, png)] = render_pdf_pages(data, scale=20.0, max_pixels=1_000_000)
    with Image.open(io.BytesIO(png)) as image:
        assert image.width * image.height <= 1_000_000


def test_render_refuses_what_cannot_be_opened(docs: Path) -> None:
    with pytest.raises(ParseError, match="encrypted PDF"):
        next(render_pdf_pages((docs / "libreoffice-writer-password.pdf").read_bytes()))
    with pytest.raises(ParseError, match="not a valid PDF"):
        next(render_pdf_pages(b"%PDF-1.7\n%%EOF\n"))
