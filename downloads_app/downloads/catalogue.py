"""The catalogue of titles: listing, admin changes, sizes, and where each file comes from."""

from peewee import IntegrityError, prefetch

from downloads_app.downloads.models import Content, ContentSource, Download
from downloads_app.downloads.refusals import (
    ContentExists,
    ContentInUse,
    ContentNotFound,
    OriginUnusable,
    QualityNotOffered,
    Refusal,
    TitleNotDownloadable,
)
from downloads_app.infra import origins
from downloads_app.infra.database import database

# DOWNLOAD_TRANSPORT: the schemes DOWNLOAD_ORIGIN_URL must have for it.
TRANSPORT_SCHEMES = {"simulated": (), "http": ("http://", "https://"), "s3": ("s3://",)}


def offered_qualities(settings):
    """Qualities the service knows a bitrate for, lowest first."""
    return list(settings.quality_bitrates_kbps)


def file_size_bytes(settings, duration_seconds, quality):
    """Duration × bitrate, in bytes (kbps × 1000 / 8 = kbps × 125)."""
    return duration_seconds * settings.quality_bitrates_kbps[quality] * 125


def list_contents():
    """Every title, with its sources (for `sizes`) in one more query, not one per title."""
    return list(prefetch(Content.select().order_by(Content.title, Content.id), ContentSource.select()))


def _not_found(content_id):
    return ContentNotFound(f"No title with id {content_id!r} in the catalogue.")


def get_content(content_id):
    content = Content.get_or_none(Content.id == content_id)
    if content is None:
        raise _not_found(content_id)
    return content


def _check_offered(content, quality):
    if quality not in content.quality_list:
        raise QualityNotOffered(f"{content.title!r} is offered in {', '.join(content.quality_list)}, not {quality!r}.")


def files_of(settings, wanted):
    """For each (content id, quality) of `wanted`: (bytes, source or None: simulated, the title), or
    the refusal (ContentNotFound, TitleNotDownloadable, QualityNotOffered, OriginUnusable); two
    queries for them all.

    The bytes are the source file's, else duration × bitrate.
    """
    ids = {content_id for content_id, _ in wanted}
    contents = {content.id: content for content in Content.select().where(Content.id.in_(ids))}
    saved = {(s.content_id, s.quality): s for s in ContentSource.select().where(ContentSource.content.in_(ids))}
    files = []
    for content_id, quality in wanted:
        try:
            content = contents.get(content_id)
            if content is None:
                raise _not_found(content_id)
            if not content.downloadable:
                raise TitleNotDownloadable(f"{content.title!r} cannot be downloaded, only streamed.")
            _check_offered(content, quality)
            estimate = file_size_bytes(settings, content.duration_seconds, quality)
            source = _source_or_origin(settings, saved.get((content_id, quality)), content_id, quality, estimate)
            files.append(((source.size_bytes if source else estimate), source, content))
        except Refusal as refusal:
            files.append(refusal)
    return files


def sizes(settings, content):
    """{quality: bytes} of `content` (its sources are prefetched by `list_contents`)."""
    sources = {s.quality: s.size_bytes for s in content.sources}
    return {q: sources.get(q) or file_size_bytes(settings, content.duration_seconds, q) for q in content.quality_list}


def transport_problem(settings):
    """Why DOWNLOAD_TRANSPORT and DOWNLOAD_ORIGIN_URL cannot work together, or None."""
    transport, base = settings.download_transport, settings.download_origin_url
    if transport not in TRANSPORT_SCHEMES:
        return f"DOWNLOAD_TRANSPORT={transport!r}; expected one of {', '.join(TRANSPORT_SCHEMES)}"
    schemes = TRANSPORT_SCHEMES[transport]
    if schemes and not base.startswith(schemes):
        return (
            f"DOWNLOAD_TRANSPORT={transport!r} needs DOWNLOAD_ORIGIN_URL starting with "
            f"{' or '.join(schemes)}, not {base!r}"
        )
    return None


