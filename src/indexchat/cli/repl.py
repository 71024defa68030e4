"""``indexchat chat``: an interactive chat over your indexes, one session at a time."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from indexchat.cli.output import console, errors
from indexchat.cli.sdk import Api, Scope, api_command, explain, resolve_indexes
from indexchat.cli.turns import TurnPrinter, stream_turn

if TYPE_CHECKING:
    from llama_cloud import LlamaCloud

PROMPT = "you> "
RECENT_SESSIONS = 10
# History shown on /open: the last few turns, each answer cut short.
HISTORY_TURNS = 5
HISTORY_ANSWER_CHARS = 300
HELP = """\
Type a question; follow-ups stay in the same session. Commands:
  /sessions             recent sessions (numbered, for /open)
  /open ID|NUMBER       continue a session and show its last turns
  /new                  start a new session over the same indexes
  /export [md|json]     print this session's transcript
  /help                 this help
  /quit                 leave (or Ctrl-D)"""


class Repl:
    """The chat loop's state: the current session (created with the first question) and the
    indexes new sessions are bound to."""

    def __init__(self, sdk: LlamaCloud, index_ids: list[str], project: Scope) -> None:
        self.sdk = sdk
        self.index_ids = index_ids
        self.project = project
        self.session_id: str | None = None
        self.listed: list[str] = []  # ids of the last /sessions, so `/open 2` works
        self.commands: dict[str, Callable[[list[str]], bool]] = {
            "/sessions": self.sessions,
            "/open": self.open,
            "/new": self.new,
            "/export": self.export,
            "/help": self.help,
            "/quit": self.quit,
            "/exit": self.quit,
        }

    def run(self, url: str) -> None:
        from llama_cloud import LlamaCloudError

        # Line editing and history for input(), when a person is typing.
        if sys.stdin.isatty():
            import readline  # noqa: F401
        while True:
            try:
                line = console.input(PROMPT).strip()
            except (EOFError, KeyboardInterrupt):
                console.print()
                return
            if not sys.stdin.isatty():  # piped input is not echoed: show what was asked
                console.print(Text(line), soft_wrap=True)
            if not line:
                continue
            try:
                if not self.dispatch(line):
                    return
            except LlamaCloudError as exc:
                errors.print(f"[bold red]Error:[/] {escape(explain(exc, url))}", soft_wrap=True)
            except KeyboardInterrupt:
                console.print()
                errors.print("[yellow]Cancelled.[/]")

    def dispatch(self, line: str) -> bool:
        """Run one line; False when it ends the chat."""
        if not line.startswith("/"):
            self.ask(line)
            return True
        name, *args = line.split()
        command = self.commands.get(name.lower())
        if command is None:
            errors.print(f"unknown command {name}; /help lists them", markup=False, highlight=False)
            return True
        return command(args)

    def ask(self, prompt: str) -> None:
        if self.session_id is None:
            created = self.sdk.chat.create(index_ids=self.index_ids, **self.project)
            self.session_id = created.session_id
            console.print(Text(f"session {self.session_id}", style="dim"), soft_wrap=True)
        stop = stream_turn(
            self.sdk,
            self.session_id,
            index_ids=self.index_ids,
            prompt=prompt,
            show=TurnPrinter(),
            project=self.project,
        )
        if stop is None:
            errors.print("[bold red]Error:[/] the stream ended before the turn finished")

    def sessions(self, args: list[str]) -> bool:
        page = self.sdk.chat.list(page_size=RECENT_SESSIONS, **self.project)
        self.listed = [s.session_id for s in page.items]
        if not page.items:
            console.print("No sessions yet.")
        for number, s in enumerate(page.items, 1):
            mark = "*" if s.session_id == self.session_id else " "
            updated = str(s.last_updated_at)[:16].replace("T", " ")
            title = s.generated_title or "(no messages yet)"
            line = Text.assemble(f"{number:>2}{mark} {s.session_id}  ", (updated, "dim"), "  ")
            line.append(title)
            console.print(line, no_wrap=True, overflow="ellipsis", highlight=False)
        return True

    def open(self, args: list[str]) -> bool:
        if len(args) != 1:
            errors.print("usage: /open SESSION_ID (or a number from /sessions)", markup=False)
            return True
        wanted = args[0]
        if wanted.isdigit() and 0 < int(wanted) <= len(self.listed):
            wanted = self.listed[int(wanted) - 1]
        chat = self.sdk.chat.retrieve(wanted, **self.project)
        self.session_id = chat.session_id
        if chat.index_ids:  # a bound session answers over its own indexes only
            self.index_ids = list(chat.index_ids)
        console.print(
            Text(f"session {chat.session_id}: {chat.generated_title or '(no messages yet)'}"),
            style="bold",
            soft_wrap=True,
        )
        show_history([e.to_dict() for e in chat.events])
        return True

    def new(self, args: list[str]) -> bool:
        self.session_id = None
        console.print(Text("New session: it starts with your next question.", style="dim"))
        return True

    def export(self, args: list[str]) -> bool:
        format = args[0] if args else "md"
        if format not in ("md", "json") or self.session_id is None:
            errors.print("usage: /export [md|json], once the session has a question", markup=False)
            return True
        import httpx

        response = self.sdk.get(
            f"/api/v1/chat/{self.session_id}/export",
            cast_to=httpx.Response,
            options={"params": {"format": format, **self.project}},
        )
        text = response.text if format == "md" else json.dumps(response.json(), indent=2)
        console.out(text, highlight=False)
        return True

    def help(self, args: list[str]) -> bool:
        console.print(Text(HELP))
        return True

    def quit(self, args: list[str]) -> bool:
        return False


def show_history(events: Sequence[dict[str, Any]]) -> None:
    """The last turns of a session, briefly: each question and the start of its answer."""
    turns: list[list[str]] = []
    for event in events:
        if event["type"] == "user_input":
            turns.append([event["content"], ""])
        elif event["type"] == "text" and turns:
            turns[-1][1] += event["content"]
        elif event["type"] == "stop" and turns and event.get("is_error"):
            turns[-1][1] += f" [error: {event.get('error')}]"
    if len(turns) > HISTORY_TURNS:
        console.print(Text(f"… {len(turns) - HISTORY_TURNS} earlier turns", style="dim"))
    for question, answer in turns[-HISTORY_TURNS:]:
        console.print(Text(PROMPT + question), soft_wrap=True)
        if len(answer) > HISTORY_ANSWER_CHARS:
            answer = answer[:HISTORY_ANSWER_CHARS] + "…"
        console.print(Text(answer.strip() or "(no answer)", style="dim"), highlight=False)


@api_command
def interactive(
    ctx: typer.Context,
    api: Api,
    index: Annotated[
        list[str] | None,
        typer.Option(
            "--index", help="Chat over this index, by name or id (repeatable).", show_default="all"
        ),
    ] = None,
    session_id: Annotated[
        str | None, typer.Option("--session-id", help="Continue this session.")
    ] = None,
) -> None:
    """Chat sessions over your indexes. With no command: chat interactively (/help inside)."""
    if ctx.invoked_subcommand is not None:
        return
    with api.client() as sdk:
        chosen = resolve_indexes(sdk, index or [], api.scope)
        repl = Repl(sdk, [i.id for i in chosen], api.scope)
        if chosen:
            names = ", ".join(f"{i.name} ({i.id})" for i in chosen)
            console.print(
                Text(f"Chatting over {names}. /help for commands.", style="dim"), soft_wrap=True
            )
        else:
            console.print(
                "[yellow]This project has no indexes yet, so answers have nothing to search "
                "(add documents with `indexchat ingest`).[/]"
            )
        if session_id is not None:
            repl.open([session_id])
        repl.run(api.url)
