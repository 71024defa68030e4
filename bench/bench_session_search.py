"""Session search latency over a large project, against listing sessions in the same run.

    python bench/bench_session_search.py [--backend sqlite|postgres] [--sessions 100000]
                                         [--queries 20] [--repeats 10]

Fills one project with ``--sessions`` sessions of 10 events each (two turns: user_input,
tool_call, tool_result, text, stop) directly through bulk inserts into the tables the server
writes (sessions, events, searchable texts), then starts ``indexchat serve`` on that database
and times over HTTP, one request at a time: ``GET /api/v1/chat/search`` for several kinds of
query, and ``GET /api/v1/chat?page_size=20`` (page 1). Prompts and answers are sentences of
War and Peace (``shared/data/docs``), so word frequencies are those of real English prose.

``--write-rounds N`` then times, in-process on the filled database, what keeping search current
adds to a turn's writes: recording a ``text`` event (its answer is indexed) against recording a
``tool_result`` event of the same text (not indexed), each in its own transaction as a running
turn writes them, alternating, N of each.

Query kinds, ``--queries`` of each, every query asked ``--repeats`` times:
- rare: one word in 10-100 texts; mid: one word in 1,000-5,000 texts;
- common: one of the 50 most frequent non-stop words (tens of thousands of texts);
- two words: two adjacent words of some answer, both mid or rarer;
- typing: the first 4 letters of a mid word (the last word matches as a prefix).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import statistics
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, free_port, pct, serve, start_postgres, stop

DOCS = Path(os.environ.get("INDEXCHAT_TEST_DOCS") or ROOT.parent / "shared" / "data" / "docs")
BOOK = DOCS / "book-war-and-peace-1225p.txt"
BATCH = 2_000  # sessions per insert transaction
STOP = set(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with he she his her him had have said i you what which "
    "who from all were one so would been has we my me them there out up".split()
)


def sentences() -> list[str]:
    text = " ".join(BOOK.read_text(encoding="utf-8", errors="replace").split())
    found = re.findall(r"[A-Z][^.?!]{30,240}[.?!]", text)
    if len(found) < 1000:
        raise SystemExit(f"too few sentences in {BOOK}")
    return found


def session_rows(
    project_id: str, index: int, pool: list[str], rng: random.Random, start: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """One session: its row, its 10 events and its 5 searchable texts."""
    from indexchat.agent.prompts import title_from

    session_id = f"ses-{uuid.UUID(int=rng.getrandbits(128))}"
    moment = start + timedelta(seconds=index)
    events: list[dict[str, Any]] = []
    texts: list[dict[str, Any]] = []
    title = None
    for turn in range(2):
        prompt = pool[rng.randrange(len(pool))].rstrip(".!") + "?"
        at = rng.randrange(len(pool) - 5)
        answer = " ".join(pool[at : at + rng.randint(2, 6)])
        seq = turn * 5 + 1
        payloads = [
            {"type": "user_input", "content": prompt},
            {"type": "tool_call", "call_id": f"c{turn}", "name": "retrieve",
             "arguments": {"query": prompt}},
            {"type": "tool_result", "call_id": f"c{turn}", "name": "retrieve",
             "result": [{"file_name": "book.txt", "text": answer[:200]}]},
            {"type": "text", "content": answer},
            {"type": "stop", "is_error": False, "error": None, "usage": {},
             "skipped_index_ids": []},
        ]  # fmt: skip
        for n, payload in enumerate(payloads):
            events.append(
                {"session_id": session_id, "seq": seq + n, "type": payload["type"],
                 "payload": payload, "created_at": moment}
            )  # fmt: skip
        if title is None:
            title = title_from(prompt)
            texts.append(_text(project_id, session_id, seq, "title", title))
        texts.append(_text(project_id, session_id, seq, "prompt", prompt))
        texts.append(_text(project_id, session_id, seq + 3, "answer", answer))
    session = {
        "id": session_id, "project_id": project_id, "index_ids": None,
        "shared_access": "read_only", "generated_title": title, "created_at": moment,
        "last_updated_at": moment, "job_metadata": None,
    }  # fmt: skip
    return session, events, texts


def _text(project_id: str, session_id: str, seq: int, kind: str, text: str) -> dict[str, Any]:
    return {"project_id": project_id, "session_id": session_id, "seq": seq, "kind": kind,
            "text": text}  # fmt: skip


def fill(env: dict[str, str], count: int, seed: int) -> tuple[str, Counter[str], list[str]]:
    """A project with ``count`` sessions; its key, each word's text frequency, the answers."""
    from sqlalchemy import insert

    from indexchat.config import Settings
    from indexchat.runtime import open_database
    from indexchat.services import tenancy
    from indexchat.storage.tables import ChatEvent, ChatSession, SessionText

    settings = Settings(
        data_dir=env["INDEXCHAT_DATA_DIR"], database_url=env.get("INDEXCHAT_DATABASE_URL")
    )
    db = open_database(settings)
    with db.write() as tx:
        project = tenancy.create_project(tx, "search-bench")
        key = tenancy.create_key(tx, project="search-bench").secret
    pool, rng = sentences(), random.Random(seed)
    frequency: Counter[str] = Counter()
    answers: list[str] = []
    started, start = time.perf_counter(), datetime(2026, 1, 1)
    for offset in range(0, count, BATCH):
        sessions, events, texts = [], [], []
        for i in range(offset, min(offset + BATCH, count)):
            row, its_events, its_texts = session_rows(project.id, i, pool, rng, start)
            sessions.append(row)
            events += its_events
            texts += its_texts
        for text in texts:
            frequency.update(set(re.findall(r"[a-z]+", text["text"].lower())))
        answers += [t["text"] for t in texts if t["kind"] == "answer"][:50]
        with db.write() as tx:
            tx.execute(insert(ChatSession), sessions)
            tx.execute(insert(ChatEvent), events)
            tx.execute(insert(SessionText), texts)
        if offset % (BATCH * 10) == 0:
            elapsed = time.perf_counter() - started
            print(f"  {offset + BATCH:,} sessions, {elapsed:.0f}s", flush=True)
    print(f"filled {count:,} sessions ({count * 10:,} events) in "
          f"{time.perf_counter() - started:.0f}s", flush=True)  # fmt: skip
    db.dispose()
    return key, frequency, answers


