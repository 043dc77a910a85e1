"""Peewee models: the catalogue, downloads and each user's storage ledger."""

import secrets
from datetime import UTC, datetime

from peewee import (
    BigIntegerField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from downloads_app.infra.database import database


def utcnow():
    """Naive UTC time, as stored in every DateTimeField."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_id():
    """Opaque, collision-resistant id (128 random bits)."""
    return secrets.token_hex(16)


class BaseModel(Model):
    class Meta:
        database = database


class Content(BaseModel):
    """A downloadable title and the qualities it is offered in."""

    id = CharField(primary_key=True, max_length=64)
    title = CharField(max_length=200)
    duration_seconds = IntegerField()
    qualities = CharField(max_length=100)  # comma-separated, e.g. "480p,720p"
    created_at = DateTimeField(default=utcnow)

    @property
    def quality_list(self):
        return [q for q in self.qualities.split(",") if q]

    class Meta:
        table_name = "contents"


class Download(BaseModel):
    """One user's download of one title at one quality."""

    id = CharField(primary_key=True, max_length=32, default=new_id)
    user_id = CharField(max_length=128)
    content = ForeignKeyField(Content, column_name="content_id", backref="downloads")
    quality = CharField(max_length=16)
    status = CharField(max_length=16)
    progress = IntegerField(default=0)
    file_size_bytes = BigIntegerField()
    downloaded_bytes = BigIntegerField(default=0)
    attempts = IntegerField(default=0)
    error = TextField(null=True)  # why the download failed; set only while failed
    last_error = TextField(null=True)  # the latest failed attempt's error, kept for operators
    # Set by each claim of the transfer; a worker whose token no longer matches
    # (the download was paused, resumed and claimed again) stops writing.
    claim_token = CharField(max_length=32, null=True)
    idempotency_key = CharField(max_length=255, null=True)  # the start's Idempotency-Key header
    sha256 = CharField(max_length=64, null=True)  # of the stored file, once verified
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    started_at = DateTimeField(null=True)
    completed_at = DateTimeField(null=True)

    class Meta:
        table_name = "downloads"
        indexes = (
            (("user_id", "status", "created_at"), False),
            (("user_id", "created_at"), False),
            (("status", "updated_at"), False),
            (("user_id", "idempotency_key"), True),
        )


class ContentSource(BaseModel):
    """Where the file of a title at one quality lives: an http(s):// URL or s3://bucket/key."""

    content = ForeignKeyField(Content, column_name="content_id", backref="sources")
    quality = CharField(max_length=16)
    location = CharField(max_length=2048)
    size_bytes = BigIntegerField()
    sha256 = CharField(max_length=64, null=True)  # hex; checked after every transfer when set
    content_type = CharField(max_length=255, null=True)

    class Meta:
        table_name = "content_sources"
        indexes = ((("content_id", "quality"), True),)


class StorageLedger(BaseModel):
    """Bytes a user has reserved; kept in step with every download transition."""

    user_id = CharField(primary_key=True, max_length=128)
    quota_bytes = BigIntegerField(null=True)  # null: the configured default
    used_bytes = BigIntegerField(default=0)

    class Meta:
        table_name = "storage_ledger"


MODELS = (Content, ContentSource, Download, StorageLedger)
