"""Path converters for ids, so a path segment that cannot be an id never reaches a view."""

from werkzeug.routing import BaseConverter

from downloads_app.web.schemas import CONTENT_ID_PATTERN, DEMO_CONTENT_ID, DEMO_QUALITY


class DownloadIdConverter(BaseConverter):
    """A download id: 32 lowercase hex digits (`models.new_id`), so `start` is not one."""

    regex = "[0-9a-f]{32}"
    # No example: an id is random, and only its owner's downloads are found.
    description = "A download's `id`, from POST /api/downloads/start or GET /api/downloads"


class DeviceIdConverter(BaseConverter):
    """A device id: 32 lowercase hex digits (`models.new_id`)."""

    regex = "[0-9a-f]{32}"
    description = "A device's `id`, from POST /api/devices or GET /api/devices"


class ContentIdConverter(BaseConverter):
    """A title's id: what the catalogue accepts (letters, digits, `.`, `_`, `-`)."""

    regex = CONTENT_ID_PATTERN
    description = "A title's `id`, from GET /api/contents"
    example = DEMO_CONTENT_ID


class QualityConverter(BaseConverter):
    """A quality's name, such as `720p`."""

    regex = "[0-9A-Za-z]{1,16}"
    description = "One of the title's `qualities`"
    example = DEMO_QUALITY


CONVERTERS = {
    "download_id": DownloadIdConverter,
    "device_id": DeviceIdConverter,
    "content_id": ContentIdConverter,
    "quality": QualityConverter,
}


def _schema(converter):
    schema = {"type": "string", "pattern": f"^{converter.regex}$", "description": converter.description}
    if hasattr(converter, "example"):
        schema["example"] = converter.example
    return schema


def init_app(app, api):
    """Register the converters with Flask and, with their patterns, in the spec."""
    for name, converter in CONVERTERS.items():
        app.url_map.converters[name] = converter
        api.register_converter(converter, _schema)
