"""One chat turn from the command line: stream it through the SDK and print it as it comes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from indexchat.cli.output import console, errors, fail
from indexchat.cli.sdk import Api, Scope, api_command, index_option, resolve_indexes

if TYPE_CHECKING:
    from llama_cloud import LlamaCloud

Event = dict[str, Any]

# Tool arguments are shown on one line; a long one (a regex, a read window) is cut here.
ARGUMENTS_CHARS = 160
# Ctrl-C: the conventional exit status of a program stopped by SIGINT.
INTERRUPTED = 130


class TurnFormat(StrEnum):
    text = "text"
    json = "json"


def stream_turn(
    sdk: LlamaCloud,
    session_id: str,
    *,
    index_ids: Sequence[str],
    prompt: str,
    show: Callable[[Event], None],
    require_all_indexes: bool = False,
    project: Scope | None = None,
) -> Event | None:
    """Run one turn, handing each event to ``show`` as it arrives; returns the ``stop`` event
    (None if the stream ended without one). Leaving early, Ctrl-C included, closes the stream,
    and the server then cancels the turn."""
    stop = None
    with sdk.chat.with_streaming_response.stream(
        session_id,
        index_ids=list(index_ids),
        prompt=prompt,
        require_all_indexes=require_all_indexes,
        **(project or {}),
    ) as response:
        for line in response.iter_lines():
            if not line.startswith("data:"):  # `event:` names repeat the type; `:` keep-alives
                continue
            event = json.loads(line[len("data:") :])
            show(event)
            if event["type"] == "stop":
                stop = event
    return stop


def print_json_line(event: Event) -> None:
    typer.echo(json.dumps(event, ensure_ascii=False))


class TurnPrinter:
    """Prints a turn for people: the answer as it streams, the agent's thinking and tool calls
    dimmed, then the sources it retrieved and what the turn cost."""

    def __init__(self) -> None:
        self.hits: list[Event] = []
        self.answer = ""
        self._streamed = {"thinking": False, "text": False}
        self._at_line_start = True

    def __call__(self, event: Event) -> None:
        kind = event["type"]
        if kind in ("thinking_delta", "text_delta"):
            block = kind.removesuffix("_delta")
            self._write(event["content"], "dim italic" if block == "thinking" else "")
            self._streamed[block] = True
        elif kind in ("thinking", "text"):
            if not self._streamed[kind]:  # a server may send the block without its deltas
                self._write(event["content"], "dim italic" if kind == "thinking" else "")
            self._streamed[kind] = False
            if kind == "text":
                self.answer += event["content"]
            self._end_line()
        elif kind == "tool_call":
            arguments = json.dumps(event.get("arguments"), ensure_ascii=False)
            if len(arguments) > ARGUMENTS_CHARS:
                arguments = arguments[:ARGUMENTS_CHARS] + "…"
            self._note(f"→ {event['name']} {arguments}")
        elif kind == "tool_result":
            self._note(f"← {event['name']}: {self._describe_result(event)}")
        elif kind == "stop":
            self._finish(event)

    def _describe_result(self, event: Event) -> str:
        result = event.get("result")
        if event["name"] == "retrieve" and isinstance(result, list):
            self.hits += [hit for hit in result if isinstance(hit, dict)]
            described = _count(len(result), "passage")
        elif isinstance(result, list):
            described = _count(len(result), "result")
        elif isinstance(result, dict) and isinstance(result.get("matches"), list):
            described = _count(len(result["matches"]), "match", "matches")
        elif isinstance(result, dict) and isinstance(result.get("content"), str):
            described = f"{len(result['content']):,} characters of {result.get('file_name')}"
        else:
            described = "done"
        if event.get("image_attachment"):
            described += f" (page screenshot {event['image_attachment']['attachment_name']})"
        return described

    def _finish(self, stop: Event) -> None:
        self._end_line()
        if stop.get("is_error"):
            errors.print(Text(f"Error: {stop.get('error')}", style="bold red"), soft_wrap=True)
        for line in format_sources(self.hits, self.answer):
            console.print(Text(line), soft_wrap=True)
        if stop.get("skipped_index_ids"):
            skipped = ", ".join(stop["skipped_index_ids"])
            console.print(
                Text(f"skipped indexes (unknown or never synced): {skipped}", "yellow"),
                soft_wrap=True,
            )
        console.print(Text(format_usage(stop.get("usage") or {}), style="dim"), soft_wrap=True)

    def _write(self, content: str, style: str) -> None:
        if content:
            console.out(content, style=style or None, end="", highlight=False)
            self._at_line_start = content.endswith("\n")

    def _end_line(self) -> None:
        if not self._at_line_start:
            console.out("")
            self._at_line_start = True

    def _note(self, line: str) -> None:
        self._end_line()
        console.print(Text(line, style="dim"), soft_wrap=True)


def format_sources(hits: Sequence[Event], answer: str) -> list[str]:
    """The files the retrieved passages came from, with their pages, best first. When the
    answer names some of them, only those it cites."""
    pages: dict[str, set[int]] = {}
    for hit in hits:
        found = pages.setdefault(str(hit.get("file_name")), set())
        start, end = hit.get("page_start"), hit.get("page_end")
        if isinstance(start, int):
            found.update(range(start, (end if isinstance(end, int) else start) + 1))
    cited = [name for name in pages if name in answer]
    shown = cited or list(pages)
    if not shown:
        return []
    lines = ["", "Sources:"]
    for number, name in enumerate(shown, 1):
        where = _page_ranges(sorted(pages[name]))
        lines.append(f"  [{number}] {name}" + (f", {where}" if where else ""))
    return lines


def format_usage(usage: Event) -> str:
    """What the turn ran and took: model calls and tokens (none with the extractive answerer,
    which runs no model), then the time."""
    calls = int(usage.get("turns") or 0)
    parts = [_count(calls, "model call") if calls else "no model calls"]
    if usage.get("total_input_tokens") is not None:
        parts.append(
            f"{usage['total_input_tokens']:,} input / "
            f"{usage.get('total_output_tokens') or 0:,} output tokens"
        )
    parts.append(f"{(usage.get('duration_ms') or 0) / 1000:.1f} s")
    return " · ".join(parts)


def _page_ranges(pages: list[int]) -> str:
    runs: list[list[int]] = []
    for page in pages:
        if runs and page == runs[-1][1] + 1:
            runs[-1][1] = page
        else:
            runs.append([page, page])
    text = ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in runs)
    return "" if not runs else ("p. " if pages[0] == pages[-1] else "pp. ") + text


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


@api_command
def stream(
    session_id: Annotated[str, typer.Option("--session-id", help="The chat session id (ses-…).")],
    prompt: Annotated[str, typer.Option("--prompt", help="Your question or message.")],
    api: Api,
    index_id: Annotated[
        list[str] | None,
        index_option(
            "An index to search, by id or name (repeatable); a bound session needs the "
            "same set or none."
        ),
    ] = None,
    require_all_indexes: Annotated[
        bool,
        typer.Option(
            "--require-all-indexes", help="Fail the turn if an index is unknown or never synced."
        ),
    ] = False,
    format: Annotated[
        TurnFormat,
        typer.Option("--format", help="text: for people; json: every event as a JSON line."),
    ] = TurnFormat.text,
) -> None:
    """Ask one question in a session and stream the answer, with its tool calls and sources.
    Exits 1 if the turn fails, 130 on Ctrl-C (which cancels the turn)."""
    show = print_json_line if format is TurnFormat.json else TurnPrinter()
    with api.client() as sdk:
        # Ids are sent as given (an unknown one is the server's to skip or refuse); a name is
        # looked up.
        index_ids = [
            wanted if wanted.startswith("idx-") else resolve_indexes(sdk, [wanted], api.scope)[0].id
            for wanted in index_id or []
        ]
        try:
            stop = stream_turn(
                sdk,
                session_id,
                index_ids=index_ids,
                prompt=prompt,
                show=show,
                require_all_indexes=require_all_indexes,
                project=api.scope,
            )
        except KeyboardInterrupt:
            errors.print("\n[yellow]Cancelled.[/]")
            raise typer.Exit(INTERRUPTED) from None
    if stop is None:
        fail("the stream ended before the turn finished")
    if stop["is_error"]:
        raise typer.Exit(1)
