"""What the benchmarks share: where things are, a free port, ``indexchat serve`` started and
waited for, the SciFact files, retrieval quality (nDCG, recall) and latency figures.

Each script puts this folder first on ``sys.path`` (Python does so for the script's own folder),
so ``from common import ...`` works from any working directory.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent  # the venv's indexchat next to the running python
RESULTS = HERE / "results"
# BEIR's SciFact (corpus.jsonl, queries.jsonl, qrels/test.tsv): in shared/ beside the repository,
# or where INDEXCHAT_BENCH_SCIFACT says (a git worktree has no shared/ beside it).
SCIFACT = Path(
    os.environ.get("INDEXCHAT_BENCH_SCIFACT") or ROOT.parent / "shared" / "data" / "scifact"
)


# --- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on now (closed again before the server binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 120, log: Path | None = None
) -> None:
    """Until ``GET url`` answers (a server's ``/health``); raises if the server exits first or
    ``timeout`` passes."""
    where = f"; see {log}" if log else ""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {url}{where}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {url}{where}") from None
            time.sleep(0.1)


def serve(
    env: dict[str, str],
    port: int,
    *,
    output: IO[bytes] | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 120,
) -> subprocess.Popen[bytes]:
    """``indexchat serve --port PORT ARGS`` with ``env``, once healthy; its output goes to
    ``output`` (discarded when None)."""
    proc = subprocess.Popen(
        [BIN / "indexchat", "serve", "--port", str(port), *args],
        env=env,
        stdout=output if output is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if output is not None else subprocess.DEVNULL,
    )
    try:
        log = getattr(output, "name", None)
        wait_healthy(f"http://127.0.0.1:{port}/health", proc, timeout, Path(log) if log else None)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, and kill what does not exit within 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def create_key(env: dict[str, str]) -> str:
    """A fresh API key, made by ``indexchat keys create`` against ``env``'s data dir."""
    created = subprocess.run(
        [BIN / "indexchat", "keys", "create"], env=env, capture_output=True, text=True, check=True
    )
    return created.stdout.strip().splitlines()[-1]


def start_postgres(workdir: Path, database: str = "indexchat_bench") -> str:
    """A PostgreSQL (with pgvector) from the pgserver package in ``workdir/pg``, one new
    database in it; its URL. The cluster stops when this process exits."""
    import pgserver

    pgdata = workdir / "pg"
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    server.psql(f"CREATE DATABASE {database};")
    return f"postgresql+psycopg://postgres@/{database}?host={pgdata}"


class Server:
    """``indexchat serve`` on a free port with its own log file and an API key (``key``, or a
    fresh one from ``indexchat keys create``)."""

    def __init__(
        self, env: dict[str, str], log: Path, key: str | None = None, timeout: float = 120
    ) -> None:
        self.env = env
        self.log = log
        self.key = key or create_key(env)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        try:
            self.proc = serve(env, self.port, output=self._log, timeout=timeout)
        except BaseException:
            self._log.close()
            raise

    def sdk(self) -> Any:
        from llama_cloud import LlamaCloud

        return LlamaCloud(api_key=self.key, base_url=self.base, max_retries=0, timeout=120)

    def problems(self) -> dict[str, int]:
        """Tracebacks and error lines in the server log, by kind."""
        text = self.log.read_text(errors="replace")
        return {
            "tracebacks": text.count("Traceback (most recent call last)"),
            "database is locked": text.count("database is locked"),
            "HTTP 5xx": sum(1 for line in text.splitlines() if '" 50' in line),
            "ERROR lines": sum(1 for line in text.splitlines() if line.startswith("ERROR")),
        }

    def stop(self) -> None:
        stop(self.proc)
        self._log.close()


# --- SciFact ------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSON Lines file, in file order."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def read_qrels(data: Path = SCIFACT) -> dict[str, dict[str, int]]:
    """Graded test judgements: query id -> document id -> gain, in file order."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(data / "qrels" / "test.tsv", encoding="utf-8") as fh:  # text mode drops the \r
        next(fh)
        for line in fh:
            qid, did, score = line.split()
            qrels[qid][did] = int(score)
    return dict(qrels)


def load_scifact(
    limit: int | None = None, data: Path = SCIFACT
) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """Corpus (document id -> title, blank line, text), the test queries that have judgements
    (id -> text, in judgement order) and the judgements (``read_qrels``). With a ``limit``
    (not 0), the corpus keeps its first ``limit`` documents plus every judged one."""
    corpus = {d["_id"]: f"{d['title']}\n\n{d['text']}" for d in read_jsonl(data / "corpus.jsonl")}
    texts = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    qrels = read_qrels(data)
    queries = {q: texts[q] for q in qrels}
    if limit:
        keep = set(list(corpus)[:limit]) | {d for rel in qrels.values() for d in rel}
        corpus = {d: t for d, t in corpus.items() if d in keep}
    return corpus, queries, qrels


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    """nDCG@k with graded gains and a log2 discount, the ideal from the judged documents (as
    pytrec_eval computes it)."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int = 100) -> float:
    """The share of judged-relevant documents found in the first ``k``."""
    hits = {d for d in ranked[:k] if relevant.get(d, 0) > 0}
    wanted = {d for d, r in relevant.items() if r > 0}
    return len(hits) / len(wanted) if wanted else 0.0


# --- figures ------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in percent (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def median(values: list[float]) -> float:
    """The median (NaN for no values)."""
    return statistics.median(values) if values else float("nan")


def summary(values: list[float]) -> dict[str, float]:
    """Count, median, p99, mean and max; just a zero count for no values."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p99": pct(values, 99),
        "mean": statistics.fmean(values),
        "max": max(values),
    }


def medians_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per key, the median over runs."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def machine() -> dict[str, Any]:
    """What a result needs to say about where it was measured (the load says how shared)."""
    return {
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }
