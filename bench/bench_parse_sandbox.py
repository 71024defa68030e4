"""Sync time of a handful of small documents, parsed in the server's process (a source tree from
before parsing moved to a child process) against parsed in the child process (this tree).

    python bench/bench_parse_sandbox.py --before /path/to/old/src [--rounds 7]

Starts two `indexchat serve` (SQLite, defaults) on fresh data dirs, one importing indexchat from
``--before`` (PYTHONPATH), one from this tree. Each uploads the same seven documents (DOCX,
PPTX, XLSX, HTML, PDF, Markdown, text) into one directory and warms up on a one-file index
(the embedding model's export, and the parser process of whichever worker thread runs it).
Then each round creates one index per server over its directory and times the sync, from the
request until it is no longer in progress; the servers alternate which goes first, so drift
on a shared machine falls on both. The first sync of a worker thread that has not parsed yet
includes starting its parser process, so the rounds show that too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import create_key, free_port, serve, stop
from llama_cloud import LlamaCloud

DOCS = Path(os.environ.get("INDEXCHAT_TEST_DOCS", "/work/shared/data/docs"))
FILES = [
    "word_sample.docx",
    "powerpoint_sample.pptx",
    "2023-half-year-analyses-by-segment.xlsx",
    "wiki_duck.html",
    "tracemonkey.pdf",
    "docling-README.md",
    "UDHR_first_article_all.txt",
]
SRC = Path(__file__).resolve().parent.parent / "src"


def sync_seconds(client: LlamaCloud, directory_id: str, files: int = len(FILES)) -> float:
    index = client.indexes.create(source_directory_id=directory_id)
    started = time.perf_counter()
    client.indexes.sync(index.id)
    while client.indexes.get(index.id, expand=["sync_in_progress"]).sync_in_progress:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    metadata = client.indexes.get(index.id).metadata
    assert metadata["files_parsed"] == files, metadata
    return elapsed


def start(name: str, src: Path) -> tuple[LlamaCloud, str, subprocess.Popen[bytes]]:
    work = Path(tempfile.mkdtemp(prefix=f"indexchat-parse-{name}-"))
    env = {**os.environ, "INDEXCHAT_DATA_DIR": str(work / "data"), "PYTHONPATH": str(src)}
    key = create_key(env)
    port = free_port()
    server = serve(env, port)
    client = LlamaCloud(api_key=key, base_url=f"http://127.0.0.1:{port}", max_retries=0)
    warm = client.beta.directories.create(name="warm-up")
    client.beta.directories.files.upload(warm.id, upload_file=("w.txt", b"warm up"))
    sync_seconds(client, warm.id, 1)
    directory = client.beta.directories.create(name="docs")
    for name_ in FILES:
        client.beta.directories.files.upload(
            directory.id, upload_file=(name_, (DOCS / name_).read_bytes())
        )
    return client, directory.id, server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True, help="src/ of the old tree")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    servers = {"before": start("before", args.before), "after": start("after", SRC)}
    times: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for round_ in range(args.rounds):
            order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
            for name in order:
                client, directory_id, _ = servers[name]
                times[name].append(sync_seconds(client, directory_id))
            print(
                f"round {round_ + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in servers),
                flush=True,
            )
        print("| parsing | sync s (median) | each round |")
        print("|---|---|---|")
        for name in servers:
            runs = ", ".join(f"{t:.2f}" for t in times[name])
            print(f"| {name} | {statistics.median(times[name]):.2f} | {runs} |")
        ratio = statistics.median(times["after"]) / statistics.median(times["before"])
        print(f"after / before: {ratio:.2f}")
    finally:
        for _, _, server in servers.values():
            stop(server)


if __name__ == "__main__":
    main()