def pick_queries(
    frequency: Counter[str], answers: list[str], per_kind: int, seed: int
) -> dict[str, list[str]]:
    rng = random.Random(seed)
    words = [w for w in frequency if w not in STOP and len(w) > 2]

    def band(low: int, high: int) -> list[str]:
        return [w for w in words if low <= frequency[w] <= high]

    rare, mid = band(10, 100), band(1_000, 5_000)
    common = sorted(words, key=lambda w: -frequency[w])[:50]
    pairs, uncommon = [], set(mid) | set(rare)
    for answer in answers:
        tokens = re.findall(r"[a-z]+", answer.lower())
        pairs += [
            f"{a} {b}"
            for a, b in zip(tokens, tokens[1:], strict=False)
            if a in uncommon and b in uncommon
        ]
    typing = [w[:4] for w in mid if len(w) > 5]
    kinds = {"rare": rare, "mid": mid, "common": common, "two words": pairs, "typing": typing}
    return {kind: rng.sample(sorted(set(found)), min(per_kind, len(set(found))))
            for kind, found in kinds.items()}  # fmt: skip


def write_cost(env: dict[str, str], rounds: int, answers: list[str]) -> None:
    from indexchat.config import Settings
    from indexchat.domain import Scope
    from indexchat.events import Event, Text, ToolResult
    from indexchat.processes import ProcessId
    from indexchat.runtime import open_database
    from indexchat.services import sessions, tenancy, turns

    settings = Settings(
        data_dir=env["INDEXCHAT_DATA_DIR"], database_url=env.get("INDEXCHAT_DATABASE_URL")
    )
    db = open_database(settings)
    with db.write() as tx:
        project = tenancy.create_project(tx, "write-bench")
    scope = Scope(organization_id=project.organization_id, project_id=project.id)
    with db.write() as tx:
        chat = sessions.create_session(tx, scope, index_ids=None, shared_access="read_only")
    with db.write() as tx:
        plan = turns.begin_turn(
            tx, scope, chat.id, owner=ProcessId.of_this_process(), index_ids=[],
            prompt="What happened?", require_all_indexes=False,
        )  # fmt: skip
    timings: dict[str, list[float]] = {"text": [], "tool_result": []}
    seq = plan.user_input_seq
    for n in range(rounds * 2):
        kind = "text" if n % 2 else "tool_result"
        answer = answers[n % len(answers)]
        event: Event = Text(answer)
        if kind == "tool_result":
            event = ToolResult("c", "retrieve", [{"type": "text", "content": answer}])
        seq += 1
        t = time.perf_counter()
        with db.write() as tx:
            turns.record_event(tx, plan, seq, event)
        timings[kind].append((time.perf_counter() - t) * 1000)
    db.dispose()
    text, other = (statistics.median(timings[k]) for k in ("text", "tool_result"))
    print(f"\n## Keeping search current ({rounds} events of each kind, in-process)\n")
    print("| event written (own transaction) | p50 ms | p99 ms |\n|---|---|---|")
    for kind, label in (("text", "`text` (answer indexed)"), ("tool_result", "`tool_result`")):
        print(f"| {label} | {statistics.median(timings[kind]):.3f} | "
              f"{pct(timings[kind], 99):.3f} |")  # fmt: skip
    print(f"\nindexing one answer adds {text - other:.3f} ms at p50", flush=True)


