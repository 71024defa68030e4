"""What every API command of the CLI shares: connection options and an SDK client.

API commands talk to a server over HTTP with the official ``llama-cloud`` SDK, exactly as a
user's own code would; they import nothing from the server side. The SDK is imported when a
command runs, not when the CLI starts (it takes over a second to import).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypedDict, TypeVar

import typer

from indexchat.cli.output import fail

if TYPE_CHECKING:
    from llama_cloud import LlamaCloud, LlamaCloudError

DEFAULT_BASE_URL = "http://127.0.0.1:8000"

F = TypeVar("F", bound=Callable[..., None])


class Scope(TypedDict, total=False):
    """The ``project_id`` / ``organization_id`` keywords of an SDK call (those given)."""

    project_id: str
    organization_id: str


ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar="LLAMA_CLOUD_API_KEY", help="API key.", show_default=False),
]
BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar="LLAMA_CLOUD_BASE_URL",
        help="Server URL.",
        show_default=DEFAULT_BASE_URL,
    ),
]
ProjectId = Annotated[
    str | None, typer.Option("--project-id", help="Project to work in.", show_default="the key's")
]
OrganizationId = Annotated[
    str | None,
    typer.Option("--organization-id", help="Organization of the project.", show_default=False),
]


@dataclass(frozen=True)
class Api:
    """Where an API command connects and which project it works in."""

    api_key: str | None = None
    base_url: str | None = None
    project_id: str | None = None
    organization_id: str | None = None

    @property
    def url(self) -> str:
        return self.base_url or DEFAULT_BASE_URL

    @property
    def scope(self) -> Scope:
        """The ``project_id`` / ``organization_id`` keywords for SDK calls (those given)."""
        scope = Scope()
        if self.project_id:
            scope["project_id"] = self.project_id
        if self.organization_id:
            scope["organization_id"] = self.organization_id
        return scope

    @contextmanager
    def client(self) -> Iterator[LlamaCloud]:
        """An SDK client; API failures print the server's ``detail`` and exit 1."""
        from llama_cloud import LlamaCloud, LlamaCloudError

        if not self.api_key and not os.environ.get("LLAMA_PARSE_API_KEY"):
            fail(
                "no API key: pass --api-key or set LLAMA_CLOUD_API_KEY "
                "(create one with `indexchat keys create`)"
            )
        try:
            with LlamaCloud(api_key=self.api_key, base_url=self.url, max_retries=2) as sdk:
                yield sdk
        except LlamaCloudError as exc:
            fail(explain(exc, self.url))


_API_PARAMETERS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
    for name, annotation in (
        ("project_id", ProjectId),
        ("organization_id", OrganizationId),
        ("api_key", ApiKey),
        ("base_url", BaseUrl),
    )
]


def api_command(func: F) -> F:
    """A command that talks to a server: its ``api: Api`` parameter becomes the connection
    options (--project-id, --organization-id, --api-key, --base-url), defined once here."""
    signature = inspect.signature(func, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "api"]

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> None:
        connection = {p.name: kwargs.pop(p.name, None) for p in _API_PARAMETERS}
        func(*args, api=Api(**connection), **kwargs)

    parameters = [*own, *_API_PARAMETERS]
    command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    return command  # type: ignore[return-value]


def explain(exc: LlamaCloudError, url: str) -> str:
    """An SDK failure in a user's words: the server's ``detail``, or why it was not reached."""
    from llama_cloud import APIConnectionError, APIStatusError

    if isinstance(exc, APIStatusError):
        detail = exc.body.get("detail") if isinstance(exc.body, dict) else exc.body
        return f"{exc.status_code}: {describe(detail)}"
    if isinstance(exc, APIConnectionError):
        return f"cannot reach the server at {url} (is `indexchat serve` running?)"
    return str(exc)


def describe(detail: Any) -> str:
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    return str(detail)


def index_option(help: str) -> Any:
    """The repeatable ``--index-id`` / ``--index`` option whose values ``resolve_indexes``
    takes."""
    return typer.Option("--index-id", "--index", help=help)


def resolve_indexes(sdk: LlamaCloud, wanted: list[str], scope: Scope) -> list[Any]:
    """The indexes named by id or name; all of the project's when none are named. A name that
    several indexes share is an error listing their ids."""
    known = list(sdk.indexes.list(**scope))
    if not wanted:
        return known
    found = []
    for name in wanted:
        matches = [i for i in known if i.id == name] or [i for i in known if i.name == name]
        if not matches:
            names = ", ".join(sorted(i.name for i in known)) or "none yet"
            fail(f"no index {name!r} in this project (indexes: {names})")
        if len(matches) > 1:
            ids = ", ".join(i.id for i in matches)
            fail(f"{len(matches)} indexes are named {name!r}; use one of their ids: {ids}")
        found.append(matches[0])
    return found


def resolve_index(sdk: LlamaCloud, wanted: str, scope: Scope) -> Any:
    """One index, by id or name."""
    return resolve_indexes(sdk, [wanted], scope)[0]
