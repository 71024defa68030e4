"""Bounded parsing: zip bombs, parse time and memory limits, nested HTML, cancel during a parse,
and one project's long sync leaving the others to run.

The sync tests start ``indexchat serve`` on each backend (see deployments.py) with hostile
files generated here: a DOCX whose document.xml expands ~20x to 190 MB (it passes a check of
the total and of the ratio, and parsing it took minutes and gigabytes), and DOCX files of a few
MB of XML, which take seconds to parse (~3.5 s per MB).
"""

from __future__ import annotations

import io
import random
import time
import zipfile
from collections.abc import Iterator
from datetime import timedelta

import pytest
from deployments import Deployment, wait_until
from factories import failures, sync_and_wait, upload_index
from llama_cloud import LlamaCloud
from sqlalchemy import select

from indexchat.ingest.parsers import DEFAULT_LIMITS, MB, ParseError, check_zip, parse
from indexchat.ingest.sandbox import ParseInterrupted, ParseSandbox, SandboxLimits
from indexchat.services import tenancy
from indexchat.storage import jobs
from indexchat.storage.tables import ParsedFile

_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
    b'package/2006/content-types"><Default Extension="rels" ContentType="application/'
    b'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType='
    b'"application/xml"/><Override PartName="/word/document.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats'
    b'.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
    b'openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/'
    b'document.xml"/></Relationships>'
)


