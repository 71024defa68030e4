"""``indexchat worker``: run background jobs (index syncs) outside the server."""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from indexchat.cli.output import console, fail
from indexchat.cli.server import DatabaseUrl, DataDir, load_settings, open_or_fail

if TYPE_CHECKING:
    from indexchat.worker import Worker

log = logging.getLogger("indexchat.worker")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def register(app: typer.Typer) -> None:
    app.command(name="worker")(worker)
    app.command(name="collect-blobs")(collect_blobs)


def worker(
    exit_when_idle: Annotated[
        bool,
        typer.Option(
            "--exit-when-idle", help="Exit once no job is left to run instead of waiting for more."
        ),
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run queued jobs (index syncs) in the foreground, on the same database as the server.

    Start several on PostgreSQL to share the work. Ctrl-C or SIGTERM hands back the job in hand.
    """
    from indexchat.runtime import Runtime
    from indexchat.worker import Worker

    settings = load_settings(data_dir, database_url)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        runtime = Runtime.open(settings)
    except Exception as exc:  # noqa: BLE001 - any driver failure is a user-facing message here
        fail(f"cannot open database {settings.resolved_database_url()!r}: {exc}")
    job_worker = Worker(runtime)
    _stop_on_signals(job_worker)
    where = "the configured database" if settings.database_url else str(settings.data_dir)
    console.print(
        f"[bold]indexchat worker[/] {job_worker.worker_id} waiting for jobs (data: {where})",
        highlight=False,
        soft_wrap=True,
    )
    try:
        job_worker.run(until_idle=exit_when_idle)
    finally:
        runtime.close()
    console.print("indexchat worker stopped", highlight=False)


def _stop_on_signals(job_worker: Worker) -> None:
    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping; a job in hand goes back to the queue", signal.Signals(signum).name)
        job_worker.stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def collect_blobs(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Remove stored bytes that no row names and that are older than INDEXCHAT_BLOB_GRACE_SECONDS.

    Workers do it on their own every INDEXCHAT_BLOB_COLLECT_SECONDS; safe while they run.
    """
    import os
    import socket

    from indexchat.services.blob_collection import collect
    from indexchat.storage.blobs import LocalBlobStore

    settings = load_settings(data_dir, database_url)
    db = open_or_fail(settings)
    try:
        done = collect(
            db,
            LocalBlobStore(settings.data_dir / "blobs"),
            grace_seconds=settings.blob_grace_seconds,
            holder=f"{socket.gethostname()}:{os.getpid()}:cli"[:64],
        )
    finally:
        db.dispose()
    if done is None:
        fail("another process is collecting blobs now; try again when it is done")
    console.print(
        f"Removed {done.removed} unnamed blobs of {done.examined} older than "
        f"{settings.blob_grace_seconds:g} s, and {done.partial_writes} unfinished writes.",
        highlight=False,
    )
