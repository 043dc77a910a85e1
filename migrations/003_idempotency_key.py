"""Add downloads.idempotency_key: the client's Idempotency-Key of the start, unique per user."""
import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """Add the column and its unique index (rows without a key do not collide)."""
    migrator.add_fields("downloads", idempotency_key=pw.CharField(max_length=255, null=True))
    migrator.add_index("downloads", "user_id", "idempotency_key", unique=True)


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    """Drop the index and the column."""
    migrator.drop_index("downloads", "user_id", "idempotency_key")
    migrator.remove_fields("downloads", "idempotency_key")
