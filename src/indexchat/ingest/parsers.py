"""Bytes + file name / media type → pages of text.

One function per format, chosen from a dispatch table: the file name's extension first, then
the media type (the manifest of our test documents shows why: `file` calls a Markdown README
"HTML document", so content sniffing is not trusted).

Pages: PDF pages keep their numbers, and each PPTX slide is one page numbered as in the deck.
Every other format is a single page numbered 1; XLSX sheets become ``## <sheet name>`` headings,
which the chunker turns into heading paths.

Formats and how they are read:

- pdf: pypdfium2 (PDFium), page by page. No OCR: an image-only PDF is a ParseError.
- docx, pptx, xlsx, html: markitdown's converters, producing Markdown (``#`` headings, tables).
  They are called directly rather than through ``MarkItDown().convert_stream``: our table has
  already chosen the format, and MarkItDown's content sniffing (magika) could route a hostile
  file elsewhere, e.g. a zip to its ZipConverter, which converts every member.
- markdown, text, csv: decoded as they are (UTF-8, else a detected charset, else latin-1).

Anything a hostile file makes a library raise becomes ParseError with a short reason a user
can act on; limits (size, pages, zip expansion, HTML nesting) are checked before the expensive
work. Time and memory are not bounded here: ``sandbox.py`` runs parsing in a child process that
enforces both.
"""

from __future__ import annotations

import codecs
import html
import io
import re
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import pypdfium2

MB = 1024 * 1024


@dataclass(frozen=True)
class ParseLimits:
    """Bounds that keep one hostile upload from exhausting memory or CPU."""

    max_bytes: int = 100 * MB
    max_pages: int = 5000
    max_unzipped_bytes: int = 200 * MB  # total declared size of an Office file's members
    # One member's declared size: parsing Word XML costs seconds and tens of times its size in
    # memory per MB of it (BENCHMARKS.md).
    max_unzipped_member_bytes: int = 64 * MB
    max_zip_ratio: float = 100.0  # uncompressed / compressed, for members of the size below
    zip_ratio_min_member: int = 10 * MB  # small XML parts compress well and prove nothing
    max_zip_members: int = 10_000
    # Deeper HTML is read as plain text: building and walking a tree that deep costs seconds and
    # hundreds of times its size in memory (BENCHMARKS.md), while a real page nests a few dozen
    # elements.
    max_html_depth: int = 512


DEFAULT_LIMITS = ParseLimits()


@dataclass(frozen=True)
class ParsedPage:
    number: int  # 1-based
    text: str


@dataclass(frozen=True)
class ParsedDocument:
    pages: list[ParsedPage]
    kind: str  # "pdf", "docx", "pptx", "xlsx", "html", "markdown", "text" or "csv"

    @property
    def page_count(self) -> int:
        return len(self.pages)

    @property
    def is_markdown(self) -> bool:
        """Whether ``#`` lines are headings (true for everything markitdown produces)."""
        return self.kind in MARKDOWN_KINDS

    @property
    def pages_are_sections(self) -> bool:
        """Whether each page stands alone (slides), so headings do not carry over a page."""
        return self.kind in SELF_CONTAINED_PAGE_KINDS


