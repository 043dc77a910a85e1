"""Marshmallow schemas of every request and response body, by role."""

from datetime import UTC

import marshmallow as ma
from flask import current_app
from marshmallow import fields, validate

from downloads_app.downloads.catalogue import sizes
from downloads_app.downloads.lifecycle import STATUSES
from downloads_app.web.current import current_runtime

MAX_PAGE_SIZE = 100
CONTENT_ID_PATTERN = "[A-Za-z0-9._-]{1,64}"
MAX_PAGE = 1_000_000  # keeps the SQL offset well inside a 64-bit integer
MAX_BYTE_COUNT = 2**63 - 1  # the byte columns are 64-bit signed integers (BIGINT)

# Examples in the spec, so that Swagger UI's "Try it out" works against `flask demo seed`
# (downloads_app/web/cli.py DEMO_TITLES) with the default qualities (config QUALITY_BITRATES_KBPS).
DEMO_CONTENT_ID = "big-buck-bunny"
DEMO_QUALITY = "720p"


class ByteCount(fields.Integer):
    """A byte count, as a decimal string both ways, so no client loses precision."""

    def __init__(self, **kwargs):
        super().__init__(as_string=True, **kwargs)


class FullMatch(validate.Regexp):
    """A pattern the whole value must match: with `re.match`, `$` also matches before a final
    newline. The pattern keeps its `^…$` for the spec, whose (ECMAScript) `$` is the end."""

    def __call__(self, value):
        if self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value


class UtcDateTime(fields.DateTime):
    """ISO 8601 time in UTC; the database stores naive UTC."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


class JsonBoolean(fields.Boolean):
    """true or false, and nothing else: marshmallow would take 0, 1, "yes" and "off" too."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class Quality(fields.String):
    """A quality the service offers (QUALITY_BITRATES_KBPS); the spec lists them as an enum."""

    def _deserialize(self, value, attr, data, **kwargs):
        quality = super()._deserialize(value, attr, data, **kwargs)
        offered = list(current_app.config["QUALITY_BITRATES_KBPS"])
        if quality not in offered:
            raise ma.ValidationError(f"Must be one of: {', '.join(offered)}.")
        return quality


def spec_properties(app):
    """apispec attribute function: Quality's `enum` (and an offered example) from `app`'s
    settings, ByteCount's digits; a list of qualities gets all of them as its example."""

    def add_properties(converter, field, **kwargs):
        del converter, kwargs
        offered = list(app.config["QUALITY_BITRATES_KBPS"])
        if isinstance(field, Quality):
            properties = {"enum": offered}
            if "example" not in field.metadata:
                properties["example"] = DEMO_QUALITY if DEMO_QUALITY in offered else offered[0]
            return properties
        if isinstance(field, fields.List) and isinstance(field.inner, Quality) and "example" not in field.metadata:
            return {"example": offered}
        if isinstance(field, ByteCount) and "pattern" not in field.metadata:
            return {"pattern": "^[0-9]+$"}
        return {}

    return add_properties


CONTENT_ID_FORMAT = FullMatch(f"^{CONTENT_ID_PATTERN}$", error="1 to 64 letters, digits, '.', '_' or '-'.")
# Text a person typed: no control characters (PostgreSQL refuses NUL in text, too).
PRINTABLE = FullMatch(r"^[^\x00-\x1f\x7f]*$", error="Control characters are not allowed.")


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


# ---------------------------------------------------------------- requests


ID_FORMAT = FullMatch("^[0-9a-f]{32}$", error="An id: 32 lowercase hex digits.")


class StartDownloadSchema(StrictSchema):
    content_id = fields.String(
        required=True,
        validate=CONTENT_ID_FORMAT,
        metadata={"description": "A title's `id` from GET /api/contents", "example": DEMO_CONTENT_ID},
    )
    quality = Quality(required=True, metadata={"description": "One of the title's `qualities`"})
    device_id = fields.String(
        allow_none=True,
        validate=ID_FORMAT,
        metadata={
            "description": "The device to download to, from GET /api/devices: required once you have registered "
            "one. Left out or null before that, the download goes to your default device.",
            "example": None,
        },
    )


