"""How soon a chat turn whose server was killed mid-stream is closed, and its session takes a new
turn, with real ``indexchat serve`` processes and a scripted model that streams slowly.

    python bench/bench_turn_recovery.py [--rounds 5] [--postgres]

Each round runs on a fresh data dir (``--postgres``: a fresh database on a PostgreSQL started
from the ``pgserver`` package) and measures three cases, each killing the server that runs a
turn with SIGKILL while the model is still streaming its answer:

- restart: a new server starts on the same machine, which can see the dead process is gone;
  restart = spawn -> ``/health`` answers (the baseline), then healthy -> the turn's ``stop`` in
  the history, and healthy -> a new turn accepted in that session;
- restart, owner elsewhere: the same, with the turn's recorded host rewritten in the database as
  if the dead server had run on another machine, so only its heartbeat can tell;
- follow: a server that was already running follows the session; kill -> its stream ends with
  the ``stop``.

Prints a Markdown table (median and max over the rounds); writes
``bench/results/turn-recovery-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from common import RESULTS, ROOT

sys.path.insert(0, str(ROOT / "tests"))

from deployments import Deployment, fresh_postgres_database, wait_until  # noqa: E402
from fake_llm import FakeLLM, Reply, slow_reply  # noqa: E402
from llama_cloud import ConflictError, LlamaCloud  # noqa: E402
from sqlalchemy import update  # noqa: E402

from indexchat.search.embeddings import LocalEmbedder  # noqa: E402
from indexchat.storage.tables import ChatSession  # noqa: E402

Timings = dict[str, list[float]]


class Round:
    """One data dir and database, the scripted model, and the servers started on them."""

    def __init__(self, root: Path, models: Path, database_url: str | None, fake: FakeLLM) -> None:
        data_dir = root / "data"
        data_dir.mkdir(parents=True)
        (data_dir / "models").symlink_to(models)
        self.deployment = Deployment(data_dir, database_url)
        self.fake = fake

    def serve(self, name: str) -> tuple[Any, LlamaCloud, float]:
        """A new server: its process, a client, and seconds from spawn to healthy."""
        started = time.perf_counter()
        process = self.deployment.serve(
            name,
            llm="openai",
            llm_model="fake-model",
            llm_base_url=self.fake.base_url,
            llm_api_key="sk",
        )
        return process, self.deployment.client, time.perf_counter() - started

    def kill_mid_turn(self, process: Any, client: LlamaCloud) -> tuple[str, float]:
        """Run a slow turn on ``process``'s server and kill it while the answer streams."""
        chat = client.chat.create()
        self.fake.script(slow_reply(words=2_000, seconds_per_word=0.05))
        with client.chat.with_streaming_response.stream(
            chat.session_id, index_ids=[], prompt="Tell me a long story.", timeout=30
        ) as response:
            lines = response.iter_lines()  # held: dropping it would disconnect, and cancel
            next(line for line in lines if line.startswith("data:") and "text_delta" in line)
            process.send_signal(signal.SIGKILL)
            killed = time.perf_counter()
            process.wait(10)
        return chat.session_id, killed

    def mark_as_remote(self, session_id: str) -> None:
        with self.deployment.db.write() as tx:
            tx.execute(
                update(ChatSession)
                .where(ChatSession.id == session_id)
                .values(turn_owner_host="another-machine")
            )

    def close(self) -> None:
        self.deployment.close()


def history_ends_with_stop(client: LlamaCloud, session_id: str) -> bool:
    events = client.chat.retrieve(session_id).events
    return bool(events) and events[-1].type == "stop"


def accept_new_turn(client: LlamaCloud, fake: FakeLLM, session_id: str) -> float:
    """Ask for a new turn in the session until the server accepts one (it answers 409 while
    the old turn counts as running); when it did (the 200 arrived), then read the turn."""
    fake.script(Reply(text="Back again."))
    while True:
        try:
            with client.chat.with_streaming_response.stream(
                session_id, index_ids=[], prompt="Are you there?"
            ) as response:
                accepted = time.perf_counter()
                response.read()
                return accepted
        except ConflictError:
            time.sleep(0.1)


