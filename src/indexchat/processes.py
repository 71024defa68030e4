"""Which server process runs a chat turn, and whether a process named that way still lives.

A process id only means something where it was taken: on the same machine, in the same pid
namespace, since the same boot. There, a pid that is gone (or a zombie), or a pid now held by a
process that started at another time, proves the process dead at once. Anywhere else (another
machine, another container) nothing local can tell, and the turn's heartbeat decides.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessId:
    """A process as recorded on the turns it runs."""

    host: str  # where ``pid`` names this process: host name, boot, pid namespace
    pid: int
    started: int | None  # start time in clock ticks after boot (Linux); tells a reused pid apart

    @classmethod
    def of_this_process(cls) -> ProcessId:
        pid = os.getpid()
        return cls(host=_host(), pid=pid, started=_start_ticks(pid))

    def is_alive(self, other: ProcessId) -> bool | None:
        """Whether ``other`` still runs, as far as this process can tell: None when it cannot
        (``other`` ran elsewhere, or is this very process, which may hold several servers)."""
        if other.host != self.host:
            return None
        if other.pid == self.pid:  # this process, or a dead one whose pid it was given
            return None if other.started == self.started else False
        try:
            os.kill(other.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # it exists, under another user
            pass
        if other.started is None:
            return None
        stat = _stat(other.pid)
        if stat is None:
            return None if not _PROC.is_dir() else False
        state, started = stat
        return state not in ("Z", "X") and started == other.started


def _host() -> str:
    """The host name, plus a digest of the boot and the pid namespace where Linux has them: two
    containers (or two boots) with one host name must not read each other's pids."""
    where = ""
    for source in (_PROC / "sys/kernel/random/boot_id", _PROC / "self/ns/pid"):
        try:
            where += source.read_text() if source.is_file() else os.readlink(source)
        except OSError:
            pass
    name = socket.gethostname()[:200]
    return f"{name} {hashlib.sha256(where.encode()).hexdigest()[:12]}" if where else name


def _start_ticks(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[1] if stat else None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) from ``/proc/<pid>/stat``; None without /proc or once it is gone."""
    try:
        line = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    fields = line[line.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])
