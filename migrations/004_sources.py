"""Add content_sources (where each title's file lives, per quality) and downloads.sha256."""
import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """Create the table; add the column."""

    @migrator.create_model
    class ContentSource(pw.Model):
        id = pw.AutoField()
        content = pw.ForeignKeyField(
            migrator.orm["contents"], column_name="content_id", field="id"
        )
        quality = pw.CharField(max_length=16)
        location = pw.CharField(max_length=2048)
        size_bytes = pw.BigIntegerField()
        sha256 = pw.CharField(max_length=64, null=True)
        content_type = pw.CharField(max_length=255, null=True)

        class Meta:
            table_name = "content_sources"
            indexes = ((("content_id", "quality"), True),)

    migrator.add_fields("downloads", sha256=pw.CharField(max_length=64, null=True))


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    """Drop the column and the table."""
    migrator.remove_fields("downloads", "sha256")
    migrator.remove_model("content_sources")
