"""Marshmallow schemas of every request and response body, by role."""
from datetime import timezone

import marshmallow as ma
from flask import current_app
from marshmallow import fields, validate

from downloads_app.downloads.catalogue import sizes
from downloads_app.web.current import current_runtime
from downloads_app.downloads.lifecycle import STATUSES

MAX_PAGE_SIZE = 100
CONTENT_ID_PATTERN = "[A-Za-z0-9._-]{1,64}"
MAX_PAGE = 1_000_000  # keeps the SQL offset well inside a 64-bit integer


class ByteCount(fields.Integer):
    """A byte count, as a decimal string both ways, so no client loses precision."""

    def __init__(self, **kwargs):
        super().__init__(as_string=True, **kwargs)


class UtcDateTime(fields.DateTime):
    """ISO 8601 time in UTC; the database stores naive UTC."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return super()._serialize(value, attr, obj, **kwargs)


class Quality(fields.String):
    """A quality the service offers (QUALITY_BITRATES_KBPS); the spec lists them as an enum."""

    def _deserialize(self, value, attr, data, **kwargs):
        quality = super()._deserialize(value, attr, data, **kwargs)
        offered = list(current_app.config["QUALITY_BITRATES_KBPS"])
        if quality not in offered:
            raise ma.ValidationError(f"Must be one of: {', '.join(offered)}.")
        return quality


def spec_properties(app):
    """apispec attribute function: Quality's `enum` from `app`'s settings, ByteCount's digits."""

    def add_properties(converter, field, **kwargs):
        del converter, kwargs
        if isinstance(field, Quality):
            return {"enum": list(app.config["QUALITY_BITRATES_KBPS"])}
        if isinstance(field, ByteCount) and "pattern" not in field.metadata:
            return {"pattern": "^[0-9]+$"}
        return {}

    return add_properties


CONTENT_ID_FORMAT = validate.Regexp(f"^{CONTENT_ID_PATTERN}$", error="1 to 64 letters, digits, '.', '_' or '-'.")
# Text a person typed: no control characters (PostgreSQL refuses NUL in text, too).
PRINTABLE = validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="Control characters are not allowed.")


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


# ---------------------------------------------------------------- requests


class StartDownloadSchema(StrictSchema):
    content_id = fields.String(required=True, validate=CONTENT_ID_FORMAT)
    quality = Quality(required=True)


class IdempotencyHeaderSchema(ma.Schema):
    """The optional Idempotency-Key header of a start; other headers are ignored."""

    class Meta:
        unknown = ma.EXCLUDE

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Regexp(r"^[\x21-\x7e]{1,255}$", error="1 to 255 visible ASCII characters."),
        metadata={"description": "Repeat a start with the same key to get the same download back"},
    )


class DownloadQueryArgsSchema(StrictSchema):
    """Unknown query parameters are refused (a misspelt filter would list everything).

    Parse it with `unknown=RAISE`: webargs ignores unknown query parameters by default.
    """

    status = fields.String(validate=validate.OneOf(STATUSES))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))
    cache_buster = fields.String(data_key="_", metadata={"description": "Ignored: lets clients defeat caches"})

    @ma.post_load
    def _drop_cache_buster(self, args, **kwargs):
        args.pop("cache_buster", None)
        return args


class ContentCreateSchema(StrictSchema):
    id = fields.String(required=True, validate=CONTENT_ID_FORMAT)
    title = fields.String(required=True, validate=[validate.Length(min=1, max=200), PRINTABLE])
    duration_seconds = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=86_400))
    qualities = fields.List(Quality(), required=True, validate=validate.Length(min=1))


class ContentUpdateSchema(StrictSchema):
    title = fields.String(validate=[validate.Length(min=1, max=200), PRINTABLE])
    duration_seconds = fields.Integer(strict=True, validate=validate.Range(min=1, max=86_400))
    qualities = fields.List(Quality(), validate=validate.Length(min=1))


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
    sha256 = fields.String(
        allow_none=True, metadata={"description": "SHA-256 (hex) of the stored file, once completed by a real transfer"}
    )
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
        return {quality: str(size) for quality, size in sizes(current_runtime().settings, content).items()}


class SourceSchema(StrictSchema):
    """Where a title's file lives at one quality."""

    quality = fields.String(dump_only=True)
    location = fields.String(
        required=True,
        validate=[
            validate.Length(max=2048),
            validate.Regexp(r"^(https?|s3)://[!-~]+$", error="An http(s):// or s3:// URL (ASCII, no spaces)."),
        ],
        metadata={"description": "http(s)://host/path or s3://bucket/key"},
    )
    size_bytes = ByteCount(
        validate=validate.Range(min=1),
        metadata={"description": "Asked of the origin when left out", "pattern": "^[1-9][0-9]*$"},
    )
    sha256 = fields.String(
        allow_none=True, validate=validate.Regexp(r"^[0-9a-fA-F]{64}$", error="64 hex digits."),
        metadata={"description": "Checked after every transfer when given"},
    )
    content_type = fields.String(allow_none=True, validate=[validate.Length(max=255), PRINTABLE])


class SourceEnvelopeSchema(ma.Schema):
    success = fields.Boolean()
    message = fields.String()
    source = fields.Nested(SourceSchema)


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
    reason = fields.String(
        metadata={"description": "Why the service refused, machine-readable (e.g. quota_exceeded, invalid_transition)"}
    )
    errors = fields.Dict(metadata={"description": "Field-by-field validation errors"})
    status = fields.String(metadata={"description": "Current state, when an action does not fit it"})
    needed_bytes = ByteCount(metadata={"description": "When storage is short: bytes needed"})
    free_bytes = ByteCount(metadata={"description": "When storage is short: bytes free"})
    max_active_downloads = fields.Integer(metadata={"description": "When too many downloads are active: the cap"})


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
