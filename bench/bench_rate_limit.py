"""What the per-credential rate limit adds to one request, measured in-process.

    python bench/bench_rate_limit.py [--requests 200000] [--repeats 5] [--keys 1000]

Drives the ``RateLimit`` middleware around a no-op ASGI app with requests carrying a Bearer
key (``--keys`` distinct keys in turn, as many clients would) or a sign-in cookie, against the
no-op app alone (the baseline), in one run. The allowance is never reached, so every request
goes through. Reports the median time per request of each over ``--repeats`` rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import time

from common import median

from indexchat.api.guards import RateLimit
from indexchat.services.rate_limits import RateLimiter


async def _noop(scope: object, receive: object, send: object) -> None:
    return None


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, object]:
    return {"type": "http", "path": "/api/v1/chat", "method": "GET", "headers": headers}


async def _per_request(app: object, scopes: list[dict[str, object]], requests: int) -> float:
    started = time.perf_counter()
    count = len(scopes)
    for n in range(requests):
        await app(scopes[n % count], None, None)  # type: ignore[operator]
    return (time.perf_counter() - started) / requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keys", type=int, default=1000)
    args = parser.parse_args()
    common = [(b"host", b"127.0.0.1:8000"), (b"accept", b"application/json")]
    keyed = [
        _scope([*common, (b"authorization", f"Bearer llx-{n:040d}".encode())])
        for n in range(args.keys)
    ]
    cookie = [_scope([*common, (b"cookie", b"theme=dark; session=" + b"t" * 43)])]
    limiter = RateLimiter(10**12, 60.0, burst=10**12)
    limited = RateLimit(_noop, limiter, prefixes=("/api/",))  # type: ignore[arg-type]
    cases = {"no-op app (baseline)": (_noop, keyed), "+ limit, Bearer": (limited, keyed)}
    cases["+ limit, cookie"] = (limited, cookie)
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, (app, scopes) in cases.items():
            results[name].append(asyncio.run(_per_request(app, scopes, args.requests)))
    base = median(results["no-op app (baseline)"])
    print(f"\n## Rate limit cost per request (median of {args.repeats} x {args.requests:,})\n")
    print("| case | µs per request | added µs |")
    print("|---|---|---|")
    for name, runs in results.items():
        middle = median(runs)
        print(f"| {name} | {middle * 1e6:.2f} | {(middle - base) * 1e6:+.2f} |")
    print(f"\nmachine: {platform.platform()}, Python {platform.python_version()}")


if __name__ == "__main__":
    main()
