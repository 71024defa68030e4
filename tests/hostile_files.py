"""Hostile files made cheaply in memory: zip bombs, a PDF of very many pages, HTML nested very
deep. Shared by the tests and ``bench/bench_memory.py``."""

from __future__ import annotations

import io
import zipfile

MB = 1024 * 1024

_DOCX_TYPES = (
    b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
    b'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    b'officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_XLSX_TYPES = (
    b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'content-types"><Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
    b'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
)


def _bomb(
    members: list[tuple[str, bytes]],
    name: str,
    head: bytes,
    unit: bytes,
    tail: bytes,
    expanded_bytes: int,
) -> bytes:
    """A zip whose member ``name`` expands to ``expanded_bytes`` of ``unit`` repeated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for member, data in members:
            archive.writestr(member, data)
        with archive.open(name, "w", force_zip64=True) as out:
            out.write(head)
            piece = unit * (MB // len(unit))
            for _ in range(expanded_bytes // len(piece)):
                out.write(piece)
            out.write(tail)
    return buffer.getvalue()


def docx_bomb(expanded_bytes: int = 1024 * MB) -> bytes:
    """A DOCX of about a megabyte whose document.xml expands to ``expanded_bytes``."""
    return _bomb(
        [("[Content_Types].xml", _DOCX_TYPES)],
        "word/document.xml",
        b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
        b'wordprocessingml/2006/main"><w:body>',
        b"<w:p><w:r><w:t>boom</w:t></w:r></w:p>",
        b"</w:body></w:document>",
        expanded_bytes,
    )


def xlsx_bomb(expanded_bytes: int = 1024 * MB) -> bytes:
    """An XLSX of about a megabyte whose first sheet expands to ``expanded_bytes``."""
    return _bomb(
        [("[Content_Types].xml", _XLSX_TYPES)],
        "xl/worksheets/sheet1.xml",
        b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/'
        b'spreadsheetml/2006/main"><sheetData>',
        b'<row><c t="inlineStr"><is><t>boom</t></is></c></row>',
        b"</sheetData></worksheet>",
        expanded_bytes,
    )


def many_page_pdf(pages: int = 100_000) -> bytes:
    """A valid PDF of ``pages`` pages that all share one font and one content stream (about
    7 MB for 100,000 pages), written by hand: no library makes one this fast."""
    content = b"BT /F1 24 Tf 72 720 Td (Page text) Tj ET"
    first_page = 5
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (first_page + n) for n in range(pages))
        + b"] /Count %d >>" % pages,
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
        b"/Resources << /Font << /F1 4 0 R >> >> >>"
    )
    objects += [page] * pages
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def deep_html(depth: int = 1_000_000, text: str = "deep text") -> bytes:
    """HTML with ``depth`` nested elements around ``text`` (about 11 bytes per level)."""
    return (b"<div>" * depth) + text.encode() + (b"</div>" * depth)
