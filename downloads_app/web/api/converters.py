"""Path converters for ids, so a path segment that cannot be an id never reaches a view."""
from werkzeug.routing import BaseConverter

from downloads_app.web.schemas import CONTENT_ID_PATTERN


class DownloadIdConverter(BaseConverter):
    """A download id: 32 lowercase hex digits (`models.new_id`), so `start` is not one."""

    regex = "[0-9a-f]{32}"


class ContentIdConverter(BaseConverter):
    """A title's id: what the catalogue accepts (letters, digits, `.`, `_`, `-`)."""

    regex = CONTENT_ID_PATTERN


class QualityConverter(BaseConverter):
    """A quality's name, such as `720p`."""

    regex = "[0-9A-Za-z]{1,16}"


CONVERTERS = {"download_id": DownloadIdConverter, "content_id": ContentIdConverter, "quality": QualityConverter}


def _schema(converter):
    return {"type": "string", "pattern": f"^{converter.regex}$"}


def init_app(app, api):
    """Register the converters with Flask and, with their patterns, in the spec."""
    for name, converter in CONVERTERS.items():
        app.url_map.converters[name] = converter
        api.register_converter(converter, _schema)