def docx(xml_megabytes: float) -> bytes:
    """A valid DOCX whose document.xml holds about this many MB of varied paragraphs."""
    rng = random.Random(16)
    words = [f"word{n}" for n in range(300)]
    block = "".join(
        f"<w:p><w:r><w:t>{' '.join(rng.choices(words, k=12))}</w:t></w:r></w:p>" for _ in range(40)
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        with archive.open("word/document.xml", "w") as member:
            member.write(
                b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
                b'wordprocessingml/2006/main"><w:body>'
            )
            written = 0
            while written < xml_megabytes * MB:
                unique = f"<w:p><w:r><w:t>{rng.random()}</w:t></w:r></w:p>"
                part = (block + unique).encode()
                member.write(part)
                written += len(part)
            member.write(b"</w:body></w:document>")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = docx(190)
    members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    document = next(m for m in members if m.filename == "word/document.xml")
    # What the total and the ratio checks alone let through:
    assert sum(m.file_size for m in members) < 200 * MB
    assert document.file_size < 100 * document.compress_size
    return data


def test_docx_expanding_past_the_member_limit_is_refused_before_parsing(bomb: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(ParseError, match="zip bomb.*word/document.xml expands to 190 MB"):
        check_zip(bomb, "DOCX", DEFAULT_LIMITS)
    with pytest.raises(ParseError, match="zip bomb"):
        parse(bomb, "report.docx")
    assert time.monotonic() - started < 2


def test_deeply_nested_html_is_read_in_linear_time() -> None:
    nested = ("<div>" * 200_000 + "deep <b>text</b> &amp; more" + "</div>" * 200_000).encode()
    started = time.monotonic()
    document = parse(nested, "deep.html")
    assert time.monotonic() - started < 1.5  # was ~20 s (and ~500 MB) for these 2.2 MB
    assert document.pages[0].text == "deep text & more"
    unclosed = ("<p>" * 300_000 + "end").encode()
    started = time.monotonic()
    assert parse(unclosed, "unclosed.html").pages[0].text == "end"
    assert time.monotonic() - started < 1.5


def test_html_left_open_at_the_end_is_read_in_linear_time() -> None:
    parse(b"<p>warm</p>", "warm.html")  # the converters' first import is not the input's cost
    for tail in ("<a " * 8000, "<!-- x>" * 8000):  # 24 KB and 56 KB: 11 s and 1.4 s before
        started = time.monotonic()
        assert parse(f"<p>kept</p>{tail}".encode(), "open.html").pages[0].text == "kept"
        assert time.monotonic() - started < 0.5
    assert parse(b"<p>a &lt; b</p> then 1 < 2", "text.html").pages[0].text == "a < b\n\nthen 1 < 2"


def test_html_nested_within_the_limit_keeps_its_markdown() -> None:
    html = "<div>" * 100 + "<h2>Title</h2><p>Body</p>" + "</div>" * 100
    assert parse(html.encode(), "page.html").pages[0].text == "## Title\n\nBody"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ParseSandbox]:
    with ParseSandbox(SandboxLimits(timeout_seconds=1.5, memory_bytes=1024 * MB)) as box:
        yield box


def test_a_parse_past_the_time_limit_is_killed_and_the_next_file_parses(
    sandbox: ParseSandbox,
) -> None:
    assert sandbox.parse(b"warm", "a.txt").document.pages[0].text == "warm"
    slow = docx(3)  # ~10 s of parsing
    started = time.monotonic()
    with pytest.raises(ParseError, match=r"file exceeds the parse time limit \(1.5 s\)"):
        sandbox.parse(slow, "slow.docx")
    assert time.monotonic() - started < 4
    assert sandbox.parse(b"after", "b.txt").document.pages[0].text == "after"


def test_a_parse_past_the_memory_limit_fails_alone() -> None:
    limits = SandboxLimits(timeout_seconds=60, memory_bytes=512 * MB)
    with ParseSandbox(limits) as box:
        with pytest.raises(ParseError, match=r"file exceeds the parse memory limit \(512 MB\)"):
            box.parse(b"x" * (90 * MB), "big.txt")
        assert box.parse(b"small", "c.txt").document.pages[0].text == "small"


def test_an_interrupted_parse_is_killed_at_once(sandbox: ParseSandbox) -> None:
    sandbox.parse(b"warm", "a.txt")
    asked = time.monotonic() + 0.5
    started = time.monotonic()
    with pytest.raises(ParseInterrupted):
        sandbox.parse(docx(3), "slow.docx", interrupted=lambda: time.monotonic() > asked)
    assert time.monotonic() - started < 1.5


# ---- syncs, on each backend ---------------------------------------------------------------


def test_sync_fails_a_zip_bomb_and_a_slow_file_alone(deployment: Deployment, bomb: bytes) -> None:
    deployment.serve(parse_timeout_seconds=1.5)
    client = deployment.client
    index_id = upload_index(
        client,
        {"bomb.docx": bomb, "slow.docx": docx(3), "notes.txt": b"The zq0001x marker is here."},
    )
    started = time.monotonic()
    metadata = sync_and_wait(client, index_id)
    assert time.monotonic() - started < 30
    assert (metadata["files_parsed"], metadata["files_failed"]) == (1, 2)
    errors = failures(metadata)
    assert "possible zip bomb" in errors["bomb.docx"]
    assert errors["slow.docx"] == "file exceeds the parse time limit (1.5 s)"
    hits = client.retrieval.retrieve(index_id=index_id, query="zq0001x", top_k=3).results
    assert ["zq0001x" in hit.content for hit in hits][:1] == [True]

    # The file that overran is not parsed again by the next sync: it changed in nothing.
    with deployment.db.read() as tx:
        before = tx.scalar(select(ParsedFile).where(ParsedFile.file_name == "slow.docx"))
    assert before is not None
    assert failures(sync_and_wait(client, index_id)) == errors
    with deployment.db.read() as tx:
        after = tx.get(ParsedFile, before.id)
    assert after is not None and after.updated_at == before.updated_at


def test_cancel_ends_a_sync_while_a_file_is_being_parsed(deployment: Deployment) -> None:
    deployment.serve()
    client = deployment.client
    index_id = upload_index(client, {"slow.docx": docx(8), "notes.txt": b"zq0002x"})
    assert client.indexes.sync(index_id)["status"] == "started"
    wait_until(lambda: deployment.job(index_id).status == "running", "the sync to start")
    time.sleep(3)  # the parser process starts (~1 s) and is well into slow.docx (~30 s)
    assert deployment.job(index_id).status == "running"
    client.indexes.cancel_sync(index_id)
    asked = time.monotonic()
    wait_until(lambda: deployment.job(index_id).status == "cancelled", "the cancel", 30)
    assert time.monotonic() - asked < 5
    assert client.indexes.get(index_id).metadata["last_sync_status"] == "cancelled"


def test_a_long_sync_of_one_project_leaves_other_projects_syncing(
    deployment: Deployment,
) -> None:
    deployment.serve()
    slow_index = upload_index(deployment.client, {"slow.docx": docx(8)})
    with deployment.db.write() as tx:
        tenancy.create_project(tx, "other")
        other_key = tenancy.create_key(tx, project="other").secret
    other = LlamaCloud(api_key=other_key, base_url=deployment.base_url, max_retries=0)
    quick_index = upload_index(other, {"notes.txt": b"The zq0003x marker."})
    assert deployment.client.indexes.sync(slow_index)["status"] == "started"
    wait_until(lambda: deployment.job(slow_index).status == "running", "the slow sync")
    metadata = sync_and_wait(other, quick_index, timeout=20)
    assert metadata["files_parsed"] == 1
    assert deployment.job(slow_index).status == "running"
    deployment.client.indexes.cancel_sync(slow_index)


def test_a_sync_whose_worker_vanished_on_every_attempt_is_not_retried(
    deployment: Deployment,
) -> None:
    """Its file may be what kills the worker: after the last attempt the job fails for good."""
    deployment.serve(run_worker="false")
    index_id = upload_index(deployment.client, {"notes.txt": b"zq0004x"})
    assert deployment.client.indexes.sync(index_id)["status"] == "started"
    with deployment.db.write() as tx:
        job = jobs.active_for_index(tx, index_id)
        assert job is not None
        job.status, job.attempts, job.locked_by = "running", jobs.MAX_ATTEMPTS, "gone:1:x"
        job.locked_until = job.updated_at - timedelta(seconds=1)
    worker = deployment.worker("worker", "--exit-when-idle")
    assert worker.wait(120) == 0
    failed = deployment.job(index_id)
    assert (failed.status, failed.attempts, failed.error) == ("failed", 5, jobs.GAVE_UP)
    metadata = deployment.client.indexes.get(index_id).metadata
    assert (metadata["last_sync_status"], metadata["last_error"]) == ("failed", jobs.GAVE_UP)
