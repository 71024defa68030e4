"""Wire models of files, directories, directory files (contract §5, §6)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from indexchat.api.schemas.common import CursorPage, IdField, Int64, RequestBody, from_row
from indexchat.storage.tables import Directory, DirectoryFile, StoredFile

MetadataValue = str | Int64 | float | bool | None | list[str]
Metadata = dict[str, MetadataValue]
NameField = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")


def utc(moment: datetime | None) -> datetime | None:
    """Stored naive UTC → an aware datetime, serialised with its offset (RFC 3339)."""
    return moment.replace(tzinfo=UTC) if moment is not None else None


class PresignedURL(BaseModel):
    url: str
    expires_at: datetime
    form_fields: dict[str, str] | None = None


class FileOut(BaseModel):
    id: str
    name: str
    project_id: str
    download_url: PresignedURL | None = None
    expires_at: datetime | None = None
    external_file_id: str | None = None
    file_type: str | None = None
    last_modified_at: datetime | None = None
    purpose: str | None = None

    @classmethod
    def of(cls, stored: StoredFile, download_url: PresignedURL | None = None) -> FileOut:
        return from_row(cls, stored, download_url=download_url)


class FileQueryFilter(RequestBody):
    data_source_id: str | None = Field(default=None, max_length=200)
    external_file_id: str | None = Field(default=None, max_length=200)
    file_ids: list[str] | None = Field(default=None, max_length=1000)
    file_name: str | None = Field(default=None, max_length=255)
    only_manually_uploaded: bool | None = None
    project_id: str | None = Field(default=None, max_length=200)


class FileQuery(RequestBody):
    filter: FileQueryFilter | None = None
    order_by: str | None = Field(
        default=None,
        max_length=100,
        description="One of `name`, `id` (ascending) or `created_at desc` (the default).",
    )
    page_size: int | None = Field(default=None, ge=1, le=1000)
    page_token: str | None = Field(default=None, max_length=1024)


class FileQueryPage(CursorPage[FileOut]):
    total_size: int | None = Field(default=None, description="Not counted: always null.")


class CreateDirectory(RequestBody):
    name: str = NameField
    description: str | None = Field(default=None, max_length=10_000)
    connector_subscription_id: str | None = Field(default=None, max_length=200)
    system_metadata: dict[str, Any] | None = None
    type: Literal["ephemeral", "user"] = "user"


class UpdateDirectory(RequestBody):
    name: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    description: str | None = Field(default=None, max_length=10_000)


class DirectoryOut(BaseModel):
    id: str
    name: str
    project_id: str
    connector_subscription_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None
    description: str | None = None
    expires_at: datetime | None = None
    system_metadata: dict[str, Any] | None = None
    type: Literal["ephemeral", "index", "user"] | None = None

    @classmethod
    def of(cls, directory: Directory) -> DirectoryOut:
        return from_row(cls, directory)


class AddDirectoryFile(RequestBody):
    file_id: IdField
    display_name: str | None = Field(default=None, max_length=255)
    unique_id: str | None = Field(default=None, max_length=255)
    metadata: Metadata | None = None


class UpdateDirectoryFile(RequestBody):
    display_name: str | None = Field(default=None, min_length=1, max_length=255)
    unique_id: str | None = Field(default=None, min_length=1, max_length=255)
    metadata: Metadata | None = None
    target_directory_id: IdField | None = None


class DirectoryFileOut(BaseModel):
    id: str
    directory_id: str
    display_name: str
    project_id: str
    unique_id: str
    file_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None
    download_url: PresignedURL | None = None
    metadata: Metadata = Field(default_factory=dict)

    @classmethod
    def of(
        cls, placed: DirectoryFile, download_url: PresignedURL | None = None
    ) -> DirectoryFileOut:
        return from_row(cls, placed, download_url=download_url, metadata=placed.user_metadata or {})
