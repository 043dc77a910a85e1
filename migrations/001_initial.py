"""Initial schema: the catalogue, downloads and the storage ledger."""
import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """Create the three tables."""

    @migrator.create_model
    class Content(pw.Model):
        id = pw.CharField(max_length=64, primary_key=True)
        title = pw.CharField(max_length=200)
        duration_seconds = pw.IntegerField()
        qualities = pw.CharField(max_length=100)
        created_at = pw.DateTimeField()

        class Meta:
            table_name = "contents"

    @migrator.create_model
    class Download(pw.Model):
        id = pw.CharField(max_length=32, primary_key=True)
        user_id = pw.CharField(max_length=128)
        content = pw.ForeignKeyField(column_name='content_id', field='id', model=migrator.orm['contents'])
        quality = pw.CharField(max_length=16)
        status = pw.CharField(max_length=16)
        progress = pw.IntegerField(default=0)
        file_size_bytes = pw.BigIntegerField()
        downloaded_bytes = pw.BigIntegerField(default=0)
        attempts = pw.IntegerField(default=0)
        error = pw.TextField(null=True)
        claim_token = pw.CharField(max_length=32, null=True)
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()
        started_at = pw.DateTimeField(null=True)
        completed_at = pw.DateTimeField(null=True)

        class Meta:
            table_name = "downloads"
            indexes = [(('user_id', 'status', 'created_at'), False), (('user_id', 'created_at'), False), (('status', 'updated_at'), False)]

    @migrator.create_model
    class StorageLedger(pw.Model):
        user_id = pw.CharField(max_length=128, primary_key=True)
        quota_bytes = pw.BigIntegerField(null=True)
        used_bytes = pw.BigIntegerField(default=0)

        class Meta:
            table_name = "storage_ledger"


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    """Drop the three tables."""
    migrator.remove_model("storage_ledger")
    migrator.remove_model("downloads")
    migrator.remove_model("contents")
