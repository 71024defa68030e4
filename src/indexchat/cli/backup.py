"""``indexchat backup`` / ``indexchat restore``: the embedded database and its blobs, copied."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from indexchat.cli.output import console, fail
from indexchat.cli.server import DatabaseUrl, DataDir, load_settings

if TYPE_CHECKING:
    from indexchat.services.backup import BackupSummary

STAGES = {"database": "Database", "blobs": "Files"}


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)


def backup(
    path: Annotated[Path, typer.Argument(help="A new (or empty) folder to write the backup to.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Back up the database and uploaded files of a data dir; safe while the server runs.

    The backup is one consistent moment of the database, with every file it refers to.
    On PostgreSQL use pg_dump and copy the blobs folder instead (see the README).
    """
    from indexchat.errors import IndexchatError
    from indexchat.services import backup as service

    settings = load_settings(data_dir, database_url)
    try:
        with _progress() as report:
            summary = service.backup(
                settings.resolved_database_url(), settings.data_dir / "blobs", path, report
            )
    except IndexchatError as exc:
        fail(exc.message)
    _print_summary("Backed up", summary, path)


def restore(
    path: Annotated[Path, typer.Argument(help="A folder written by indexchat backup.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace the database and files the data dir already has."),
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Restore a backup into a data dir (stop any server using it first).

    A data dir that already holds a database or files is left alone unless --force is given.
    """
    from indexchat.errors import IndexchatError
    from indexchat.services import backup as service

    settings = load_settings(data_dir, database_url)
    try:
        with _progress() as report:
            summary = service.restore(
                path,
                settings.resolved_database_url(),
                settings.data_dir / "blobs",
                force=force,
                progress=report,
            )
    except IndexchatError as exc:
        fail(exc.message)
    _print_summary(
        f"Restored the backup of {summary.created_at:%Y-%m-%d %H:%M:%S} UTC",
        summary,
        settings.data_dir,
    )


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A bar per stage, shown while the copy runs (only on a terminal)."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[amount]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bars:

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(STAGES[stage], total=total, amount="")
            bars.update(
                tasks[stage], completed=done, total=total, amount=_amount(stage, done, total)
            )

        yield report


def _amount(stage: str, done: int, total: int) -> str:
    if stage == "database":
        return f"{done}/{total} pages"
    return f"{done / 1e6:.1f}/{total / 1e6:.1f} MB"


def _print_summary(what: str, summary: BackupSummary, where: Path) -> None:
    megabytes = (summary.database_bytes + summary.blob_bytes) / 1e6
    console.print(
        f"{what}: database {summary.database_bytes / 1e6:.1f} MB and {summary.blobs} files "
        f"({summary.blob_bytes / 1e6:.1f} MB), {megabytes:.1f} MB in all, in {where}",
        highlight=False,
        soft_wrap=True,
    )
