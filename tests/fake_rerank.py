"""A scripted rerank server: a real HTTP server on a loopback port speaking the common
``/rerank`` protocol (vLLM, llama.cpp, TEI, Jina, Cohere): ``POST {model, query, documents,
top_n}`` answered by ``{"results": [{"index", "relevance_score"}, ...]}``, best first.

It scores a document by the share of the query's distinct words it contains, ties broken by
the shorter document, so a test can tell what order it will give. Tests queue faults with
``script(...)`` and read what was sent in ``requests``:

    http_500    an error status with a JSON error body
    hang        never answers (the client's timeout fires)
    garbage     200 with a body that is not JSON
    bad_index   200 with a result pointing past the documents sent
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Literal

from loopback import ProviderHandler, ScriptedServer

Fault = Literal["http_500", "hang", "garbage", "bad_index"]
PATH = "/v1/rerank"


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def overlap_score(query: str, document: str) -> float:
    """Share of the query's distinct words found in the document, minus a hair per character
    so that, of two documents with the same words, the shorter ranks first."""
    asked = words(query)
    if not asked:
        return 0.0
    return len(asked & words(document)) / len(asked) - len(document) * 1e-6


class FakeReranker(ScriptedServer[Fault]):
    """The server. It starts on construction; ``close()`` (or leaving ``with``) stops it."""

    def __init__(
        self,
        api_key: str | None = None,
        port: int = 0,
        score: Callable[[str, str], float] = overlap_score,
    ) -> None:
        self.api_key = api_key  # when set, requests without this Bearer key get 401
        self.score = score  # (query, document) -> relevance
        super().__init__(_Handler, port)
        self.url = f"http://{self.host}:{self.port}{PATH}"

    def reset(self) -> None:
        """Drop queued faults and the requests recorded so far."""
        self._forget(requests=True)


class _Handler(ProviderHandler):
    def do_POST(self) -> None:
        fake: FakeReranker = self.server.fake
        if self.path != PATH:
            self._send_json(404, {"error": f"no route {self.path}"})
            return
        if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            self._send_json(401, {"error": "invalid api key"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            query, documents = body["query"], body["documents"]
        except (ValueError, KeyError, TypeError):
            self._send_json(400, {"error": "expected {query, documents}"})
            return
        fault = fake._record(body)
        if fault == "hang":
            fake._closing.wait()
            self.close_connection = True
            return
        if fault == "http_500":
            self._send_json(500, {"error": "the model crashed"})
            return
        if fault == "garbage":
            self._send_bytes(200, b"<html>upstream proxy error</html>", "text/html")
            return
        ranked = sorted(
            [
                {"index": i, "relevance_score": fake.score(query, d)}
                for i, d in enumerate(documents)
            ],
            key=lambda r: -r["relevance_score"],
        )
        ranked = ranked[: body.get("top_n") or len(ranked)]
        if fault == "bad_index" and ranked:
            ranked[0]["index"] = len(documents) + 3
        self._send_json(200, {"model": body.get("model"), "results": ranked})
