"""Parsing in a child process with enforced limits: memory (RLIMIT_AS) and wall-clock time.

A hostile file can make a parser run for minutes or take gigabytes, and no check on the input
can rule that out for every format. So each file is parsed in a separate process that the
server kills when it overruns; the overrun becomes a ParseError for that file alone. The child
is a fresh interpreter (``python -m indexchat.ingest.sandbox``: the server holds threads and
native libraries that ``fork`` would copy in a broken state, and multiprocessing's ``spawn``
would re-run the caller's main module) talking over a socket pair. It is kept between files, so
a sync pays the start-up (~1 s of imports) once, not per file. A child killed on a limit, or
grown large, is replaced on the next file.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from indexchat.ingest.parsers import DEFAULT_LIMITS, ParsedDocument, ParseError, ParseLimits

log = logging.getLogger("indexchat.ingest")

TIME_LIMIT = "file exceeds the parse time limit ({seconds:g} s)"
MEMORY_LIMIT = "file exceeds the parse memory limit ({megabytes} MB)"
CRASHED = "the parser crashed on this file"

_GIB = 1024**3
# How often a waiting parse looks whether it should stop (cancel, shutdown).
_POLL_SECONDS = 0.25
_START_SECONDS = 60.0  # imports only; not counted against a file's time limit


@dataclass(frozen=True)
class SandboxLimits:
    """What one file's parse may use before it is killed."""

    timeout_seconds: float = 120.0
    memory_bytes: int = 2 * _GIB
    parse: ParseLimits = DEFAULT_LIMITS


@dataclass(frozen=True)
class Parsed:
    """A file's text, and its page screenshots when they were asked for."""

    document: ParsedDocument
    screenshots: list[tuple[int, bytes]]


class ParseOverrun(ParseError):
    """The parse was stopped on a limit (time, memory) or the parser died: the file, not the
    request, is at fault, so parsing it again would end the same way."""


class ParseInterrupted(Exception):
    """The caller asked to stop while a file was being parsed; the parse was killed."""


class ParseSandbox:
    """One warm child process that parses files one at a time. Not thread-safe: one per
    worker thread."""

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def parse(
        self,
        data: bytes,
        filename: str,
        *,
        screenshots: bool = False,
        interrupted: Callable[[], bool] = lambda: False,
    ) -> Parsed:
        """Parse one file in the child; ParseError when it cannot be read or overruns a limit,
        ParseInterrupted (the child killed) as soon as ``interrupted()`` turns true."""
        conn = self._ready(interrupted)
        try:
            conn.send((data, filename, screenshots, self.limits.parse))
        except (BrokenPipeError, ConnectionError, EOFError):
            self.close()
            raise ParseOverrun(CRASHED) from None
        reply = self._wait(conn, interrupted)
        status, value, rss = reply
        if rss > self.limits.memory_bytes // 4:  # Python keeps what it once took: start afresh
            self.close()
        if status == "ok":
            return value
        if status == "memory":
            raise ParseOverrun(self._memory_reason())
        raise ParseError(value)

    def close(self) -> None:
        """Stop the child (killing a parse in progress)."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            process.kill()
            process.wait(5)

    def __enter__(self) -> ParseSandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _ready(self, interrupted: Callable[[], bool]) -> Connection:
        if self._conn is not None and self._alive():
            return self._conn
        self.close()
        ours, theirs = socket.socketpair()
        with ours, theirs:
            command = [sys.executable, "-m", __name__, str(theirs.fileno())]
            command.append(str(self.limits.memory_bytes))
            self._process = subprocess.Popen(command, pass_fds=[theirs.fileno()])
            self._conn = Connection(ours.detach())
        deadline = time.monotonic() + _START_SECONDS
        while not self._conn.poll(_POLL_SECONDS):
            if interrupted():
                self.close()
                raise ParseInterrupted
            if not self._alive() or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the parser process did not start")
        self._conn.recv()  # "ready"
        return self._conn

    def _wait(self, conn: Connection, interrupted: Callable[[], bool]) -> Any:
        deadline = time.monotonic() + self.limits.timeout_seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise ParseOverrun(TIME_LIMIT.format(seconds=self.limits.timeout_seconds))
            try:
                if conn.poll(min(left, _POLL_SECONDS)):
                    return conn.recv()
            except (EOFError, ConnectionError):  # the child died mid-parse
                code = self._process.poll() if self._process is not None else None
                self.close()
                log.warning("the parser process died (exit code %s)", code)
                raise ParseOverrun(CRASHED) from None
            if interrupted():
                self.close()
                raise ParseInterrupted

    def _memory_reason(self) -> str:
        return MEMORY_LIMIT.format(megabytes=self.limits.memory_bytes // (1024 * 1024))


# ---- the child ------------------------------------------------------------------------------


def _serve(fd: int, memory_bytes: int) -> None:
    """The child's loop: limit its own memory, import the parsers once, parse what it is sent."""
    import resource

    conn = Connection(fd)
    _die_with_parent()
    # One thread per numeric library: each reserves address space the limit would count.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    import markitdown.converters  # noqa: F401 - slow to import: done once, before any file

    conn.send("ready")
    while True:
        try:
            data, filename, screenshots, limits = conn.recv()
        except EOFError:  # the server closed the pipe
            return
        reply = _parse_one(data, filename, screenshots, limits)
        try:
            conn.send(reply)
            continue
        except MemoryError:  # the parse fitted, its pickled reply did not: same limit
            pass
        # Outside the handler, so its traceback (which holds the reply) is freed first.
        del reply
        conn.send(("memory", None, _rss_bytes()))


def _die_with_parent() -> None:
    """Linux: end this process when the server's thread that started it ends (even by SIGKILL),
    rather than finish a long parse nobody waits for."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed socket ends it after the parse
        pass


def _parse_one(data: bytes, filename: str, screenshots: bool, limits: ParseLimits) -> Any:
    from indexchat.ingest.pages import render_pdf_pages
    from indexchat.ingest.parsers import parse

    try:
        document = parse(data, filename, limits=limits)
        shots: list[tuple[int, bytes]] = []
        if screenshots and document.kind == "pdf":
            try:
                shots = list(render_pdf_pages(data))
            except MemoryError:
                raise
            except Exception:  # screenshots are a bonus; the text is already searchable
                log.exception("rendering %s failed", filename)
        reply: tuple[str, Any] = ("ok", Parsed(document, shots))
    except MemoryError:
        reply = ("memory", None)
    except ParseError as exc:
        reply = ("error", exc.reason)
    except Exception as exc:  # a parser bug must not end the child
        log.exception("parsing %s failed", filename)
        reply = ("error", f"could not parse the file ({type(exc).__name__})")
    return (*reply, _rss_bytes())


def _rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    # Through the module's own name, so what the child pickles unpickles in the server.
    from indexchat.ingest import sandbox

    sandbox._serve(int(sys.argv[1]), int(sys.argv[2]))
