"""A schemathesis run over /openapi.json with a valid key: no 5xx, responses match the schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import LiveServer, add_index, make_tenant

# positive_data_acceptance expects any schema-valid request to succeed; a random string can
# never be a valid opaque page token (the server rightly answers 400), so that check is skipped.
EXCLUDED_CHECKS = "positive_data_acceptance"


def test_schemathesis_finds_no_failures(server: LiveServer, tmp_path: Path) -> None:
    tenant = make_tenant(server)
    add_index(server, tenant.scope, "fuzz")
    for _ in range(3):  # something to list, page through and fetch
        tenant.client.chat.create()

    for _attempt in range(3):
        result = _run_schemathesis(server, tenant.api_key, tmp_path)
        # A CPython 3.11 bug inside hypothesis' lambda pretty-printer sometimes kills the run
        # itself ("AST constructor recursion depth mismatch"); that says nothing about our API.
        if TOOL_CRASH not in result.stdout:
            break

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert selected and tested, result.stdout[-3000:]
    assert tested.group(1) == selected.group(1) == selected.group(2), result.stdout[-3000:]


TOOL_CRASH = "AST constructor recursion depth mismatch"


# Invalid requests may also be refused for their size: 413 (body), 414 (URL), 431 (headers),
# each documented on every operation.
SCHEMATHESIS_CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [
    "400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429",
    "431", "5xx",
]
"""


def _run_schemathesis(
    server: LiveServer, api_key: str, workdir: Path
) -> subprocess.CompletedProcess[str]:
    (workdir / "schemathesis.toml").write_text(SCHEMATHESIS_CONFIG)  # read from the cwd
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "run",
            f"{server.base_url}/openapi.json",
            "-H",
            f"Authorization: Bearer {api_key}",
            "--checks",
            "all",
            "--exclude-checks",
            EXCLUDED_CHECKS,
            "--max-examples",
            "40",
            "--workers",
            "1",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=workdir,
    )
