"""The catalogue of titles: listing, admin changes, and the size of a title at a quality."""
from flask import current_app
from peewee import IntegrityError

from downloads_app.db import database
from downloads_app.errors import ContentExists, ContentInUse, ContentNotFound, QualityNotOffered
from downloads_app.models import Content, Download


def offered_qualities():
    """Qualities the service knows a bitrate for, lowest first."""
    return list(current_app.config["QUALITY_BITRATES_KBPS"])


def file_size_bytes(duration_seconds, quality):
    """Duration × bitrate, in bytes (kbps × 1000 / 8 = kbps × 125)."""
    return duration_seconds * current_app.config["QUALITY_BITRATES_KBPS"][quality] * 125


def list_contents():
    return list(Content.select().order_by(Content.title, Content.id))


def get_content(content_id):
    content = Content.get_or_none(Content.id == content_id)
    if content is None:
        raise ContentNotFound(f"No title with id {content_id!r} in the catalogue.")
    return content


def size_of(content, quality):
    """Bytes of `content` at `quality`; QualityNotOffered if the title lacks it."""
    if quality not in content.quality_list:
        raise QualityNotOffered(
            f"{content.title!r} is offered in {', '.join(content.quality_list)}, not {quality!r}."
        )
    return file_size_bytes(content.duration_seconds, quality)


def _check_qualities(qualities):
    unknown = sorted(set(qualities) - set(offered_qualities()))
    if unknown:
        raise QualityNotOffered(
            f"Unknown qualities {unknown}; the service offers {offered_qualities()}."
        )
    return ",".join(q for q in offered_qualities() if q in qualities)


def create_content(id, title, duration_seconds, qualities):
    try:
        return Content.create(
            id=id, title=title, duration_seconds=duration_seconds,
            qualities=_check_qualities(qualities),
        )
    except IntegrityError as exc:
        raise ContentExists(f"A title with id {id!r} already exists.") from exc


def update_content(content_id, **changes):
    content = get_content(content_id)
    if "qualities" in changes:
        changes["qualities"] = _check_qualities(changes["qualities"])
    for name, value in changes.items():
        setattr(content, name, value)
    content.save()
    return content


def delete_content(content_id):
    with database.atomic():
        content = get_content(content_id)
        if Download.select().where(Download.content == content).exists():
            raise ContentInUse(
                f"{content.title!r} still has downloads; it can be removed once they are deleted."
            )
        content.delete_instance()