def timed(client: httpx.Client, url: str, params: dict[str, Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        response = client.get(url, params=params)
        out.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, response.text
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20, help="queries of each kind")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--write-rounds", type=int, default=0, help="0 skips the write costs")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="indexchat-search-bench-"))
    env = {**os.environ, "INDEXCHAT_DATA_DIR": str(work / "data")}
    if args.backend == "postgres":
        env["INDEXCHAT_DATABASE_URL"] = start_postgres(work)
    key, frequency, answers = fill(env, args.sessions, args.seed)
    if args.write_rounds:
        write_cost(env, args.write_rounds, answers)
    queries = pick_queries(frequency, answers, args.queries, args.seed)
    port = free_port()
    server = serve(env, port, timeout=60)
    try:
        base = f"http://127.0.0.1:{port}"
        report(base, key, queries, frequency, args)
    finally:
        stop(server)


def report(
    base: str,
    key: str,
    queries: dict[str, list[str]],
    frequency: Counter[str],
    args: argparse.Namespace,
) -> None:
    search_url, list_url = f"{base}/api/v1/chat/search", f"{base}/api/v1/chat"
    rows, everything = [], []
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        for q in [q for found in queries.values() for q in found][:10]:  # warm the caches
            client.get(search_url, params={"q": q})
        listing = timed(client, list_url, {"page_size": 20}, args.repeats * args.queries)
        for kind, found in queries.items():
            timings, hits = [], []
            for q in found:
                timings += timed(client, search_url, {"q": q}, args.repeats)
                hits.append(len(client.get(search_url, params={"q": q}).json()["items"]))
            everything += timings
            texts = statistics.median(frequency[w] for q in found for w in q.split()[:1])
            rows.append((kind, len(found), texts, statistics.median(hits), timings))
        listing_again = timed(client, list_url, {"page_size": 20}, args.repeats * args.queries)
    print(f"\n## Session search ({args.backend}; {args.sessions:,} sessions x 10 events, one "
          f"project; {args.repeats} runs of each query, one at a time)\n")  # fmt: skip
    print("| request | queries | texts holding the (first) word, median | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for kind, n, texts, _, timings in rows:
        print(f"| search: {kind} | {n} | {texts:,.0f} | {statistics.median(timings):.1f} "
              f"| {pct(timings, 99):.1f} |")  # fmt: skip
    print(f"| search: all kinds | {sum(r[1] for r in rows)} | | "
          f"{statistics.median(everything):.1f} | {pct(everything, 99):.1f} |")  # fmt: skip
    both = listing + listing_again
    print(f"| GET /api/v1/chat page 1 (before and after) | | | {statistics.median(both):.1f} "
          f"| {pct(both, 99):.1f} |")  # fmt: skip
    print(f"\nqueries: { {k: v[:5] for k, v in queries.items()} }")
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")  # fmt: skip


if __name__ == "__main__":
    main()
