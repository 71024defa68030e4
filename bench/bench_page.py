"""The web page in headless Chromium (Debian's, through Playwright) against ``indexchat serve``
(SQLite, the extractive answerer) over a small synced index:

    python bench/bench_page.py [--runs 15] [--turns 20] [--sessions 10000]

- transfer size: every response a cold load of the chat page (``/``) fetches, as Resource Timing
  reports them (``transferSize``: headers + gzip-compressed body), and their decoded size;
- first contentful paint of ``/`` against that of ``GET /health`` (JSON the browser shows as
  text), each in a fresh browser context (nothing cached), interleaved, ``--runs`` times;
- Send -> first rendered answer token against the API's time to the first answer event for the
  same turn, from the page's performance marks (``indexchat:send``, ``indexchat:first-text-event``,
  ``indexchat:first-token``) and the Resource Timing of the turn's ``POST …/messages/stream``.
  What the page adds = (Send -> request issued: creating the session on a new chat) + (answer
  event parsed -> painted into the DOM). Each turn is also timed from a plain httpx client;
- sidebar: ``--sessions`` sessions stored through the service layer, then the sidebar scrolled to
  the end; the page times each next page of 50 (request -> rendered and laid out).

Writes ``bench/results/page-<time>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from bench_chat import QUESTIONS, TOPICS, build_index
from common import RESULTS, ROOT, Server, median, pct

sys.path.insert(0, str(ROOT / "tests"))
from web.chromium import launch  # noqa: E402 - the page tests' way of starting Chromium

VIEWPORT = {"width": 1280, "height": 800}


def sign_in(context: Any, server: Server) -> None:
    answer = context.request.post(
        f"{server.base}/login",
        form={"api_key": server.key},
        headers={"Origin": server.base},
        max_redirects=0,
    )
    assert answer.status == 303, answer.status


def first_paint(page: Any) -> float:
    return float(
        page.evaluate(
            """() => new Promise((resolve) => {
                const found = () => performance.getEntriesByName('first-contentful-paint')[0];
                if (found()) return resolve(found().startTime);
                new PerformanceObserver(() => found() && resolve(found().startTime))
                    .observe({ type: 'paint', buffered: true });
            })"""
        )
    )


def measure_loads(browser: Any, server: Server, runs: int) -> dict[str, Any]:
    fcp: dict[str, list[float]] = {"chat": [], "health": []}
    sizes: list[dict[str, Any]] = []
    for _ in range(runs):
        for name, path in (("health", "/health"), ("chat", "/")):
            context = browser.new_context(viewport=VIEWPORT)
            if name == "chat":
                sign_in(context, server)
            page = context.new_page()
            page.goto(f"{server.base}{path}", wait_until="load")
            fcp[name].append(first_paint(page))
            if name == "chat":
                page.wait_for_function("() => document.querySelector('.index-option')")
                page.wait_for_timeout(300)  # the indexes' sync state, the sidebar's first page
                sizes.append(transfer(page))
            context.close()
    return {
        "fcp_ms": fcp,
        "fcp_median_ms": {k: median(v) for k, v in fcp.items()},
        "transfer": sizes[-1],
        "transfer_total_bytes": [s["total_transfer"] for s in sizes],
    }


def transfer(page: Any) -> dict[str, Any]:
    entries = page.evaluate(
        """() => [...performance.getEntriesByType('navigation'),
                  ...performance.getEntriesByType('resource')].map((e) => ({
            name: e.name, transfer: e.transferSize, decoded: e.decodedBodySize }))"""
    )
    return {
        "entries": entries,
        "total_transfer": sum(e["transfer"] for e in entries),
        "total_decoded": sum(e["decoded"] for e in entries),
        "vendor_transfer": sum(e["transfer"] for e in entries if "/vendor/" in e["name"]),
    }


def measure_turns(browser: Any, server: Server, turns: int) -> dict[str, Any]:
    context = browser.new_context(viewport=VIEWPORT)
    sign_in(context, server)
    page = context.new_page()
    rows: list[dict[str, Any]] = []
    for number in range(turns):
        new_chat = number % 2 == 0  # alternately the first message of a chat, and a follow-up
        if new_chat:
            page.goto(f"{server.base}/")
            page.wait_for_function("() => document.querySelector('.index-option input:checked')")
        page.evaluate("() => { performance.clearMarks(); performance.clearResourceTimings(); }")
        before = page.locator(".turn .usage").count()
        page.get_by_label("Message").fill(QUESTIONS[number % len(QUESTIONS)])
        page.get_by_label("Message").press("Enter")
        page.wait_for_function(f"() => document.querySelectorAll('.turn .usage').length > {before}")
        marks = page.evaluate(
            """() => {
                const mark = (name) => performance.getEntriesByName(name)[0]?.startTime;
                const requests = performance.getEntriesByType('resource');
                const stream = requests.find((e) => e.name.endsWith('/messages/stream'));
                const create = requests.find((e) => e.name.endsWith('/api/v1/chat'));
                return { send: mark('indexchat:send'), event: mark('indexchat:first-text-event'),
                         token: mark('indexchat:first-token'), request: stream?.startTime,
                         create: create ? create.duration : 0 };
            }"""
        )
        rows.append(
            {
                "new_chat": new_chat,
                "send_to_token_ms": marks["token"] - marks["send"],
                "api_first_text_ms": marks["event"] - marks["request"],
                "page_added_ms": (marks["request"] - marks["send"])
                + (marks["token"] - marks["event"]),
                "send_to_request_ms": marks["request"] - marks["send"],
                "event_to_token_ms": marks["token"] - marks["event"],
                "create_session_ms": marks["create"],
            }
        )
    context.close()
    return {"turns": rows}


def measure_api_turns(server: Server, index_id: str, turns: int) -> list[float]:
    """Request written -> first answer event read, from a plain client (no browser)."""
    headers = {"Authorization": f"Bearer {server.key}"}
    times = []
    with httpx.Client(base_url=server.base, headers=headers, timeout=120) as client:
        for number in range(turns):
            chat = client.post("/api/v1/chat", json={"index_ids": [index_id]}).json()
            body = {"index_ids": [index_id], "prompt": QUESTIONS[number % len(QUESTIONS)]}
            started = time.perf_counter()
            first = None
            with client.stream(
                "POST", f"/api/v1/chat/{chat['session_id']}/messages/stream", json=body
            ) as response:
                for line in response.iter_lines():
                    if first is None and line.startswith("data:") and '"type":"text' in line:
                        first = time.perf_counter() - started
            times.append((first or float("nan")) * 1000)
    return times


def store_sessions(data_dir: Path, api_key: str, count: int) -> None:
    """Sessions written through the service layer in one transaction (the API would take a
    minute for 10,000 and measure nothing the sidebar does)."""
    from indexchat.config import Settings
    from indexchat.runtime import open_database
    from indexchat.services import sessions, tenancy

    db = open_database(Settings(data_dir=data_dir))
    with db.write() as tx:
        scope = tenancy.resolve_scope(tx, tenancy.authenticate(tx, api_key))
        for _ in range(count):
            sessions.create_session(tx, scope, index_ids=None, shared_access="read_only")
    db.dispose()


def measure_sidebar(browser: Any, server: Server, expected: int) -> dict[str, Any]:
    context = browser.new_context(viewport=VIEWPORT)
    sign_in(context, server)
    page = context.new_page()
    page.goto(f"{server.base}/")
    links = page.locator(".session-list a")
    page.wait_for_function("() => document.querySelectorAll('.session-list a').length >= 50")
    while page.evaluate("() => document.querySelectorAll('.session-list a').length") < expected:
        shown = links.count()
        page.evaluate(
            "() => { const s = document.getElementById('sidebar'); s.scrollTop = s.scrollHeight; }"
        )
        page.wait_for_function(
            f"() => document.querySelectorAll('.session-list a').length > {shown}"
        )
    durations = page.evaluate(
        """() => ['indexchat:sidebar-page', 'indexchat:sidebar-render'].map((name) =>
            performance.getEntriesByName(name).map((e) => e.duration))"""
    )
    context.close()
    pages, renders = durations
    # The first page loads with the page itself; the figure is about the pages that follow.
    return {
        "first_page_ms": pages[0],
        "pages": len(pages) - 1,
        "page_ms": pages[1:],
        "render_ms": renders[1:],
        "shown": expected,
    }


def environment(server: Server) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "time": datetime.now().isoformat(timespec="seconds"),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-page-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INDEXCHAT_", "OPENAI_"))}
        env["INDEXCHAT_DATA_DIR"] = tmp
        server = Server(env, Path(tmp) / "serve.log")
        try:
            client = server.sdk()
            files = {f"{name}.md": f"# {name}\n\n{text}\n".encode() for name, text in TOPICS}
            index_id, _ = build_index(client, files)
            results: dict[str, Any] = {"environment": environment(server)}
            parts = set(args.parts.split(","))
            with sync_playwright() as playwright:
                browser = launch(playwright)
                if "loads" in parts:
                    results["loads"] = measure_loads(browser, server, args.runs)
                if "turns" in parts:
                    results["page_turns"] = measure_turns(browser, server, args.turns)
                    results["api_first_text_ms"] = measure_api_turns(server, index_id, args.turns)
                if "sidebar" in parts:
                    store_sessions(Path(tmp), server.key, args.sessions)
                    total = sum(1 for _ in client.chat.list(page_size=100))  # all pages
                    results["sidebar"] = measure_sidebar(browser, server, total)
                browser.close()
            results["server_problems"] = server.problems()
        finally:
            server.stop()
    return results


def row(label: str, values: list[float], goal: str = "") -> str:
    spread = f"{pct(values, 95):.1f} ms (max {max(values):.1f})" if values else ""
    return f"| {label} | {len(values)} | {median(values):.1f} ms | {spread} | {goal} |"


def report(results: dict[str, Any]) -> str:
    lines = ["| measure | n | median | p95 | goal |", "|---|---|---|---|---|"]
    if "loads" in results:
        loads = results["loads"]
        kb = median(loads["transfer_total_bytes"]) / 1024
        lines += [
            f"| chat page transfer, every response (gzip) | {len(loads['transfer_total_bytes'])}"
            f" | {kb:.1f} KB | | ≤ 150 KB |",
            f"| of which vendored code | 1 | {loads['transfer']['vendor_transfer'] / 1024:.1f} KB"
            " | | |",
            f"| the same, decoded | 1 | {loads['transfer']['total_decoded'] / 1024:.1f} KB | | |",
            row("first contentful paint, `/`", loads["fcp_ms"]["chat"]),
            row("first contentful paint, `GET /health`", loads["fcp_ms"]["health"]),
        ]
    if "page_turns" in results:
        turns = results["page_turns"]["turns"]
        for new_chat, kind in ((True, "new chat"), (False, "follow-up")):
            rows = [r for r in turns if r["new_chat"] is new_chat]
            lines += [
                row(f"Send → first rendered token ({kind})", [r["send_to_token_ms"] for r in rows]),
                row(
                    f"API: request → first answer event, seen by the page ({kind})",
                    [r["api_first_text_ms"] for r in rows],
                ),
                row(
                    f"**added by the page** ({kind})", [r["page_added_ms"] for r in rows], "≤ 30 ms"
                ),
            ]
            if new_chat:
                created = [r["create_session_ms"] for r in rows]
                lines.append(row("of which `POST /api/v1/chat` (creating the chat)", created))
        lines.append(row("API: request → first answer event, httpx", results["api_first_text_ms"]))
    if "sidebar" in results:
        sidebar = results["sidebar"]
        lines += [
            row(
                f"sidebar, each next page of 50 ({sidebar['shown']:,} sessions)",
                sidebar["page_ms"],
                "≤ 50 ms",
            ),
            row("of which rendering and layout", sidebar["render_ms"]),
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="cold page loads of each kind")
    parser.add_argument("--turns", type=int, default=20, help="turns asked through the page")
    parser.add_argument("--sessions", type=int, default=10_000, help="sessions in the sidebar")
    parser.add_argument(
        "--parts", default="loads,turns,sidebar", help="what to measure (comma-separated)"
    )
    args = parser.parse_args()
    results = run(args)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"page-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    print(report(results))
    print(f"\nload average {results['environment']['load_average']}; results in {out}")
    print("server log problems:", results["server_problems"])


if __name__ == "__main__":
    sys.exit(main())
