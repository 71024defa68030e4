"""What oversized requests from a client without a key cost the server: time to the answer and
the server's resident memory before and after.

    python bench/bench_hostile_requests.py [--mib 400]

Starts ``indexchat serve`` on a fresh data dir and sends, over raw sockets, each of: a text/plain
body of ``--mib`` MiB to ``POST /api/v1/chat``, a multipart upload of ``--mib`` MiB to
``POST /api/v1/beta/files`` (both without a key), and a request whose one header grows until the
server answers (at most 64 MiB). The body is sent as fast as the server takes it, until the
server answers or closes the connection. Baseline: ``GET /health`` on a fresh connection.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from common import free_port, serve, stop

CHUNK = 1024 * 1024


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def send(port: int, head: bytes, body_mib: int, filler: bytes = b"x" * CHUNK) -> tuple[str, float]:
    """Send ``head`` then up to ``body_mib`` MiB; return (status line or what happened, seconds)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        sent = 0
        while sent < body_mib and b"\r\n" not in answer:
            try:
                answer += sock.recv(65536)
                if not answer:
                    break
            except BlockingIOError:
                pass
            try:
                sock.send(filler)
                sent += 1
            except BlockingIOError:
                time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        sock.settimeout(120)
        try:
            while b"\r\n" not in answer:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    status = answer.split(b"\r\n", 1)[0].decode("latin-1") or "connection closed"
    return f"{status} after {sent} MiB sent", time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=400)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="indexchat-bench-hostile-"))
    port = free_port()
    env = {**os.environ, "INDEXCHAT_LLM": "extractive"}
    server = serve(env, port, args=("--data-dir", str(work)), timeout=30)
    try:
        base = f"http://127.0.0.1:{port}"
        time.sleep(3)  # the model loads in the background after start
        health = []
        for _ in range(20):
            started = time.perf_counter()
            httpx.get(f"{base}/health")
            health.append((time.perf_counter() - started) * 1000)
        mib = args.mib * CHUNK
        cases = {
            f"{args.mib} MiB text/plain to POST /api/v1/chat, no key": (
                b"POST /api/v1/chat HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\n\r\n" % mib,
                args.mib,
            ),
            f"{args.mib} MiB multipart to POST /api/v1/beta/files, a bad key": (
                b"POST /api/v1/beta/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer llx-bad\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n"
                % mib,
                args.mib,
            ),
            "one header growing up to 64 MiB": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ", 64),
        }
        print(f"baseline GET /health: median {statistics.median(health):.1f} ms\n")
        print("| request | answer | seconds | server RSS before → after, MiB |")
        print("|---|---|---|---|")
        for name, (head, size) in cases.items():
            before = rss_mib(server.pid)
            answer, seconds = send(port, head, size)
            time.sleep(0.5)
            after = rss_mib(server.pid)
            print(f"| {name} | {answer} | {seconds:.2f} | {before:.0f} → {after:.0f} |")
    finally:
        stop(server)


if __name__ == "__main__":
    main()