def measure_restart(run: Round, timings: Timings, *, remote: bool) -> None:
    label = "owner elsewhere" if remote else "same machine"
    process, client, _ = run.serve(f"killed-{label}")
    session_id, killed = run.kill_mid_turn(process, client)
    if remote:
        run.mark_as_remote(session_id)
    _, client, restart = run.serve(f"restarted-{label}")
    healthy = time.perf_counter()
    timings[f"restart ({label}): spawn → healthy (baseline)"].append(restart)
    if not remote:  # closed as the server started: the first look at the history shows it
        wait_until(lambda: history_ends_with_stop(client, session_id), "the stop", timeout=180)
        timings[f"restart ({label}): healthy → stop in history"].append(
            time.perf_counter() - healthy
        )
    accepted = accept_new_turn(client, run.fake, session_id)
    timings[f"restart ({label}): healthy → new turn accepted"].append(accepted - healthy)
    timings[f"restart ({label}): kill → new turn accepted"].append(accepted - killed)


def measure_follow(run: Round, timings: Timings) -> None:
    _, follower, _ = run.serve("follower")
    process, client, _ = run.serve("killed-followed")
    session_id, killed = run.kill_mid_turn(process, client)
    url = f"{str(follower.base_url).rstrip('/')}/api/v1/chat/{session_id}/messages/stream"
    headers = {"Authorization": f"Bearer {follower.api_key}"}
    with httpx.stream("GET", url, headers=headers, timeout=180) as response:
        events = [json.loads(x[5:]) for x in response.iter_lines() if x.startswith("data:")]
    assert events[-1]["type"] == "stop" and events[-1]["is_error"], events[-1]
    timings["follow from a running server: kill → stop"].append(time.perf_counter() - killed)


@contextmanager
def postgres(enabled: bool, root: Path) -> Iterator[str | None]:
    if not enabled:
        yield None
        return
    import pgserver

    server = pgserver.get_server(root / "pgdata", cleanup_mode="stop")
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={root / 'pgdata'}"
    finally:
        server.cleanup()


def model_folder(root: Path) -> Path:
    """The exported embedding model: the test suite's copy when there is one."""
    cached = ROOT / ".pytest_cache" / "d" / "indexchat-models"
    folder = cached if cached.is_dir() else root / "models"
    LocalEmbedder(folder).load()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    timings: Timings = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="indexchat-bench-recovery-") as tmp, FakeLLM() as fake:
        root = Path(tmp)
        models = model_folder(root)
        with postgres(args.postgres, root) as server_url:
            for number in range(args.rounds):
                for case in ("same", "remote", "follow"):
                    url = fresh_postgres_database(server_url) if server_url else None
                    run = Round(root / f"round-{number}-{case}", models, url, fake)
                    try:
                        if case == "follow":
                            measure_follow(run, timings)
                        else:
                            measure_restart(run, timings, remote=case == "remote")
                    finally:
                        run.close()
                print(f"round {number + 1}/{args.rounds} done", flush=True)
    report(timings, args)


def report(timings: Timings, args: argparse.Namespace) -> None:
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\n## Chat turns of a killed server ({backend}, {args.rounds} rounds)\n")
    print(f"`python bench/bench_turn_recovery.py --rounds {args.rounds}"
          f"{' --postgres' if args.postgres else ''}`\n")  # fmt: skip
    print("| measure | n | median s | max s |\n|---|---|---|---|")
    for name, values in timings.items():
        print(f"| {name} | {len(values)} | {statistics.median(values):.2f} | {max(values):.2f} |")
    print(f"\nmachine: {platform.platform()}, Python {platform.python_version()}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"turn-recovery-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"backend": backend, "timings": timings}, indent=2))
    print(f"JSON: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
