"""A schemathesis run over a served indexchat's OpenAPI document with a valid key, tallied.

Every operation goes through the coverage, fuzzing and stateful phases, in positive and negative
mode, with a fixed seed. Each response passes through the built-in checks, and every check failure
is counted by kind with the first one kept as an example. Hypothesis never sees a failure, so
nothing is shrunk or replayed and the counts are counts of responses.

``bench/fuzz.py`` makes a long run of this; ``tests/test_openapi_fuzz.py`` a short one.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx
import jsonschema
import schemathesis
from factories import LiveServer, Tenant, add_index, make_tenant
from schemathesis.checks import CHECKS, CheckContext, load_all_checks, run_checks
from schemathesis.core.failures import Failure
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.transport import Response
from schemathesis.engine import events, from_schema
from schemathesis.generation.case import Case

# The kinds the run is judged on, by the built-in check that finds them.
KINDS = {
    "not_a_server_error": "5xx responses",
    "negative_data_rejection": "accepted schema violations",
    "status_code_conformance": "undocumented status codes",
    "content_type_conformance": "undocumented content types",
}

# positive_data_acceptance expects any schema-valid request to succeed; a random string can
# never be a valid opaque page token (the server rightly answers 400), so that check is skipped.
SKIPPED_CHECKS = {"positive_data_acceptance"}

# Invalid requests may also be refused for their size: 413 (body), 414 (URL), 431 (headers),
# each documented on every operation.
REJECTION_STATUSES = [
    "400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429",
    "431", "5xx",
]  # fmt: skip

# The hypothesis health checks judge the generator, not the API: a schema whose strategies are
# slow to draw on a loaded machine would otherwise end that operation's phase with an error.
SUPPRESSED_HEALTH_CHECKS = ["too_slow", "filter_too_much", "data_too_large", "large_base_example"]

# Fuzzing and stateful cases per --cases: the coverage phase sends what the schema implies (a
# fixed number), fuzzing gets half the budget spread over the operations, stateful a quarter.
FUZZING_SHARE = 0.5
STATEFUL_SHARE = 0.25
STEPS_PER_SCENARIO = 6  # schemathesis' default; scenarios often end sooner


@dataclass(frozen=True)
class Budget:
    """Examples per operation for the fuzzing phase and scenarios for the stateful phase."""

    fuzzing_per_operation: int
    stateful_scenarios: int

    @classmethod
    def for_cases(cls, cases: int, operations: int) -> Budget:
        return cls(
            fuzzing_per_operation=max(1, math.ceil(cases * FUZZING_SHARE / operations)),
            stateful_scenarios=max(1, math.ceil(cases * STATEFUL_SHARE / STEPS_PER_SCENARIO)),
        )


@dataclass
class Finding:
    count: int = 0
    example: str = ""


@dataclass
class Tally:
    """What a run sent and what the checks found, safe to update from the engine's workers."""

    cases: Counter[tuple[str, str]] = field(default_factory=Counter)  # (phase, mode) -> cases
    operations: set[str] = field(default_factory=set)  # labels of the operations sent a case
    findings: dict[str, Finding] = field(default_factory=dict)  # check name -> finding
    valid_as_sent: int = 0  # "invalid" multipart bodies whose bytes make a valid request
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def count(self, check: str) -> int:
        finding = self.findings.get(check)
        return finding.count if finding else 0

    @property
    def clean(self) -> bool:
        return not self.errors and not any(f.count for f in self.findings.values())

    def record_case(self, case: Case) -> None:
        meta = case.meta
        key = (meta.phase.name.value, meta.generation.mode.value) if meta else ("?", "?")
        with self._lock:
            self.cases[key] += 1
            self.operations.add(case.operation.label)

    def record_failure(self, check: str, case: Case, response: Response, failure: Failure) -> None:
        with self._lock:
            finding = self.findings.setdefault(check, Finding())
            finding.count += 1
            if not finding.example:
                finding.example = describe(case, response, failure)

    def record_valid_as_sent(self) -> None:
        with self._lock:
            self.valid_as_sent += 1

    def report(self) -> str:
        phases: dict[str, dict[str, int]] = {}
        for (phase, mode), n in sorted(self.cases.items()):
            phases.setdefault(phase, {})[mode] = n
        lines = [f"cases: {self.total} over {len(self.operations)} operations"]
        for phase, modes in phases.items():
            per_mode = ", ".join(f"{mode} {n}" for mode, n in modes.items())
            lines.append(f"  {phase}: {sum(modes.values())} ({per_mode})")
        others = sorted(name for name in self.findings if name not in KINDS)
        for name in [*KINDS, *others]:
            finding = self.findings.get(name, Finding())
            lines.append(f"{KINDS.get(name, f'other: {name}')}: {finding.count}")
            if finding.example:
                lines.extend("    " + line for line in finding.example.splitlines())
        lines.append(f"negative multipart cases valid as sent (not counted): {self.valid_as_sent}")
        lines.append(f"errors: {len(self.errors)}")
        lines.extend("    " + line for error in self.errors[:5] for line in error.splitlines())
        return "\n".join(lines)


def describe(case: Case, response: Response, failure: Failure) -> str:
    meta = case.meta
    how = f"{meta.phase.name.value}, {meta.generation.mode.value}" if meta else "?"
    message = "\n".join(failure.message.splitlines()[:6])
    return (
        f"{case.operation.label} -> {response.status_code} ({how}): {failure.title}\n"
        f"{message}\n{case.as_curl_command()}"
    )


_active: Tally | None = None


