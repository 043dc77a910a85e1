"""Add downloads.watched_at and each account's settings (smart downloads)."""
import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """Add the column and the table."""
    migrator.add_fields("downloads", watched_at=pw.DateTimeField(null=True))

    @migrator.create_model
    class AccountSettings(pw.Model):
        user_id = pw.CharField(primary_key=True, max_length=128)
        smart_downloads = pw.BooleanField(default=False)

        class Meta:
            table_name = "account_settings"


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    """Drop the table and the column."""
    migrator.remove_model("account_settings")
    migrator.remove_fields("downloads", "watched_at")
