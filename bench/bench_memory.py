"""Peak memory of a server receiving and syncing hostile files, one at a time.

    python bench/bench_memory.py [--backend sqlite|postgres] [--upload-mb 300]

Starts `indexchat serve` (upload limit raised above --upload-mb, so the large upload is taken
in, not refused on its Content-Length) and, for each case, uploads the file with a small
valid note beside it into a fresh index, syncs it and reads the outcome of each file. A
sampler reads the resident set (VmRSS in /proc) of the server process and of its parser
child every 5 ms; each case reports the peaks during its upload and sync, next to the
server's RSS before the first case (the baseline: started, model loaded by a small sync).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from common import ROOT, create_key, free_port, serve, start_postgres, stop

sys.path.insert(0, str(ROOT / "tests"))

from hostile_files import MB, deep_html, docx_bomb, many_page_pdf, xlsx_bomb  # noqa: E402

NOTE = b"The zq0001x marker sits in a small note beside the hostile file."


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """Every descendant (the parser processes are started by the worker's threads)."""
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class Sampler:
    """Peak RSS of the server and of its biggest child since the last ``reset``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.server = self.child = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def reset(self) -> None:
        self.server = self.child = 0

    def _run(self) -> None:
        known: list[int] = []
        for tick in itertools.count():
            if self._stop.wait(0.005):
                return
            self.server = max(self.server, rss_bytes(self.pid))
            if tick % 20 == 0:  # listing the processes is slower than reading one's RSS
                known = children(self.pid)
            for child in known:
                self.child = max(self.child, rss_bytes(child))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def write_large_text(path: Path, size: int) -> None:
    line = b"A line of a very large plain text file, with words to index in it.\n"
    block = line * (MB // len(line))
    with path.open("wb") as out:
        while out.tell() < size:
            out.write(block)


class Api:
    def __init__(self, base_url: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=600
        )

    def index_with(self, name: str, path: Path) -> tuple[str, int, str]:
        """A new index over a directory holding ``path`` and the note: (index id, status of
        the upload, its error body when refused)."""
        directory = self.http.post("/api/v1/beta/directories", json={"name": name})
        directory_id = directory.raise_for_status().json()["id"]
        upload = f"/api/v1/beta/directories/{directory_id}/files/upload"
        with path.open("rb") as body:
            answer = self.http.post(upload, files={"upload_file": (path.name, body)})
        self.http.post(upload, files={"upload_file": ("note.txt", NOTE)}).raise_for_status()
        index = self.http.post(
            "/api/v1/indexes", json={"name": name, "source_directory_id": directory_id}
        )
        refused = "" if answer.is_success else answer.json()["detail"]
        return index.raise_for_status().json()["id"], answer.status_code, refused

    def sync(self, index_id: str) -> dict[str, object]:
        self.http.post(f"/api/v1/indexes/{index_id}/sync").raise_for_status()
        deadline = time.monotonic() + 600
        while True:
            index = self.http.get(
                f"/api/v1/indexes/{index_id}", params={"expand": "sync_in_progress"}
            ).json()
            if not index.get("sync_in_progress"):
                return dict(index["metadata"])
            if time.monotonic() > deadline:
                raise RuntimeError("sync did not finish")
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--upload-mb", type=int, default=300)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="indexchat-memory-"))
    env = {
        **os.environ,
        "INDEXCHAT_DATA_DIR": str(work / "data"),
        "INDEXCHAT_MAX_UPLOAD_BYTES": str((args.upload_mb + 20) * MB),
    }
    if args.backend == "postgres":
        env["INDEXCHAT_DATABASE_URL"] = start_postgres(work)
    key = create_key(env)
    port = free_port()
    server = serve(env, port, timeout=60)
    files = work / "files"
    files.mkdir()
    cases: list[tuple[str, str, Callable[[Path], None]]] = [
        (
            f"{args.upload_mb} MB upload",
            "large.txt",
            lambda p: write_large_text(p, args.upload_mb * MB),
        ),
        ("DOCX bomb (1 GB expanded)", "bomb.docx", lambda p: p.write_bytes(docx_bomb())),
        ("XLSX bomb (1 GB expanded)", "bomb.xlsx", lambda p: p.write_bytes(xlsx_bomb())),
        ("100,000-page PDF", "pages.pdf", lambda p: p.write_bytes(many_page_pdf())),
        ("1,000,000-deep HTML", "deep.html", lambda p: p.write_bytes(deep_html())),
    ]
    try:
        base = f"http://127.0.0.1:{port}"
        api = Api(base, key)
        (files / "warm.txt").write_bytes(NOTE)
        warm, _, _ = api.index_with("warm-up", files / "warm.txt")
        api.sync(warm)  # loads the embedding model and starts the parser process
        time.sleep(1)
        baseline = rss_bytes(server.pid)
        sampler = Sampler(server.pid)
        rows = []
        for label, name, make in cases:
            path = files / name
            make(path)
            sampler.reset()
            started = time.monotonic()
            index_id, status, refused = api.index_with(name, path)
            metadata = api.sync(index_id)
            elapsed = time.monotonic() - started
            failed = {f["file_name"]: f["error"] for f in metadata.get("failed_files", [])}  # type: ignore[union-attr]
            note_ok = "note.txt" not in failed and int(metadata.get("files_parsed", 0)) >= 1  # type: ignore[call-overload]
            if status >= 400:
                outcome = f"refused {status}: {refused}"
            elif name in failed:
                outcome = f"failed: {failed[name]}"
            else:
                outcome = "parsed"
            rows.append(
                (
                    label,
                    path.stat().st_size,
                    outcome,
                    note_ok,
                    sampler.server,
                    sampler.child,
                    elapsed,
                )
            )
            print(label, rows[-1][2:], flush=True)
            path.unlink()
        sampler.close()
        print(
            f"\n## Peak memory ({args.backend}; server RSS before the first case "
            f"{baseline / MB:.0f} MB)\n"
        )
        print(
            "| case | file MB | outcome | note beside it parsed | server peak RSS MB | "
            "server peak − baseline MB | parser child peak RSS MB | s |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for label, size, outcome, note_ok, peak, child, elapsed in rows:
            print(
                f"| {label} | {size / MB:.1f} | {outcome} | {'yes' if note_ok else 'no'} "
                f"| {peak / MB:.0f} | {(peak - baseline) / MB:+.0f} | {child / MB:.0f} "
                f"| {elapsed:.1f} |"
            )
        print(
            f"\nmachine: {platform.platform()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}"
        )
    finally:
        stop(server)


if __name__ == "__main__":
    main()