class DeviceCreateSchema(StrictSchema):
    name = fields.String(
        required=True, validate=[validate.Length(min=1, max=100), PRINTABLE], metadata={"example": "Living-room tablet"}
    )
    platform = fields.String(
        required=True,
        validate=FullMatch(r"^[A-Za-z0-9 ._-]{1,32}$", error="1 to 32 letters, digits, spaces, '.', '_' or '-'."),
        metadata={"example": "android"},
    )


class IdempotencyHeaderSchema(ma.Schema):
    """The optional Idempotency-Key header of a start; other headers are ignored."""

    class Meta:
        unknown = ma.EXCLUDE

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=FullMatch(r"^[\x21-\x7e]{1,255}$", error="1 to 255 visible ASCII characters."),
        metadata={
            "description": "Repeat a start with the same key to get the same download back",
            "example": f"start-{DEMO_CONTENT_ID}-{DEMO_QUALITY}-1",
        },
    )


class DownloadQueryArgsSchema(StrictSchema):
    """Unknown query parameters are refused (a misspelt filter would list everything).

    Parse it with `unknown=RAISE`: webargs ignores unknown query parameters by default.
    """

    status = fields.String(
        validate=validate.OneOf(STATUSES),
        metadata={"description": "Only downloads in this state", "example": "downloading"},
    )
    device_id = fields.String(
        validate=FullMatch("^([0-9a-f]{32}|default)$", error="A device's id, or default."),
        metadata={
            "description": "Only downloads on this device (`default`: started without naming one)",
            "example": "default",
        },
    )
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE), metadata={"example": 1})
    page_size = fields.Integer(
        load_default=20, validate=validate.Range(min=1, max=MAX_PAGE_SIZE), metadata={"example": 20}
    )
    cache_buster = fields.String(
        data_key="_", metadata={"description": "Ignored: lets clients defeat caches", "example": "1700000000000"}
    )

    @ma.post_load
    def _drop_cache_buster(self, args, **kwargs):
        args.pop("cache_buster", None)
        return args


class TitleRulesSchema(StrictSchema):
    """A title's rules of offline viewing and its place in a series; null: the service's setting (none for the caps)."""

    downloadable = JsonBoolean(metadata={"description": "False: the title may only be streamed", "example": True})
    max_downloads_per_year = fields.Integer(
        allow_none=True,
        strict=True,
        validate=validate.Range(min=0, max=10_000),
        metadata={"description": "Downloads per account and calendar year (null: no cap)", "example": None},
    )
    license_days = fields.Float(
        allow_none=True,
        validate=validate.Range(min=0.00001, max=3650),  # from under a second: tests use seconds
        metadata={"description": "Licence from completion or renewal, in days (null: LICENSE_DAYS)", "example": None},
    )
    playback_window_hours = fields.Float(
        allow_none=True,
        validate=validate.Range(min=0.0001, max=87_600),
        metadata={
            "description": "Licence from the first playback, in hours (null: PLAYBACK_WINDOW_HOURS)",
            "example": None,
        },
    )
    max_renewals = fields.Integer(
        allow_none=True,
        strict=True,
        validate=validate.Range(min=0, max=10_000),
        metadata={
            "description": "Renewals per account and calendar year (null: MAX_RENEWALS_PER_YEAR)",
            "example": None,
        },
    )
    series_id = fields.String(allow_none=True, validate=CONTENT_ID_FORMAT, metadata={"example": None})
    season = fields.Integer(
        allow_none=True, strict=True, validate=validate.Range(min=0, max=1000), metadata={"example": None}
    )
    episode = fields.Integer(
        allow_none=True, strict=True, validate=validate.Range(min=0, max=100_000), metadata={"example": None}
    )


class ContentCreateSchema(TitleRulesSchema):
    # The example is a title the demo catalogue does not have, so adding it works once.
    id = fields.String(required=True, validate=CONTENT_ID_FORMAT, metadata={"example": "elephants-dream"})
    title = fields.String(
        required=True, validate=[validate.Length(min=1, max=200), PRINTABLE], metadata={"example": "Elephants Dream"}
    )
    duration_seconds = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=86_400), metadata={"example": 654}
    )
    qualities = fields.List(Quality(), required=True, validate=validate.Length(min=1))


