"""files directories index build state jobs

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "directories",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("connector_subscription_id", sa.String(length=200), nullable=True),
        sa.Column("system_metadata", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("directories", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_directories_project_id"), ["project_id"], unique=False)

    op.create_table(
        "files",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("file_type", sa.String(length=32), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("external_file_id", sa.String(length=200), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_modified_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_files_content_hash"), ["content_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_files_project_id"), ["project_id"], unique=False)

    op.create_table(
        "directory_files",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("directory_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("file_id", sa.String(length=64), nullable=True),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("unique_id", sa.String(length=255), nullable=False),
        sa.Column("external_file_id", sa.String(length=200), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["directory_id"], ["directories.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("directory_files", schema=None) as batch_op:
        batch_op.create_index(
            "ix_directory_files_directory_unique", ["directory_id", "unique_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_directory_files_file_id"), ["file_id"], unique=False)

    op.create_table(
        "jobs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("index_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("run_after", sa.DateTime(), nullable=False),
        sa.Column("locked_by", sa.String(length=64), nullable=True),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["index_id"], ["indexes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_claim", ["status", "run_after"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_index_id"), ["index_id"], unique=False)

    # Index rows from before indexes had sources were placeholders with nothing to search;
    # every index now needs a source directory, so they go.
    op.execute("DELETE FROM indexes")
    with op.batch_alter_table("indexes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_directory_id", sa.String(length=64), nullable=False))
        batch_op.add_column(sa.Column("output_directory_id", sa.String(length=64), nullable=False))
        batch_op.add_column(sa.Column("sync_config_id", sa.String(length=64), nullable=False))
        batch_op.add_column(sa.Column("export_config_id", sa.String(length=64), nullable=False))
        batch_op.add_column(sa.Column("products", sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column("store_attachments", sa.JSON(), nullable=False))
        batch_op.add_column(sa.Column("sync_frequency", sa.String(length=32), nullable=False))
        batch_op.add_column(sa.Column("vector_target", sa.String(length=16), nullable=False))
        batch_op.add_column(sa.Column("metadata", sa.JSON(), nullable=False))
        batch_op.add_column(sa.Column("last_synced_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_exported_at", sa.DateTime(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_indexes_source_directory_id"), ["source_directory_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_indexes_source_directory",
            "directories",
            ["source_directory_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch_op.create_foreign_key(
            "fk_indexes_output_directory", "directories", ["output_directory_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("indexes", schema=None) as batch_op:
        batch_op.drop_constraint("fk_indexes_output_directory", type_="foreignkey")
        batch_op.drop_constraint("fk_indexes_source_directory", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_indexes_source_directory_id"))
        batch_op.drop_column("last_exported_at")
        batch_op.drop_column("last_synced_at")
        batch_op.drop_column("metadata")
        batch_op.drop_column("vector_target")
        batch_op.drop_column("sync_frequency")
        batch_op.drop_column("store_attachments")
        batch_op.drop_column("products")
        batch_op.drop_column("export_config_id")
        batch_op.drop_column("sync_config_id")
        batch_op.drop_column("output_directory_id")
        batch_op.drop_column("source_directory_id")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_index_id"))
        batch_op.drop_index("ix_jobs_claim")

    op.drop_table("jobs")
    with op.batch_alter_table("directory_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_files_file_id"))
        batch_op.drop_index("ix_directory_files_directory_unique")

    op.drop_table("directory_files")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_project_id"))
        batch_op.drop_index(batch_op.f("ix_files_content_hash"))

    op.drop_table("files")
    with op.batch_alter_table("directories", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directories_project_id"))

    op.drop_table("directories")
