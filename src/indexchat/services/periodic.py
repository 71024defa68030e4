"""A task repeated on its own thread until closed: the blob collector and the sync scheduler."""

from __future__ import annotations

import logging
import threading


class Periodic:
    """Runs ``pass_once`` every ``interval`` seconds (the first one an interval after ``start``)
    until ``close``. A pass that raises is logged as ``failure`` and the next one tries again."""

    def __init__(self, thread_name: str, interval: float, log: logging.Logger, failure: str):
        self._interval, self._log, self._failure = interval, log, failure
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def stopping(self) -> bool:
        return self._stop.is_set()

    def pass_once(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.pass_once()
            except Exception:  # the next pass tries again
                self._log.exception(self._failure)