def source_for(settings, content_id, quality, size_bytes):
    """Where the file of `content_id` at `quality` comes from (a ContentSource, maybe unsaved); None: simulated.

    The catalogue's source for the title and quality if it has one, else
    DOWNLOAD_ORIGIN_URL/<content id>/<quality> when DOWNLOAD_TRANSPORT is http or s3.
    """
    source = ContentSource.get_or_none(ContentSource.content == content_id, ContentSource.quality == quality)
    return _source_or_origin(settings, source, content_id, quality, size_bytes)


def _source_or_origin(settings, source, content_id, quality, size_bytes):
    """The catalogue's `source` if there is one, else the transport's origin (None: simulated)."""
    if source is not None or settings.download_transport == "simulated":
        return source
    problem = transport_problem(settings)
    if problem:
        raise OriginUnusable(problem)
    location = f"{settings.download_origin_url.rstrip('/')}/{content_id}/{quality}"
    return ContentSource(content=content_id, quality=quality, size_bytes=size_bytes, location=location)


def set_source(settings, content_id, quality, location, size_bytes=None, sha256=None, content_type=None):
    """Record where `content_id` at `quality` lives; without `size_bytes`, ask the origin."""
    content = get_content(content_id)
    _check_offered(content, quality)
    if size_bytes is None:
        try:
            facts = origins.describe(
                location,
                connect_timeout=settings.download_connect_timeout_seconds,
                read_timeout=settings.download_read_timeout_seconds,
                allow_private_redirects=settings.download_allow_private_redirects,
            )
        except origins.OriginError as exc:
            raise OriginUnusable(f"The origin did not describe the file: {exc}") from exc
        size_bytes, content_type = facts.size, content_type or facts.content_type
    fields = {"location": location, "size_bytes": size_bytes, "sha256": sha256, "content_type": content_type}
    with database.atomic():
        ContentSource.insert(content=content.id, quality=quality, **fields).on_conflict(
            conflict_target=[ContentSource.content, ContentSource.quality],
            update=fields,
        ).execute()
    return ContentSource.get(ContentSource.content == content.id, ContentSource.quality == quality)


def delete_source(content_id, quality):
    """Forget where a quality's file lives (downloads of it are simulated or use DOWNLOAD_ORIGIN_URL)."""
    deleted = (
        ContentSource.delete()
        .where(ContentSource.content == get_content(content_id).id, ContentSource.quality == quality)
        .execute()
    )
    if not deleted:
        raise ContentNotFound(f"No source for {content_id!r} at {quality!r}.")


def _check_qualities(settings, qualities):
    offered = offered_qualities(settings)
    unknown = sorted(set(qualities) - set(offered))
    if unknown:
        raise QualityNotOffered(f"Unknown qualities {unknown}; the service offers {offered}.")
    return ",".join(q for q in offered if q in qualities)


def create_content(settings, id, title, duration_seconds, qualities, **rules):
    """Add a title; `rules` are its rules of offline viewing and series fields (Content's columns)."""
    try:
        return Content.create(
            id=id,
            title=title,
            duration_seconds=duration_seconds,
            qualities=_check_qualities(settings, qualities),
            **rules,
        )
    except IntegrityError as exc:
        raise ContentExists(f"A title with id {id!r} already exists.") from exc


def update_content(settings, content_id, **changes):
    content = get_content(content_id)
    if "qualities" in changes:
        changes["qualities"] = _check_qualities(settings, changes["qualities"])
    for name, value in changes.items():
        setattr(content, name, value)
    content.save()
    return content


def delete_content(content_id):
    with database.atomic():
        content = get_content(content_id)
        if Download.select().where(Download.content == content).exists():
            raise ContentInUse(f"{content.title!r} still has downloads; it can be removed once they are deleted.")
        ContentSource.delete().where(ContentSource.content == content.id).execute()
        content.delete_instance()
