"""Marshmallow schemas of every request and response body, by role."""
from datetime import timezone

import marshmallow as ma
from marshmallow import fields, validate

from downloads_app.catalogue import file_size_bytes
from downloads_app.lifecycle import STATUSES

MAX_PAGE_SIZE = 100


class ByteCount(fields.Integer):
    """A byte count, sent as a decimal string so no client loses precision."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, as_string=True, **kwargs)


class UtcDateTime(fields.DateTime):
    """ISO 8601 time in UTC; the database stores naive UTC."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return super()._serialize(value, attr, obj, **kwargs)


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


# ---------------------------------------------------------------- requests


class StartDownloadSchema(StrictSchema):
    content_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    quality = fields.String(required=True, validate=validate.Length(min=1, max=16))


class DownloadQueryArgsSchema(ma.Schema):
    """Unknown query parameters (cache busters and the like) are ignored."""

    class Meta:
        unknown = ma.EXCLUDE

    status = fields.String(validate=validate.OneOf(STATUSES))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


class ContentCreateSchema(StrictSchema):
    id = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=64), validate.Regexp(r"^[A-Za-z0-9._-]+$")],
    )
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    duration_seconds = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=86_400))
    qualities = fields.List(fields.String(), required=True, validate=validate.Length(min=1))


class ContentUpdateSchema(StrictSchema):
    title = fields.String(validate=validate.Length(min=1, max=200))
    duration_seconds = fields.Integer(strict=True, validate=validate.Range(min=1, max=86_400))
    qualities = fields.List(fields.String(), validate=validate.Length(min=1))


# ---------------------------------------------------------------- responses


class DownloadSchema(ma.Schema):
    id = fields.String()
    user_id = fields.String()
    content_id = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))
    quality = fields.String()
    progress = fields.Integer(metadata={"description": "Percent, 0 to 100"})
    file_size_bytes = ByteCount()
    downloaded_bytes = ByteCount()
    attempts = fields.Integer()
    error = fields.String(allow_none=True, metadata={"description": "Why the download failed (only when failed)"})
    last_error = fields.String(
        allow_none=True, metadata={"description": "Error of the latest failed attempt, even if a retry then succeeded"}
    )
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
    started_at = UtcDateTime(allow_none=True)
    completed_at = UtcDateTime(allow_none=True)


class DownloadEnvelopeSchema(ma.Schema):
    success = fields.Boolean()
    message = fields.String()
    download = fields.Nested(DownloadSchema)


class PaginationSchema(ma.Schema):
    page = fields.Integer()
    page_size = fields.Integer()
    total = fields.Integer()
    pages = fields.Integer()


class DownloadListSchema(ma.Schema):
    success = fields.Boolean()
    downloads = fields.List(fields.Nested(DownloadSchema))
    pagination = fields.Nested(PaginationSchema)


class ProgressSchema(ma.Schema):
    success = fields.Boolean()
    id = fields.String()
    status = fields.String()
    progress = fields.Integer()
    downloaded_bytes = ByteCount()
    file_size_bytes = ByteCount()


class MessageSchema(ma.Schema):
    success = fields.Boolean()
    message = fields.String()


class CleanupSchema(MessageSchema):
    deleted_count = fields.Integer()
    freed_bytes = ByteCount()


class StorageSchema(ma.Schema):
    success = fields.Boolean()
    quota_bytes = ByteCount()
    used_bytes = ByteCount()
    free_bytes = ByteCount()


class ContentSchema(ma.Schema):
    id = fields.String()
    title = fields.String()
    duration_seconds = fields.Integer()
    qualities = fields.List(fields.String(), attribute="quality_list")
    sizes = fields.Method(
        "_sizes",
        metadata={
            "description": "file_size_bytes by quality, as decimal strings",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
    )

    def _sizes(self, content):
        return {q: str(file_size_bytes(content.duration_seconds, q)) for q in content.quality_list}


class ContentEnvelopeSchema(ma.Schema):
    success = fields.Boolean()
    message = fields.String()
    content = fields.Nested(ContentSchema)


class ContentListSchema(ma.Schema):
    success = fields.Boolean()
    contents = fields.List(fields.Nested(ContentSchema))


class ErrorSchema(ma.Schema):
    success = fields.Boolean(metadata={"description": "Always false"})
    message = fields.String()
    errors = fields.Dict(metadata={"description": "Field-by-field validation errors"})
    status = fields.String(metadata={"description": "Current state, when an action does not fit it"})
    needed_bytes = ByteCount(metadata={"description": "When storage is short: bytes needed"})
    free_bytes = ByteCount(metadata={"description": "When storage is short: bytes free"})


class QueueDepthSchema(ma.Schema):
    name = fields.String()
    ready = fields.Integer(metadata={"description": "Messages waiting for a worker"})
    delayed = fields.Integer(metadata={"description": "Messages waiting out a retry backoff"})
    dead_lettered = fields.Integer(metadata={"description": "Messages Dramatiq gave up on"})


class WorkerSchema(ma.Schema):
    host = fields.String()
    pid = fields.Integer()
    threads = fields.Integer()
    started_at = fields.Float(metadata={"description": "Unix time"})
    last_beat = fields.Float(metadata={"description": "Unix time of the last heartbeat"})
    alive = fields.Boolean()


class StalledDownloadSchema(DownloadSchema):
    """A download record cut to what an operator needs to judge a stall."""

    class Meta:
        fields = ("id", "user_id", "attempts", "progress", "updated_at")


class QueueHealthSchema(ma.Schema):
    success = fields.Boolean()
    queue = fields.Nested(QueueDepthSchema)
    dead_lettered_downloads = fields.List(fields.String())
    workers = fields.List(fields.Nested(WorkerSchema))
    workers_alive = fields.Integer()
    downloads_by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    oldest_pending_age_seconds = fields.Float(allow_none=True)
    stalled_count = fields.Integer()
    stalled = fields.List(fields.Nested(StalledDownloadSchema))
