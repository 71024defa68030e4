"""What every API command of the CLI shares: connection options and an SDK client.

API commands talk to a server over HTTP with the official ``llama-cloud`` SDK, exactly as a
user's own code would; they import nothing from the server side.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from llama_cloud import APIConnectionError, APIStatusError, LlamaCloud, LlamaCloudError

from indexchat.cli.output import Format, fail

DEFAULT_BASE_URL = "http://127.0.0.1:8000"

ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="LLAMA_CLOUD_API_KEY",
        help="API key (env LLAMA_CLOUD_API_KEY).",
        show_default=False,
    ),
]
BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar="LLAMA_CLOUD_BASE_URL",
        help=f"Server URL (env LLAMA_CLOUD_BASE_URL) [default: {DEFAULT_BASE_URL}].",
        show_default=False,
    ),
]
ProjectId = Annotated[
    str | None, typer.Option("--project-id", help="Project to work in [default: the key's].")
]
OrganizationId = Annotated[
    str | None, typer.Option("--organization-id", help="Organization of the project.")
]
FormatOption = Annotated[Format, typer.Option("--format", help="Output format.")]


@contextmanager
def client(api_key: str | None, base_url: str | None) -> Iterator[LlamaCloud]:
    """An SDK client; API failures print the server's ``detail`` and exit 1."""
    url = base_url or DEFAULT_BASE_URL
    if not api_key and not os.environ.get("LLAMA_PARSE_API_KEY"):
        fail(
            "no API key: pass --api-key or set LLAMA_CLOUD_API_KEY "
            "(create one with `indexchat keys create`)"
        )
    try:
        with LlamaCloud(api_key=api_key, base_url=url, max_retries=2) as sdk:
            yield sdk
    except LlamaCloudError as exc:
        fail(explain(exc, url))


def explain(exc: LlamaCloudError, url: str) -> str:
    """An SDK failure in a user's words: the server's ``detail``, or why it was not reached."""
    if isinstance(exc, APIStatusError):
        detail = exc.body.get("detail") if isinstance(exc.body, dict) else exc.body
        return f"{exc.status_code}: {describe(detail)}"
    if isinstance(exc, APIConnectionError):
        return f"cannot reach the server at {url} (is `indexchat serve` running?)"
    return str(exc)


def scope(project_id: str | None, organization_id: str | None) -> dict[str, str]:
    return {
        k: v for k, v in {"project_id": project_id, "organization_id": organization_id}.items() if v
    }


def describe(detail: Any) -> str:
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    return str(detail)
