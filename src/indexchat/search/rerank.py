"""Rerankers: reorder search candidates by a model's relevance to the query.

``HttpReranker`` speaks the ``/rerank`` protocol that vLLM, llama.cpp's server, Hugging Face TEI,
Jina and Cohere share: ``POST {model, query, documents, top_n}`` answered by
``{"results": [{"index", "relevance_score"}, ...]}``. Anything else a server answers (an error
status, a timeout, a body that does not fit) is a ``RerankFailed``; callers fall back to the
order they had.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx
from pydantic import BaseModel, ValidationError


class RerankFailed(Exception):
    """The rerank provider could not be reached or gave an answer that cannot be used."""


@dataclass(frozen=True, slots=True)
class Ranked:
    index: int  # position of the document in the list that was sent
    score: float


class Reranker(Protocol):
    """What retrieval needs from a reranking model."""

    def rerank(self, query: str, documents: Sequence[str], top_n: int) -> list[Ranked]:
        """The ``top_n`` most relevant documents (fewer only when fewer were sent), best first.
        Raises ``RerankFailed``."""
        ...


class _Result(BaseModel):
    index: int
    relevance_score: float


class _Response(BaseModel):
    results: list[_Result]


class HttpReranker:
    """A rerank server at ``url`` (the full endpoint, e.g. ``http://localhost:8000/v1/rerank``)."""

    def __init__(
        self, url: str, *, model: str | None, api_key: str | None, timeout_seconds: float
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url
        self.model = model
        self._client = httpx.Client(headers=headers, timeout=timeout_seconds)

    def rerank(self, query: str, documents: Sequence[str], top_n: int) -> list[Ranked]:
        if not documents:
            return []
        body: dict[str, object] = {"query": query, "documents": list(documents), "top_n": top_n}
        if self.model:
            body["model"] = self.model
        try:
            response = self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise RerankFailed(f"rerank request to {self.url} failed: {exc!r}") from exc
        if response.status_code != 200:
            raise RerankFailed(
                f"rerank server {self.url} answered {response.status_code}: {response.text[:200]}"
            )
        try:
            results = _Response.model_validate_json(response.content).results
        except ValidationError as exc:
            raise RerankFailed(f"rerank server {self.url} sent an unusable body: {exc}") from exc
        return _checked(results, len(documents), top_n)

    def close(self) -> None:
        self._client.close()


def _checked(results: Sequence[_Result], sent: int, top_n: int) -> list[Ranked]:
    """Best first, cut to ``top_n``; each document at most once, every score a number."""
    seen: set[int] = set()
    for result in results:
        if not 0 <= result.index < sent or result.index in seen:
            raise RerankFailed(f"rerank result index {result.index} is repeated or out of range")
        if not math.isfinite(result.relevance_score):
            raise RerankFailed(f"rerank score {result.relevance_score} is not a finite number")
        seen.add(result.index)
    expected = min(top_n, sent)
    if len(results) < expected:
        raise RerankFailed(f"rerank server returned {len(results)} results, expected {expected}")
    ranked = sorted(results, key=lambda r: (-r.relevance_score, r.index))[:top_n]
    return [Ranked(r.index, r.relevance_score) for r in ranked]