class ContentUpdateSchema(TitleRulesSchema):
    # The example restates the demo title big-buck-bunny, so trying it changes nothing.
    title = fields.String(validate=[validate.Length(min=1, max=200), PRINTABLE], metadata={"example": "Big Buck Bunny"})
    duration_seconds = fields.Integer(
        strict=True, validate=validate.Range(min=1, max=86_400), metadata={"example": 596}
    )
    qualities = fields.List(Quality(), validate=validate.Length(min=1))


class SetSourceSchema(StrictSchema):
    """Where a title's file lives at one quality (the quality is in the path)."""

    location = fields.String(
        required=True,
        validate=[
            validate.Length(max=2048),
            FullMatch(r"^(https?|s3)://[!-~]+$", error="An http(s):// or s3:// URL (ASCII, no spaces)."),
        ],
        metadata={
            "description": "http(s)://host/path or s3://bucket/key",
            "example": f"https://media.example.com/{DEMO_CONTENT_ID}/{DEMO_QUALITY}.mp4",
        },
    )
    size_bytes = ByteCount(
        validate=validate.Range(min=1, max=MAX_BYTE_COUNT),
        metadata={
            "description": "Asked of the origin when left out",
            "pattern": "^[1-9][0-9]*$",
            "example": "248308500",
        },
    )
    sha256 = fields.String(
        allow_none=True,
        validate=FullMatch(r"^[0-9a-fA-F]{64}$", error="64 hex digits."),
        metadata={"description": "Checked after every transfer when given", "example": None},
    )
    content_type = fields.String(
        allow_none=True, validate=[validate.Length(max=255), PRINTABLE], metadata={"example": "video/mp4"}
    )


# ---------------------------------------------------------------- responses
#
# A response field the server always sends is `required=True` (dumping ignores it; the spec
# lists it under `required`, so generated clients type it as always there). A field that can be
# null is still sent, and also `allow_none=True` (`nullable: true`).


class DownloadSchema(ma.Schema):
    id = fields.String(required=True)
    user_id = fields.String(required=True)
    content_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    quality = fields.String(required=True)
    progress = fields.Integer(required=True, metadata={"description": "Percent, 0 to 100"})
    file_size_bytes = ByteCount(required=True)
    downloaded_bytes = ByteCount(required=True)
    attempts = fields.Integer(required=True)
    error = fields.String(
        required=True, allow_none=True, metadata={"description": "Why the download failed (only when failed)"}
    )
    sha256 = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "SHA-256 (hex) of the stored file, once completed by a real transfer"},
    )
    last_error = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Error of the latest failed attempt, even if a retry then succeeded"},
    )
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)
    started_at = UtcDateTime(required=True, allow_none=True)
    completed_at = UtcDateTime(required=True, allow_none=True)
    device_id = fields.String(
        required=True, allow_none=True, metadata={"description": "The device it is on (null: the default device)"}
    )
    license_expires_at = UtcDateTime(
        required=True,
        allow_none=True,
        metadata={"description": "When its licence runs out (set at completion; the first play may shorten it)"},
    )
    played_at = UtcDateTime(
        required=True, allow_none=True, metadata={"description": "The first playback of its current licence"}
    )
    watched_at = UtcDateTime(
        required=True, allow_none=True, metadata={"description": "When you marked it watched (POST …/watched)"}
    )


class WatchedSchema(ma.Schema):
    success = fields.Boolean(required=True)
    message = fields.String(required=True, metadata={"description": "What was done, and why not more"})
    download = fields.Nested(
        DownloadSchema, required=True, metadata={"description": "The watched download (deleted when replaced)"}
    )
    next_download = fields.Nested(
        DownloadSchema,
        required=True,
        allow_none=True,
        metadata={"description": "The next episode's download that took its place (smart downloads), or null"},
    )


class AccountSchema(ma.Schema):
    success = fields.Boolean(required=True)
    user_id = fields.String(required=True)
    smart_downloads = fields.Boolean(
        required=True, metadata={"description": "A watched episode makes way for the series' next one"}
    )


class AccountUpdateSchema(StrictSchema):
    smart_downloads = JsonBoolean(required=True, metadata={"example": True})