@schemathesis.check
def indexchat_tally(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Run the built-in checks on one response and count what they find, raising nothing."""
    tally = _active
    assert tally is not None, "indexchat_tally runs only inside fuzzing.run"
    tally.record_case(case)
    run_checks(
        case=case,
        response=response,
        ctx=ctx,
        checks=built_in_checks(),
        on_failure=lambda name, _seen, failure: (
            tally.record_valid_as_sent()
            if name == "negative_data_rejection" and multipart_valid_as_sent(case, response)
            else tally.record_failure(name, case, response, failure)
        ),
    )
    return None


def multipart_valid_as_sent(case: Case, response: Response) -> bool:
    """Whether a multipart body generated as invalid is, in the bytes sent, a valid one.

    Every multipart part is bytes: a text field is read as text (or parsed as JSON), a file part
    holds whatever bytes it carries. Schemathesis reads the text parts as sent, but judges a file
    part by the value it generated, so ``file=false`` (a file of five bytes, which the server
    rightly stores) would count as an accepted violation. Only a case whose sole negative part is
    the body is judged here; a missing required field or a repeated one stays a violation.
    """
    meta = case.meta
    media_type = case.media_type or ""
    if meta is None or not media_type.startswith("multipart/form-data"):
        return False
    if any(
        component.mode.is_negative
        for location, component in meta.components.items()
        if location is not ParameterLocation.BODY
    ):
        return False
    body = case.operation.get_body_for_media_type(media_type)
    parts = _sent_parts(response)
    if body is None or parts is None or any(len(values) > 1 for values in parts.values()):
        return False
    try:
        return _valid_form(jsonschema.Draft202012Validator(body.optimized_schema), parts)
    except jsonschema.exceptions.RefResolutionError:  # a schema it cannot read: no judgement
        return False


def _valid_form(
    validator: jsonschema.Draft202012Validator, parts: dict[str, list[str | None]]
) -> bool:
    """Whether some reading of each part (text, or text parsed as JSON) makes a valid body."""
    instance: dict[str, object] = {}
    for name, (value,) in parts.items():
        readings: list[object] = [""]  # a file part: any bytes are a binary string
        if value is not None:
            readings = [value]
            try:
                readings.append(json.loads(value))
            except ValueError:
                pass
        instance[name] = next(
            (r for r in readings if validator.is_valid({**instance, name: r})), readings[0]
        )
    return bool(validator.is_valid(instance))


def _sent_parts(response: Response) -> dict[str, list[str | None]] | None:
    """The parts of the multipart body sent: name -> texts, None for each file part."""
    content = response.request.body
    if isinstance(content, str):
        content = content.encode()
    if not isinstance(content, bytes):
        return None
    content_type = response.request.headers.get("Content-Type", "")
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    parts: dict[str, list[str | None]] = {}
    for part in BytesParser(policy=HTTP).parsebytes(head + content).iter_parts():
        name = str(part.get_param("name", header="content-disposition"))
        payload = part.get_payload(decode=True)
        is_text = part.get_filename() is None and isinstance(payload, bytes)
        parts.setdefault(name, []).append(payload.decode(errors="replace") if is_text else None)
    return parts


def built_in_checks() -> list[Any]:
    load_all_checks()
    return [
        check
        for check in CHECKS.get_all()
        if check is not indexchat_tally and check.__name__ not in SKIPPED_CHECKS
    ]


def seed_data(server: LiveServer) -> Tenant:
    """A tenant with an index and a few sessions: something to list, page through and fetch."""
    tenant = make_tenant(server)
    add_index(server, tenant.scope, "fuzz")
    for _ in range(3):
        tenant.client.chat.create()
    return tenant


def config(
    api_key: str, budget: Budget, *, seed: int, workers: int = 1, phases: tuple[str, ...] = ()
) -> schemathesis.Config:
    """The run's configuration; ``phases`` limits it to those (all when empty)."""
    enabled = phases or ("examples", "coverage", "fuzzing", "stateful")
    generation = {"mode": "all", "max-examples": budget.fuzzing_per_operation}
    return schemathesis.Config.from_dict(
        {
            "seed": seed,
            "suppress-health-check": SUPPRESSED_HEALTH_CHECKS,
            "headers": {"Authorization": f"Bearer {api_key}"},
            "workers": workers,
            "checks": {
                "enabled": False,
                "indexchat_tally": {"enabled": True},
                "negative_data_rejection": {"expected-statuses": REJECTION_STATUSES},
            },
            "generation": generation,
            "phases": {
                "examples": {"enabled": "examples" in enabled},
                "coverage": {"enabled": "coverage" in enabled},
                "fuzzing": {"enabled": "fuzzing" in enabled},
                "stateful": {
                    "enabled": "stateful" in enabled,
                    "generation": {**generation, "max-examples": budget.stateful_scenarios},
                },
            },
        }
    )


def operation_labels(base_url: str) -> set[str]:
    """``METHOD /path`` of every operation in the served document, as schemathesis labels them."""
    document = httpx.get(f"{base_url}/openapi.json").json()
    return {
        f"{method.upper()} {path}"
        for path, methods in document["paths"].items()
        for method in methods
        if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    }


def run(
    base_url: str,
    run_config: schemathesis.Config,
    tally: Tally | None = None,
    progress: Callable[[str], None] | None = None,
) -> Tally:
    """One engine run over ``base_url``'s document; adds to ``tally`` when given. ``progress``
    hears of each phase's end."""
    global _active
    tally = tally if tally is not None else Tally()
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=run_config)
    _active = tally
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.NonFatalError):
                tally.errors.append(f"{event.label}: {event.info.title}\n{event.info.message}")
            elif isinstance(event, events.PhaseFinished) and progress is not None:
                progress(f"{event.phase.name.value} {event.status.value}: {tally.total} cases")
            elif isinstance(event, events.FatalError):
                raise RuntimeError(f"schemathesis could not run: {event.exception}")
    finally:
        _active = None
    return tally
