"""Add devices, licences (downloads.license_expires_at, played_at), titles' rules and yearly allowances."""
import os
from datetime import timedelta

import peewee as pw
from peewee_migrate import Migrator

from downloads_app.config import SETTINGS

COMPLETED = "completed"


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """Create the tables, add the columns, and give every completed download its licence."""
    migrator.add_fields(
        "contents",
        downloadable=pw.BooleanField(default=True),
        max_downloads_per_year=pw.IntegerField(null=True),
        license_days=pw.FloatField(null=True),
        playback_window_hours=pw.FloatField(null=True),
        max_renewals=pw.IntegerField(null=True),
        series_id=pw.CharField(max_length=64, null=True),
        season=pw.IntegerField(null=True),
        episode=pw.IntegerField(null=True),
    )

    @migrator.create_model
    class Device(pw.Model):
        id = pw.CharField(primary_key=True, max_length=32)
        user_id = pw.CharField(max_length=128, index=True)
        name = pw.CharField(max_length=100)
        platform = pw.CharField(max_length=32)
        created_at = pw.DateTimeField()

        class Meta:
            table_name = "devices"

    @migrator.create_model
    class TitleAllowance(pw.Model):
        id = pw.AutoField()
        user_id = pw.CharField(max_length=128)
        content = pw.ForeignKeyField(
            migrator.orm["contents"], column_name="content_id", field="id", on_delete="CASCADE"
        )
        year = pw.IntegerField()
        downloads = pw.IntegerField(default=0)
        renewals = pw.IntegerField(default=0)

        class Meta:
            table_name = "title_allowances"
            indexes = ((("user_id", "content_id", "year"), True),)

    migrator.add_fields(
        "downloads",
        device=pw.ForeignKeyField(
            migrator.orm["devices"], column_name="device_id", field="id", null=True
        ),
        license_expires_at=pw.DateTimeField(null=True),
        played_at=pw.DateTimeField(null=True),
    )
    migrator.add_index("downloads", "status", "license_expires_at")
    migrator.run(_license_completed_downloads, migrator)


def _license_completed_downloads(migrator):
    """Existing completed downloads: a licence of LICENSE_DAYS from their completion."""
    parse, default = SETTINGS["LICENSE_DAYS"]
    period = timedelta(days=parse(os.environ.get("LICENSE_DAYS") or str(default)))
    downloads = migrator.orm["downloads"]
    completed = downloads.select(downloads.id, downloads.completed_at, downloads.updated_at).where(
        downloads.status == COMPLETED, downloads.license_expires_at.is_null()
    )
    for download in completed:
        since = download.completed_at or download.updated_at
        downloads.update(license_expires_at=since + period).where(downloads.id == download.id).execute()


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    """Drop the columns and the tables (expired downloads become cancelled: they hold no file)."""
    migrator.sql("UPDATE downloads SET status = 'cancelled' WHERE status = 'expired'")
    migrator.drop_index("downloads", "status", "license_expires_at")
    migrator.drop_index("downloads", "device")
    migrator.remove_fields("downloads", "device", "license_expires_at", "played_at")
    migrator.remove_model("title_allowances")
    migrator.remove_model("devices")
    migrator.remove_fields(
        "contents",
        "downloadable",
        "max_downloads_per_year",
        "license_days",
        "playback_window_hours",
        "max_renewals",
        "series_id",
        "season",
        "episode",
    )
