"""Page screenshots (PNG) of a PDF, for tool_result attachments."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from indexchat.ingest.parsers import PDFIUM_LOCK, ParseError, open_pdf

if TYPE_CHECKING:
    import pypdfium2

# A hostile page can declare an enormous media box; above this many pixels the scale is
# lowered so one bitmap stays around 100 MB at most (RGB).
DEFAULT_MAX_PIXELS = 30_000_000


def render_pdf_pages(
    data: bytes,
    *,
    scale: float = 1.0,
    max_pages: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based page number, PNG bytes) for the first ``max_pages`` pages (all if None).

    ``scale`` 1.0 is 72 dpi. Raises ParseError for a PDF that cannot be opened or rendered.
    """
    if scale <= 0:
        raise ValueError("scale must be positive")
    with PDFIUM_LOCK:
        pdf = open_pdf(data)
        count = len(pdf)
    try:
        limit = count if max_pages is None else min(count, max_pages)
        for index in range(limit):
            # The lock is taken per page and never held across a yield.
            with PDFIUM_LOCK:
                png = _render_page(pdf, index, scale, max_pixels)
            yield index + 1, png
    finally:
        with PDFIUM_LOCK:
            pdf.close()


def _render_page(pdf: pypdfium2.PdfDocument, index: int, scale: float, max_pixels: int) -> bytes:
    import pypdfium2 as pdfium

    try:
        page = pdf[index]
        try:
            width, height = page.get_size()
            bitmap = page.render(scale=_fitting_scale(width, height, scale, max_pixels))
            try:
                image = bitmap.to_pil()
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
            finally:
                bitmap.close()
        finally:
            page.close()
    except pdfium.PdfiumError as exc:
        raise ParseError(f"could not render page {index + 1} of the PDF") from exc
    return buffer.getvalue()


def _fitting_scale(width: float, height: float, scale: float, max_pixels: int) -> float:
    """The scale asked for, lowered if the bitmap would exceed max_pixels."""
    pixels = width * height * scale * scale
    if pixels <= max_pixels or pixels <= 0:
        return scale
    return scale * math.sqrt(max_pixels / pixels) * 0.99  # PDFium rounds the size up
