"""The API docs pages, Swagger UI at /docs and ReDoc at /redoc, with their scripts and styles
served from the package (``web/static/vendor``), so they work without a network."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

VENDOR = Path(__file__).resolve().parents[2] / "web" / "static" / "vendor"
VENDOR_URL = "/static/vendor"
SWAGGER_UI = f"{VENDOR_URL}/swagger-ui-dist-5.35.0"
REDOC = f"{VENDOR_URL}/redoc-2.5.4"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


def install(app: FastAPI) -> None:
    """Add /docs, its OAuth2 redirect and /redoc (create the app with docs_url=None and
    redoc_url=None), and the vendored files they load."""
    app.mount(VENDOR_URL, StaticFiles(directory=VENDOR), name="vendor")
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{SWAGGER_UI}/favicon-32x32.png"

    pages = {
        "/docs": get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=favicon,
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        ),
        OAUTH2_REDIRECT_URL: get_swagger_ui_oauth2_redirect_html(),
        "/redoc": get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{REDOC}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        ),
    }
    for path, page in pages.items():
        app.add_api_route(path, _page(bytes(page.body)), methods=["GET"], include_in_schema=False)


def _page(html: bytes) -> Callable[[], Awaitable[HTMLResponse]]:
    async def serve() -> HTMLResponse:
        return HTMLResponse(html)

    return serve