class DownloadEnvelopeSchema(ma.Schema):
    success = fields.Boolean(required=True)
    message = fields.String(metadata={"description": "What was done (absent when a download is only read)"})
    download = fields.Nested(DownloadSchema, required=True)


class PaginationSchema(ma.Schema):
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    total = fields.Integer(required=True)
    pages = fields.Integer(required=True)


class DownloadListSchema(ma.Schema):
    success = fields.Boolean(required=True)
    downloads = fields.List(fields.Nested(DownloadSchema), required=True)
    pagination = fields.Nested(PaginationSchema, required=True)


class ProgressSchema(ma.Schema):
    success = fields.Boolean(required=True)
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    progress = fields.Integer(required=True, metadata={"description": "Percent, 0 to 100"})
    downloaded_bytes = ByteCount(required=True)
    file_size_bytes = ByteCount(required=True)


class MessageSchema(ma.Schema):
    success = fields.Boolean(required=True)
    message = fields.String(required=True)


class CleanupSchema(MessageSchema):
    deleted_count = fields.Integer(required=True)
    freed_bytes = ByteCount(required=True)


class StorageSchema(ma.Schema):
    success = fields.Boolean(required=True)
    quota_bytes = ByteCount(required=True)
    used_bytes = ByteCount(required=True)
    free_bytes = ByteCount(required=True)


