"""A new user's first hour, measured: CLI start-up and the server's resident memory.

    python bench/bench_first_hour.py [--runs 20] [--docs /work/shared/data/docs]
    PYTHONPATH=/path/to/other/src python bench/bench_first_hour.py   # the same for other code

CLI: wall time and CPU time (user + system: what a busy machine distorts least) of
`indexchat --help` and `indexchat --version`, a fresh interpreter each run, median of N runs.
Server: VmRSS of `indexchat serve` on a fresh data dir (a) idle after start, (b) idle after
`indexchat ingest` of a few documents (the first ingest builds the local embedding model in the
server), (c) idle after a restart on that data dir (the built model is loaded at start).
Nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import create_key, free_port, serve, stop

import indexchat

DOCS = ["word_sample.docx", "docling-README.md", "tracemonkey.pdf", "wiki_duck.html"]
IDLE_SECONDS = 15


def cli_seconds(args: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each run."""
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "indexchat", *args], capture_output=True)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:  # e.g. an older indexchat without --version
            return [], []
    return wall, cpu


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def server_memory(docs: Path) -> dict[str, float]:
    data = Path(tempfile.mkdtemp(prefix="indexchat-bench-data-"))
    folder = data.parent / (data.name + "-docs")
    folder.mkdir()
    for name in DOCS:
        shutil.copy(docs / name, folder / name)
    env = {**os.environ, "INDEXCHAT_DATA_DIR": str(data)}
    port = free_port()
    figures: dict[str, float] = {}
    try:
        server = serve(env, port)
        time.sleep(IDLE_SECONDS)
        figures["idle after start, fresh data dir"] = rss_mb(server.pid)
        key = create_key(env)
        api_env = {
            **env,
            "LLAMA_CLOUD_API_KEY": key,
            "LLAMA_CLOUD_BASE_URL": f"http://127.0.0.1:{port}",
        }
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "indexchat", "ingest", str(folder), "--index", "bench"],
            env=api_env, check=True, capture_output=True,
        )  # fmt: skip
        figures["first ingest, s (builds the model)"] = time.perf_counter() - start
        time.sleep(IDLE_SECONDS)
        figures["idle after the first ingest"] = rss_mb(server.pid)
        stop(server)
        server = serve(env, port)
        time.sleep(IDLE_SECONDS)
        figures["idle after a restart (model loaded)"] = rss_mb(server.pid)
        stop(server)
    finally:
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--docs", type=Path, default=Path("/work/shared/data/docs"))
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()
    print(f"indexchat from {Path(indexchat.__file__).parent}; load {os.getloadavg()[0]:.2f}")
    for command in (["--help"], ["--version"]):
        wall, cpu = cli_seconds(command, args.runs)
        if not wall:
            print(f"indexchat {command[0]}: fails (exit status not 0)")
            continue
        print(
            f"indexchat {command[0]}: wall median {statistics.median(wall):.3f} s "
            f"(min {min(wall):.3f}), CPU median {statistics.median(cpu):.3f} s ({args.runs} runs)"
        )
    if not args.skip_server:
        for label, value in server_memory(args.docs).items():
            unit = "" if label.endswith(", s (builds the model)") else " MB"
            print(f"{label}: {value:.1f}{unit}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
