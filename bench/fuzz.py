"""Fuzz every operation of a real indexchat server and count what is wrong.

    python bench/fuzz.py [--cases 10000] [--seed 1] [--workers 1]

Starts indexchat (SQLite, a fresh data dir, a seeded API key and a few sessions, as the tests
do) and runs schemathesis over its /openapi.json with that key: the coverage phase, then the
fuzzing and stateful phases sized so the cases add up to at least ``--cases``; a phase that
comes up short is run again with the next seed. Prints the cases per phase and mode, then
the counts of 5xx responses, accepted schema violations (an invalid request answered 2xx),
undocumented status codes, undocumented content types and any other check failure, each with
one example as a curl command. Exits 1 if any count is not zero.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

sys.path.insert(0, str(ROOT / "tests"))

import fuzzing  # noqa: E402 - the CI run's configuration, from tests/
from factories import live_server  # noqa: E402 - the tests' way of starting a server

from indexchat.config import Settings  # noqa: E402


def progress(message: str, started: float = time.monotonic()) -> None:
    print(f"[{time.monotonic() - started:6.0f} s] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="at least this many cases")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="indexchat-fuzz-") as data_dir,
        live_server(Settings(data_dir=Path(data_dir)), "sqlite") as server,
    ):
        tenant = fuzzing.seed_data(server)
        operations = len(fuzzing.operation_labels(server.base_url))
        budget = fuzzing.Budget.for_cases(args.cases, operations)
        print(f"{operations} operations; {budget}", flush=True)
        tally = fuzzing.run(
            server.base_url,
            fuzzing.config(tenant.api_key, budget, seed=args.seed, workers=args.workers),
            progress=progress,
        )
        seed = args.seed
        while tally.total < args.cases:
            seed += 1
            missing = args.cases - tally.total
            print(f"{tally.total} cases so far; {missing} more with seed {seed}", flush=True)
            more = fuzzing.Budget.for_cases(missing, operations)
            before = tally.total
            fuzzing.run(
                server.base_url,
                fuzzing.config(
                    tenant.api_key,
                    more,
                    seed=seed,
                    workers=args.workers,
                    phases=("fuzzing", "stateful"),
                ),
                tally,
                progress,
            )
            if tally.total == before:
                break  # nothing left to draw
    print(tally.report())
    print(f"seconds: {time.monotonic() - started:.0f}")
    return 0 if tally.clean else 1


if __name__ == "__main__":
    sys.exit(main())
