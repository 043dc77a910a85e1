"""Add downloads.last_error: the latest failed attempt's error, kept after retries."""
import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """Add the column."""
    migrator.add_fields("downloads", last_error=pw.TextField(null=True))


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    """Drop the column."""
    migrator.remove_fields("downloads", "last_error")
