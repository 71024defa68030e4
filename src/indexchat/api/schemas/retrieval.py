"""Wire models of retrieval (contract §7) and attachments (§9)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from indexchat.api.schemas.common import MAX_INT64, IdField, Int64, RequestBody

Operator = Literal["eq", "gt", "gte", "in", "lt", "lte", "ne", "nin"]
Scalar = str | bool | Int64 | float


class ValueFilter(RequestBody):
    operator: Operator
    value: Scalar | list[Scalar] = Field(union_mode="left_to_right")


class StringFilter(RequestBody):
    operator: Operator
    value: str | list[str]


class StaticFilters(RequestBody):
    parsed_directory_file_id: StringFilter | None = None
    # Extensions beyond the SDK's declared field: filter on page range and chunk position.
    page_range_start: ValueFilter | None = None
    page_range_end: ValueFilter | None = None
    chunk_index: ValueFilter | None = None


class Rerank(RequestBody):
    enabled: bool = True
    top_n: int | None = Field(default=None, ge=1, le=500)


class RetrieveRequest(RequestBody):
    index_id: IdField
    query: str = Field(min_length=1, max_length=10_000)
    top_k: int | None = Field(
        default=None, ge=1, le=MAX_INT64, description="Values above 500 are capped."
    )
    rerank: Rerank = Field(default_factory=Rerank)
    score_threshold: float | None = None
    full_text_pipeline_weight: float | None = Field(default=None, ge=0, le=1)
    vector_pipeline_weight: float | None = Field(default=None, ge=0, le=1)
    num_candidates: int | None = Field(default=None, ge=1, le=10_000)
    custom_filters: dict[str, ValueFilter | list[ValueFilter] | None] | None = Field(
        default=None, max_length=50
    )
    static_filters: StaticFilters | None = None


class AttachmentRef(BaseModel):
    attachment_name: str
    source_id: str
    type: str


class StaticFields(BaseModel):
    chunk_index: int | None = None
    chunk_start_char: int | None = None
    chunk_end_char: int | None = None
    chunk_token_count: int | None = None
    page_range_start: int | None = None
    page_range_end: int | None = None
    parsed_directory_file_id: str | None = None
    attachments: list[AttachmentRef] = Field(default_factory=list)


class Result(BaseModel):
    content: str
    score: float | None = None
    rerank_score: float | None = None
    metadata: dict[str, str | int | float | bool | None | list[str]] | None = None
    static_fields: StaticFields = Field(default_factory=StaticFields)


class RetrievalResults(BaseModel):
    results: list[Result]


class FindRequest(RequestBody):
    index_id: IdField
    file_name: str | None = Field(default=None, max_length=255)
    file_name_contains: str | None = Field(default=None, max_length=255)
    page_size: int | None = Field(default=None, ge=1, le=1000)
    page_token: str | None = Field(default=None, max_length=1024)


class FoundFile(BaseModel):
    file_id: str
    file_name: str


class GrepRequest(RequestBody):
    index_id: IdField
    file_id: IdField
    pattern: str = Field(min_length=1, max_length=1000)
    context_chars: int | None = Field(default=None, ge=0, le=10_000)
    page_size: int | None = Field(default=None, ge=1, le=1000)
    page_token: str | None = Field(default=None, max_length=1024)


class GrepMatchOut(BaseModel):
    content: str
    start_char: int
    end_char: int


class ReadRequest(RequestBody):
    index_id: IdField
    file_id: IdField
    offset: int = Field(default=0, ge=0, le=MAX_INT64)
    max_length: int | None = Field(default=None, ge=1, le=1_000_000)


class ReadResult(BaseModel):
    content: str


class AttachmentInfo(BaseModel):
    name: str
    size: int
    last_modified: datetime | None = None