class ParseError(Exception):
    """The file cannot be turned into text; ``reason`` is short and fit to show a user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


MARKDOWN_KINDS = frozenset({"markdown", "docx", "pptx", "xlsx", "html"})
SELF_CONTAINED_PAGE_KINDS = frozenset({"pptx"})

ZIP_BOMB = "archive expands too much (possible zip bomb)"
NO_TEXT_PDF = "no extractable text (image-only / scanned PDF; OCR is not supported)"

_EXTENSIONS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".log": "text",
    ".csv": "csv",
    ".tsv": "csv",
}

_MEDIA_TYPES = {
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
    "text/csv": "csv",
    "text/tab-separated-values": "csv",
}


def parse(
    data: bytes,
    filename: str,
    media_type: str | None = None,
    *,
    limits: ParseLimits = DEFAULT_LIMITS,
) -> ParsedDocument:
    """Extract the text of one file, page by page; raise ParseError when that is impossible."""
    if not data:
        raise ParseError("empty file")
    if len(data) > limits.max_bytes:
        raise ParseError(too_large(len(data), limits))
    kind = detect_kind(filename, media_type)
    try:
        raw_pages = _PARSERS[kind](data, limits)
    except (ParseError, MemoryError):  # the memory limit is the caller's to report
        raise
    except Exception as exc:  # a hostile file can make any library raise anything
        raise ParseError(f"could not read {kind.upper()} file: {_describe(exc)}") from exc
    _check_page_count(len(raw_pages), limits)
    pages = [ParsedPage(page.number, normalize_text(page.text)) for page in raw_pages]
    if not any(page.text.strip() for page in pages):
        raise ParseError(NO_TEXT_PDF if kind == "pdf" else "no extractable text")
    return ParsedDocument(pages=pages, kind=kind)


def too_large(size: int, limits: ParseLimits) -> str:
    """Why a file of ``size`` bytes is not parsed, when it is over the limit."""
    return f"file too large ({_megabytes(size)} MB; the limit is {_megabytes(limits.max_bytes)} MB)"


def detect_kind(filename: str, media_type: str | None = None) -> str:
    """The format to parse as: by extension, else by media type, else ParseError."""
    extension = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    essence = (media_type or "").split(";", 1)[0].strip().lower()
    if essence in _MEDIA_TYPES:
        return _MEDIA_TYPES[essence]
    if extension:
        raise ParseError(f"unsupported file type '{extension}'")
    if essence:
        raise ParseError(f"unsupported file type '{essence}'")
    raise ParseError("unsupported file type (no extension and no media type)")


# ---- text normalization -------------------------------------------------------------------

_LINE_BREAKS = str.maketrans(
    {"\r": "\n", "\v": "\n", "\f": "\n", "\x85": "\n", "\u2028": "\n", "\u2029": "\n"}
)
# C0/C1 controls except \t and \n, plus the noncharacters U+FFFE/U+FFFF: PDFium puts U+FFFE
# where a word was hyphenated at a line end, so dropping it rejoins the word.
_CONTROL_CHARS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_EXTRA_BLANK_LINES = re.compile(r"\n{4,}")


def normalize_text(text: str) -> str:
    """Unify line breaks, drop control characters, keep at most two blank lines in a row."""
    text = text.replace("\r\n", "\n").translate(_LINE_BREAKS)
    text = _CONTROL_CHARS.sub("", text)
    text = _TRAILING_SPACE.sub("", text)
    text = _EXTRA_BLANK_LINES.sub("\n\n\n", text)
    return text.strip("\n")


# ---- PDF ------------------------------------------------------------------------------------

# PDFium is not thread-safe: every call into it, here and in pages.py, holds this lock.
PDFIUM_LOCK = threading.RLock()

_PDF_OPEN_REASONS = {
    0: "not a valid PDF: it has no pages",
    2: "not a valid PDF: the file could not be read",
    3: "not a valid PDF: damaged, truncated or not a PDF at all",
    4: "encrypted PDF (password required)",
    5: "encrypted PDF (unsupported security scheme)",
    6: "not a valid PDF: its page tree is damaged",
}


def open_pdf(data: bytes) -> pypdfium2.PdfDocument:
    """Open a PDF held in memory (the caller holds PDFIUM_LOCK); failures become ParseError.

    A file encrypted with an empty user password (copy-protected) opens like any other.
    """
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        reason = _PDF_OPEN_REASONS.get(exc.err_code) if exc.err_code is not None else None
        raise ParseError(reason or f"not a valid PDF: {_describe(exc)}") from exc


def _parse_pdf(data: bytes, limits: ParseLimits) -> list[ParsedPage]:
    with PDFIUM_LOCK:
        pdf = open_pdf(data)
        try:
            count = len(pdf)
            _check_page_count(count, limits)
            return [ParsedPage(index + 1, _pdf_page_text(pdf, index)) for index in range(count)]
        finally:
            pdf.close()


def _pdf_page_text(pdf: pypdfium2.PdfDocument, index: int) -> str:
    """One page's text; a page PDFium cannot load is empty, so the others keep their numbers."""
    import pypdfium2 as pdfium

    try:
        page = pdf[index]
    except pdfium.PdfiumError:
        return ""
    try:
        textpage = page.get_textpage()
        try:
            return textpage.get_text_range()
        finally:
            textpage.close()
    except pdfium.PdfiumError:
        return ""
    finally:
        page.close()


# ---- Office (zip-based) via markitdown ------------------------------------------------------


