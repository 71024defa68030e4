"""Group commit of running turns' events: one transaction stores what many turns have pending,
and each event goes back to its turn (and so to its clients) only once it is committed.

Every turn of this process hands its stored events (not deltas) to one ``EventWriter``. A single
committer takes everything queued, writes it in one transaction on its own thread, and resolves
each write with its outcome. Writes queued while a batch commits form the next batch, so the
batch size follows the load: one event alone when the server is idle, dozens under many
streams. A batch that fails as a whole is retried one write per transaction, so that only the
write at fault fails (its turn then ends with an error) and the others still commit.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from indexchat.events import Event, Stop
from indexchat.services import turns
from indexchat.storage.db import Database

log = logging.getLogger("indexchat.turns")


class WriterClosed(Exception):
    """The server is shutting down and stores no more events."""


@dataclass
class _Pending:
    write: turns.EventWrite
    done: asyncio.Future[bool] = field(repr=False)


class EventWriter:
    """Stores running turns' events in shared transactions; one per server process."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._closing = False
        # One thread: on SQLite there is one writer anyway, and a thread of its own never waits
        # behind requests for a slot in the shared pool.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-writer")
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # committed transactions, for tests and logs

    async def record(self, plan: turns.TurnPlan, seq: int, event: Event) -> bool:
        """Store one event of a running turn; True when a cancel has been asked for. Raises
        ``turns.TurnLost`` when the session was deleted or its turn taken over."""
        return await self._submit(turns.EventWrite(plan, seq, event))

    async def finish(self, plan: turns.TurnPlan, seq: int, stop: Stop) -> None:
        """Store the turn's stop event with the run's metadata, freeing the session."""
        await self._submit(turns.EventWrite(plan, seq, stop))

    async def close(self) -> None:
        """Commit what is queued, then refuse new writes."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._thread.shutdown(wait=True)

    async def _submit(self, write: turns.EventWrite) -> bool:
        if self._closing:
            raise WriterClosed("the server is shutting down")
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(write, done))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._commit_forever(), name="event writer")
        # Shielded: a turn cancelled while its event commits stops waiting, but the batch it is
        # part of still resolves every other write.
        return await asyncio.shield(done)

    async def _commit_forever(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    # Only cleared with nothing queued; writes queued later set it again.
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch, self._queue = self._queue, []
                try:
                    outcomes = await loop.run_in_executor(
                        self._thread, self._commit, [p.write for p in batch]
                    )
                except Exception as exc:  # a bug: fail the batch, keep committing the next
                    log.exception("the event writer failed")
                    outcomes = [exc] * len(batch)
                except BaseException as exc:  # cancelled: no write may hang
                    _resolve(batch, [exc] * len(batch))
                    raise
                _resolve(batch, outcomes)
        finally:
            pending, self._queue = self._queue, []
            _resolve(pending, [WriterClosed("the event writer stopped")] * len(pending))

    def _commit(self, writes: list[turns.EventWrite]) -> list[bool | BaseException]:
        if len(writes) == 1:
            return [self._commit_one(writes[0])]
        try:
            with self._db.write() as tx:
                outcomes: list[bool | BaseException] = [*turns.record_events(tx, writes)]
            self.batches += 1
            return outcomes
        except Exception:
            log.exception("a batch of %d chat events failed; storing them one by one", len(writes))
        return [self._commit_one(write) for write in writes]

    def _commit_one(self, write: turns.EventWrite) -> bool | BaseException:
        try:
            with self._db.write() as tx:
                (outcome,) = turns.record_events(tx, [write])
            self.batches += 1
            return outcome
        except Exception as exc:
            return exc


def _resolve(batch: list[_Pending], outcomes: list[bool | BaseException]) -> None:
    for pending, outcome in zip(batch, outcomes, strict=True):
        if pending.done.done():
            continue
        if isinstance(outcome, BaseException):
            pending.done.set_exception(outcome)
        else:
            pending.done.set_result(outcome)
