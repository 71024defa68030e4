"""Rate limits per API key and per browser sign-in, through the official SDK over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import llama_cloud
import pytest
from factories import LiveServer, live_server, make_tenant, signed_in
from llama_cloud import LlamaCloud

from indexchat.config import Settings
from indexchat.services import tenancy
from indexchat.services.rate_limits import RateLimiter

# One request a second, two at once: the third in a row waits a second.
STRICT = {"rate_limit_requests": 2, "rate_limit_window_seconds": 2.0, "rate_limit_burst": 2}


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("rate"), **STRICT)  # type: ignore[arg-type]
    with live_server(settings, "sqlite") as running:
        yield running


def test_the_limiter_allows_a_burst_then_its_pace() -> None:
    limiter = RateLimiter(2, 2.0, burst=3)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a")
    assert 0.9 < wait <= 1.0  # one request per second refills
    assert limiter.take("b") == 0.0  # keys are counted apart
    time.sleep(wait)
    assert limiter.take("a") == 0.0 and limiter.take("a") > 0


def test_recorded_events_count_whatever_the_allowance() -> None:
    limiter = RateLimiter(3, 60.0)
    for _ in range(3):
        assert limiter.wait("x") == 0.0
        limiter.record("x")
    assert 19 < limiter.wait("x") <= 20  # one place frees every 20 s


def test_a_key_past_its_allowance_gets_429_with_retry_after(strict: LiveServer) -> None:
    tenant = make_tenant(strict)
    client = strict.sdk(tenant.api_key)  # max_retries=0
    client.chat.create()
    client.chat.list()
    with pytest.raises(llama_cloud.RateLimitError) as refused:
        client.chat.list()
    response = refused.value.response
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert "too many requests" in response.json()["detail"]
    # Another key of the same project has its own allowance.
    with strict.runtime.db.write() as tx:
        other = tenancy.create_key(
            tx, project=tenant.project, organization=tenant.organization
        ).secret
    assert len(strict.sdk(other).chat.list().items) == 1


def test_the_sdk_waits_for_retry_after_and_succeeds(strict: LiveServer) -> None:
    tenant = make_tenant(strict)
    patient = LlamaCloud(api_key=tenant.api_key, base_url=strict.base_url, max_retries=2)
    patient.chat.create()
    patient.chat.create()
    started = time.monotonic()
    created = patient.chat.create()  # refused once, retried after the second it was told
    assert created.session_id and time.monotonic() - started >= 0.9
    assert len(patient.chat.list(page_size=10).items) == 3


def test_a_browser_sign_in_has_its_own_allowance(strict: LiveServer) -> None:
    tenant = make_tenant(strict)
    with signed_in(strict, tenant.api_key) as browser:
        answers = [browser.get("/api/v1/chat").status_code for _ in range(3)]
        assert answers == [200, 200, 429]
        limited = browser.get("/api/v1/chat")
        assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
        # The key that made the sign-in is counted apart from it.
        assert tenant.client.chat.list().items == []


def test_limits_leave_pages_and_health_alone(strict: LiveServer) -> None:
    tenant = make_tenant(strict)
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    with httpx.Client(base_url=strict.base_url, headers=headers) as http:
        assert [http.get("/health").status_code for _ in range(5)] == [200] * 5
        assert [http.get("/api/v1/chat").status_code for _ in range(2)] == [200, 200]


def test_the_default_allowance_is_far_above_a_busy_client(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = Settings(data_dir=tmp_path_factory.mktemp("default-rate"))
    assert settings.rate_limit_requests and settings.rate_limit_burst >= 500
    with live_server(settings, "sqlite") as running:
        tenant = make_tenant(running)
        for _ in range(300):  # as fast as one client goes, back to back
            tenant.client.chat.list(page_size=1)


def test_zero_turns_the_limit_off(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("no-rate"), rate_limit_requests=0, rate_limit_burst=1
    )
    with live_server(settings, "sqlite") as running:
        tenant = make_tenant(running)
        for _ in range(5):
            tenant.client.chat.list(page_size=1)