def check_zip(data: bytes, label: str, limits: ParseLimits) -> None:
    """Refuse an Office file whose zip would expand beyond the limits, before parsing it.

    The declared sizes are trustworthy enough: zipfile never returns more bytes for a member
    than its declared size, so a member that lies only yields truncated (broken) XML.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except Exception as exc:
        raise ParseError(f"not a valid {label} file (not a readable zip archive)") from exc
    if len(members) > limits.max_zip_members:
        raise ParseError(f"archive has too many members ({len(members)})")
    if sum(member.file_size for member in members) > limits.max_unzipped_bytes:
        raise ParseError(ZIP_BOMB)
    for member in members:
        if member.file_size > limits.max_unzipped_member_bytes:
            raise ParseError(
                f"{ZIP_BOMB}: {member.filename} expands to {_megabytes(member.file_size)} MB "
                f"(the limit is {_megabytes(limits.max_unzipped_member_bytes)} MB)"
            )
        big = member.file_size >= limits.zip_ratio_min_member
        if big and member.file_size > limits.max_zip_ratio * max(member.compress_size, 1):
            raise ParseError(ZIP_BOMB)


def _markitdown(converter_name: str, data: bytes, extension: str, **options: object) -> str:
    """Run one markitdown converter on the bytes and return its Markdown."""
    # Imported here: markitdown pulls in magika and onnxruntime, which is slow to import.
    import markitdown.converters as converters
    from markitdown import StreamInfo

    converter = getattr(converters, converter_name)()
    info = StreamInfo(extension=extension, charset="utf-8")
    return converter.convert(io.BytesIO(data), info, **options).markdown


def _parse_docx(data: bytes, limits: ParseLimits) -> list[ParsedPage]:
    check_zip(data, "DOCX", limits)
    return [ParsedPage(1, _markitdown("DocxConverter", data, ".docx"))]


_SLIDE_MARKER = re.compile(r"^<!-- Slide number: (\d+) -->$", re.MULTILINE)


def _parse_pptx(data: bytes, limits: ParseLimits) -> list[ParsedPage]:
    check_zip(data, "PPTX", limits)
    markdown = _markitdown("PptxConverter", data, ".pptx")
    # markitdown marks each slide with an HTML comment; split there so slides become pages.
    parts = _SLIDE_MARKER.split(markdown)
    if len(parts) == 1:
        return [ParsedPage(1, markdown)]
    numbers, texts = parts[1::2], parts[2::2]
    texts[0] = parts[0] + texts[0]
    return [ParsedPage(int(number), text) for number, text in zip(numbers, texts, strict=True)]


# pandas (behind markitdown's XLSX converter) writes empty cells as "NaN" and untitled columns
# as "Unnamed: 3": noise for search, so blank them and drop rows left with no content.
_XLSX_FILLER_CELL = re.compile(r"(?<=\|) (?:NaN|Unnamed: \d+) (?=\|)")
_EMPTY_TABLE_ROW = re.compile(r"^\|(?:\s*\|)+\n", re.MULTILINE)


def _parse_xlsx(data: bytes, limits: ParseLimits) -> list[ParsedPage]:
    check_zip(data, "XLSX", limits)
    markdown = _markitdown("XlsxConverter", data, ".xlsx")
    markdown = _EMPTY_TABLE_ROW.sub("", _XLSX_FILLER_CELL.sub("  ", markdown + "\n"))
    return [ParsedPage(1, markdown)]


# ---- HTML -----------------------------------------------------------------------------------

_HTML_NOISE_TAGS = [
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "iframe",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "video",  # as a Markdown image of its poster, linked to the media file
    "audio",
    "object",
    "embed",
]
_HTML_NOISE_ROLES = "[role=navigation], [role=banner], [role=contentinfo], [role=search]"


def _parse_html(data: bytes, limits: ParseLimits) -> list[ParsedPage]:
    from bs4 import BeautifulSoup

    text = _drop_unterminated_end(decode_text(data))
    if _html_depth_exceeds(text, limits.max_html_depth):
        return [ParsedPage(1, _html_plain_text(text))]
    soup = BeautifulSoup(text, "html.parser")
    # Keep the main content: drop site chrome, and prefer <main>/<article> when there is one.
    for element in soup(_HTML_NOISE_TAGS) + soup.select(_HTML_NOISE_ROLES):
        element.decompose()
    # An image is its alt text: `![](//upload.wikimedia.org/…)` in a passage helps no reader.
    for image in soup("img"):
        alt = cast(str | None, image.get("alt"))  # single-valued: a str, never a list
        image.replace_with(" ".join((alt or "").split()))
    main = soup.find("main") or soup.find(None, {"role": "main"}) or soup.find("article")
    html = str(main if main is not None else soup).encode("utf-8")
    # strip=["a"]: keep link text, drop URLs (hundreds of them on a typical page).
    return [ParsedPage(1, _markitdown("HtmlConverter", html, ".html", strip=["a"]))]


# Elements that never have content, so never nest (the HTML spec's void elements).
_VOID_TAGS = frozenset(
    "area base br col embed hr img input link meta param source track wbr".split()
)
_TAG = re.compile(r"<(/?)([A-Za-z][^\s/>]*)[^>]*?(/?)>")
_HTML_HIDDEN = re.compile(
    # An unclosed one runs to the end (as in a browser), so each is scanned once.
    r"<!--.*?(?:-->|\Z)|<(script|style|template)\b.*?(?:</\1\s*>|\Z)",
    re.DOTALL | re.IGNORECASE,
)
_TAG_OPEN = re.compile(r"<[A-Za-z/!?]")  # what starts markup; a bare "<" is text
# The tags that end a line in plain text: _TAG restricted to these names.
_BLOCK_TAG = re.compile(
    r"<(/?)(?:p|div|li|tr|br|h[1-6]|section|article|table)(?![^\s/>])[^>]*?(/?)>",
    re.IGNORECASE,
)


def _drop_unterminated_end(text: str) -> str:
    """Drop a comment or tag left open at the end, as HTML5 does at end of file (a comment runs
    to the end, an unfinished tag is ignored). Python's HTMLParser before 3.11.13 rescans such
    a tail for each ``<`` in it: 24 KB of ``<a `` took 11 s
    (https://github.com/python/cpython/issues/135462)."""
    comment = text.find("<!--", text.rfind("-->") + 1)
    if comment >= 0:
        text = text[:comment]
    tag = _TAG_OPEN.search(text, text.rfind(">") + 1)
    return text if tag is None else text[: tag.start()]


def _html_depth_exceeds(text: str, limit: int) -> bool:
    """Whether elements nest deeper than ``limit``, counted as the tree builder would (an
    unclosed ``<p>`` or ``<div>`` nests what follows); one linear pass over the tags."""
    depth = 0
    for match in _TAG.finditer(text):
        closing, name, self_closing = match.groups()
        if self_closing or name.lower() in _VOID_TAGS:
            continue
        if closing:
            depth = max(depth - 1, 0)
        else:
            depth += 1
            if depth > limit:
                return True
    return False


def _html_plain_text(text: str) -> str:
    """The text of an HTML document with no tree (for input too deep for one): linear time."""
    text = _HTML_HIDDEN.sub(" ", text)
    # Two passes without a Python call per tag: a 1,000,000-deep page has two million tags.
    text = _TAG.sub("", _BLOCK_TAG.sub("\n", text))
    return html.unescape(text)


# ---- plain text -----------------------------------------------------------------------------

_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


def decode_text(data: bytes) -> str:
    """Decode text of unknown encoding: BOM, else UTF-8, else detected, else latin-1."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if b"\x00" in data[:8192]:
        raise ParseError("not a text file (binary content)")
    return _decode_detected(data)


_CP1252_CHAOS_MARGIN = 0.05


def _decode_detected(data: bytes) -> str:
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return data.decode("latin-1")
    # Short Western European text is often taken for a Mac or Central European code page;
    # windows-1252 is by far the most common legacy encoding, so it wins a near tie.
    western = next((match for match in matches if match.encoding == "cp1252"), None)
    if western is not None and western.chaos <= best.chaos + _CP1252_CHAOS_MARGIN:
        return str(western)
    return str(best)


def _parse_plain(data: bytes, limits: ParseLimits) -> list[ParsedPage]:
    return [ParsedPage(1, decode_text(data))]


_PARSERS: dict[str, Callable[[bytes, ParseLimits], list[ParsedPage]]] = {
    "pdf": _parse_pdf,
    "docx": _parse_docx,
    "pptx": _parse_pptx,
    "xlsx": _parse_xlsx,
    "html": _parse_html,
    "markdown": _parse_plain,
    "text": _parse_plain,
    "csv": _parse_plain,
}


# ---- helpers --------------------------------------------------------------------------------


def _check_page_count(count: int, limits: ParseLimits) -> None:
    if count > limits.max_pages:
        raise ParseError(f"too many pages ({count}; the limit is {limits.max_pages})")


def _megabytes(size: int) -> str:
    return f"{size / MB:.1f}".removesuffix(".0")


def _describe(exc: Exception) -> str:
    """A one-line description of a library's exception, short enough for a user."""
    message = " ".join(str(exc).split())
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