class ContentSchema(ma.Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    duration_seconds = fields.Integer(required=True)
    qualities = fields.List(fields.String(), required=True, attribute="quality_list")
    downloadable = fields.Boolean(required=True)
    max_downloads_per_year = fields.Integer(required=True, allow_none=True, metadata={"description": "null: no cap"})
    license_days = fields.Float(required=True, allow_none=True, metadata={"description": "null: LICENSE_DAYS"})
    playback_window_hours = fields.Float(
        required=True, allow_none=True, metadata={"description": "null: PLAYBACK_WINDOW_HOURS"}
    )
    max_renewals = fields.Integer(
        required=True, allow_none=True, metadata={"description": "null: MAX_RENEWALS_PER_YEAR"}
    )
    series_id = fields.String(required=True, allow_none=True)
    season = fields.Integer(required=True, allow_none=True)
    episode = fields.Integer(required=True, allow_none=True)
    sizes = fields.Method(
        "_sizes",
        required=True,
        metadata={
            "description": "file_size_bytes by quality, as decimal strings",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
    )

    def _sizes(self, content):
        return {quality: str(size) for quality, size in sizes(current_runtime().settings, content).items()}


class SourceSchema(ma.Schema):
    """Where a title's file lives at one quality."""

    quality = fields.String(required=True)
    location = fields.String(required=True, metadata={"description": "http(s)://host/path or s3://bucket/key"})
    size_bytes = ByteCount(required=True, metadata={"pattern": "^[1-9][0-9]*$"})
    sha256 = fields.String(
        required=True, allow_none=True, metadata={"description": "Checked after every transfer when set"}
    )
    content_type = fields.String(required=True, allow_none=True)


class SourceEnvelopeSchema(ma.Schema):
    success = fields.Boolean(required=True)
    message = fields.String(required=True)
    source = fields.Nested(SourceSchema, required=True)


class ContentEnvelopeSchema(ma.Schema):
    success = fields.Boolean(required=True)
    message = fields.String(metadata={"description": "What was done (absent when a title is only read)"})
    content = fields.Nested(ContentSchema, required=True)


class ContentListSchema(ma.Schema):
    success = fields.Boolean(required=True)
    contents = fields.List(fields.Nested(ContentSchema), required=True)


class HoldingsSchema(ma.Schema):
    download_count = fields.Integer(
        required=True, metadata={"description": "Downloads pending, downloading, paused or completed"}
    )
    used_bytes = ByteCount(required=True, metadata={"description": "Their reserved bytes"})


class DeviceSchema(HoldingsSchema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    platform = fields.String(required=True)
    created_at = UtcDateTime(required=True)


class DeviceEnvelopeSchema(ma.Schema):
    success = fields.Boolean(required=True)
    message = fields.String(required=True)
    device = fields.Nested(DeviceSchema, required=True)


class DeviceListSchema(ma.Schema):
    success = fields.Boolean(required=True)
    devices = fields.List(fields.Nested(DeviceSchema), required=True)
    default_device = fields.Nested(
        HoldingsSchema, required=True, metadata={"description": "Downloads started without naming a device"}
    )


class ErrorSchema(ma.Schema):
    success = fields.Boolean(required=True, metadata={"description": "Always false"})
    message = fields.String(required=True)
    reason = fields.String(
        metadata={"description": "Why the service refused, machine-readable (e.g. quota_exceeded, invalid_transition)"}
    )
    errors = fields.Dict(metadata={"description": "Field-by-field validation errors"})
    status = fields.String(metadata={"description": "Current state, when an action does not fit it"})
    needed_bytes = ByteCount(metadata={"description": "When storage is short: bytes needed"})
    free_bytes = ByteCount(metadata={"description": "When storage is short: bytes free"})
    max_active_downloads = fields.Integer(metadata={"description": "When too many downloads are active: the cap"})
    max_devices = fields.Integer(metadata={"description": "When too many devices are registered: the cap"})
    max_downloads_per_device = fields.Integer(metadata={"description": "When a device holds too many: the cap"})
    max_downloads_per_year = fields.Integer(metadata={"description": "When a title's yearly downloads are spent"})
    max_renewals = fields.Integer(metadata={"description": "When a title's yearly renewals are spent"})
    frees_up_on = fields.Date(metadata={"description": "When a yearly allowance is spent: the day it is new again"})


class QueueDepthSchema(ma.Schema):
    name = fields.String(required=True)
    ready = fields.Integer(required=True, metadata={"description": "Messages waiting for a worker"})
    delayed = fields.Integer(required=True, metadata={"description": "Messages waiting out a retry backoff"})
    dead_lettered = fields.Integer(required=True, metadata={"description": "Messages Dramatiq gave up on"})


class WorkerSchema(ma.Schema):
    host = fields.String(required=True)
    pid = fields.Integer(required=True)
    threads = fields.Integer(required=True)
    started_at = fields.Float(required=True, metadata={"description": "Unix time"})
    last_beat = fields.Float(required=True, metadata={"description": "Unix time of the last heartbeat"})
    alive = fields.Boolean(required=True)


class StalledDownloadSchema(DownloadSchema):
    """A download record cut to what an operator needs to judge a stall."""

    class Meta:
        fields = ("id", "user_id", "attempts", "progress", "updated_at")


class ExpiringLicenceSchema(DownloadSchema):
    """A completed download whose licence runs out soon."""

    class Meta:
        fields = ("id", "user_id", "content_id", "device_id", "license_expires_at")


class QueueHealthSchema(ma.Schema):
    success = fields.Boolean(required=True)
    queue = fields.Nested(QueueDepthSchema, required=True)
    dead_lettered_downloads = fields.List(fields.String(), required=True)
    workers = fields.List(fields.Nested(WorkerSchema), required=True)
    workers_alive = fields.Integer(required=True)
    downloads_by_status = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    oldest_pending_age_seconds = fields.Float(required=True, allow_none=True)
    stalled_count = fields.Integer(required=True)
    stalled = fields.List(fields.Nested(StalledDownloadSchema), required=True)
    licences_expiring_next_day = fields.Integer(required=True, metadata={"description": "Within 24 hours"})
    expiring_licences = fields.List(
        fields.Nested(ExpiringLicenceSchema), required=True, metadata={"description": "The first 100, soonest first"}
    )


class ActivityMinuteSchema(ma.Schema):
    minute = UtcDateTime(required=True, metadata={"description": "The minute's start"})
    started = fields.Integer(required=True, metadata={"description": "Downloads started"})
    completed = fields.Integer(required=True, metadata={"description": "Transfer runs that completed their download"})
    failed = fields.Integer(required=True, metadata={"description": "Transfer runs that failed (retried or not)"})
    transferred_bytes = ByteCount(required=True, metadata={"description": "Bytes moved by transfers"})
    queue_depth = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "Ready and delayed messages at the minute's last sample (null: none taken)"},
    )


class ActivitySchema(ma.Schema):
    success = fields.Boolean(required=True)
    minutes = fields.List(
        fields.Nested(ActivityMinuteSchema), required=True, metadata={"description": "The last 60, oldest first"}
    )
