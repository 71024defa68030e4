"""Wire models of indexes (contract §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from indexchat.api.schemas.common import IdField, RequestBody, from_row
from indexchat.api.schemas.files import utc
from indexchat.storage.tables import Index


class Product(RequestBody):
    product_config_id: str = Field(max_length=200)
    product_type: Literal["parse", "extract"]


class CreateIndex(RequestBody):
    source_directory_id: IdField
    name: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    description: str | None = Field(default=None, max_length=10_000)
    products: list[Product] | None = Field(default=None, max_length=10)
    store_attachments: list[Literal["screenshots", "items"]] | None = Field(
        default=None, max_length=2
    )
    sync_frequency: Literal["manual", "daily", "on_source_change"] = "manual"
    vector_target: Literal["DEFAULT", "DISABLED"] = "DEFAULT"

    # Refused rather than stored and ignored: these kinds of output are not produced here.
    @field_validator("products")
    @classmethod
    def _no_product_configs(cls, products: list[Product] | None) -> list[Product] | None:
        if products:
            first = products[0]
            raise ValueError(
                f"product {first.product_type!r} with config {first.product_config_id!r} is not "
                "supported: files are parsed by the built-in parser; leave products out"
            )
        return products

    @field_validator("store_attachments")
    @classmethod
    def _only_screenshots(cls, kinds: list[str] | None) -> list[str] | None:
        if kinds and "items" in kinds:
            raise ValueError(
                "store_attachments 'items' is not supported; 'screenshots' (page images of PDFs) is"
            )
        return kinds


class IndexOut(BaseModel):
    id: str
    name: str
    project_id: str
    source_directory_id: str
    output_directory_id: str
    sync_config_id: str
    export_config_id: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    description: str | None = None
    last_synced_at: datetime | None = None
    last_exported_at: datetime | None = None
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Build state: files parsed and failed, chunks, failed files with reasons; with "
            "expand=sync_in_progress, a running sync's progress as `sync_progress`; for "
            "sync_frequency daily or on_source_change, `next_scheduled_sync_at` (null: none "
            "pending)."
        ),
    )
    sync_in_progress: bool | None = None

    @classmethod
    def of(
        cls,
        index: Index,
        sync_in_progress: bool | None = None,
        sync_progress: dict[str, Any] | None = None,
        next_sync_at: datetime | None = None,
    ) -> IndexOut:
        """``sync_progress`` (a running sync's, with ``expand=sync_in_progress``) joins the
        build state as ``metadata.sync_progress``; a scheduled sync's time (sync_frequency
        daily or on_source_change) as ``metadata.next_scheduled_sync_at``."""
        metadata = dict(index.build_state or {})
        if sync_progress is not None:
            metadata["sync_progress"] = sync_progress
        if index.sync_frequency != "manual":
            metadata["sync_frequency"] = index.sync_frequency
            when = utc(next_sync_at)
            metadata["next_scheduled_sync_at"] = when.isoformat() if when else None
        return from_row(cls, index, metadata=metadata, sync_in_progress=sync_in_progress)
