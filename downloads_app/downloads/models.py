"""Peewee models: the catalogue, devices, downloads with their licences, and each user's ledger and settings."""

import secrets
from datetime import UTC, datetime

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    FloatField,
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
    """A downloadable title, the qualities it is offered in, and its rules of offline viewing."""

    id = CharField(primary_key=True, max_length=64)
    title = CharField(max_length=200)
    duration_seconds = IntegerField()
    qualities = CharField(max_length=100)  # comma-separated, e.g. "480p,720p"
    created_at = DateTimeField(default=utcnow)
    # The title's rules; null takes the service's setting (LICENSE_DAYS, PLAYBACK_WINDOW_HOURS,
    # MAX_RENEWALS_PER_YEAR), or no cap for max_downloads_per_year.
    downloadable = BooleanField(default=True)
    max_downloads_per_year = IntegerField(null=True)
    license_days = FloatField(null=True)
    playback_window_hours = FloatField(null=True)
    max_renewals = IntegerField(null=True)
    # A title of a series is one episode of one season.
    series_id = CharField(max_length=64, null=True)
    season = IntegerField(null=True)
    episode = IntegerField(null=True)

    @property
    def quality_list(self):
        return [q for q in self.qualities.split(",") if q]

    class Meta:
        table_name = "contents"


class Device(BaseModel):
    """A device a user registered to download on."""

    id = CharField(primary_key=True, max_length=32, default=new_id)
    user_id = CharField(max_length=128, index=True)
    name = CharField(max_length=100)
    platform = CharField(max_length=32)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "devices"


class Download(BaseModel):
    """One user's download of one title at one quality."""

    id = CharField(primary_key=True, max_length=32, default=new_id)
    user_id = CharField(max_length=128)
    content = ForeignKeyField(Content, column_name="content_id", backref="downloads")
    # Null: the user's default device (downloads started without naming one).
    device = ForeignKeyField(Device, column_name="device_id", null=True, backref="downloads")
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
    license_expires_at = DateTimeField(null=True)  # set at completion, shortened by the first play
    played_at = DateTimeField(null=True)  # the first playback of the current licence
    watched_at = DateTimeField(null=True)  # the user marked it watched (an episode, for smart downloads)

    class Meta:
        table_name = "downloads"
        indexes = (
            (("user_id", "status", "created_at"), False),
            (("user_id", "created_at"), False),
            (("status", "updated_at"), False),
            (("user_id", "idempotency_key"), True),
            (("status", "license_expires_at"), False),
        )


class TitleAllowance(BaseModel):
    """What one user used of one title's yearly allowances in one calendar year (UTC)."""

    user_id = CharField(max_length=128)
    content = ForeignKeyField(Content, column_name="content_id", on_delete="CASCADE")
    year = IntegerField()
    downloads = IntegerField(default=0)
    renewals = IntegerField(default=0)

    class Meta:
        table_name = "title_allowances"
        indexes = ((("user_id", "content_id", "year"), True),)


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


class AccountSettings(BaseModel):
    """What one user chose for their account; no row: the defaults."""

    user_id = CharField(primary_key=True, max_length=128)
    smart_downloads = BooleanField(default=False)  # a watched episode makes way for the next

    class Meta:
        table_name = "account_settings"


MODELS = (AccountSettings, Content, ContentSource, Device, Download, StorageLedger, TitleAllowance)
