"""Series: the next episode of a title, and marking an episode watched (smart downloads)."""

import logging
from dataclasses import dataclass

from peewee import fn

from downloads_app.downloads import accounts, lifecycle, starts
from downloads_app.downloads.models import Content, Download, utcnow
from downloads_app.downloads.refusals import InvalidTransition, Refusal
from downloads_app.downloads.user_actions import get_download
from downloads_app.infra.logs import context

log = logging.getLogger("downloads_app.service")


@dataclass(frozen=True)
class Watched:
    """What marking an episode watched did: the download as marked, the next episode's download
    if it took the watched one's place, and what happened, said for the user."""

    download: Download
    next_download: Download | None
    message: str


def next_episode(content):
    """The title after `content` in its series (by season, then episode), or None."""
    if content.series_id is None or content.episode is None:
        return None
    season, their_season = content.season or 0, fn.COALESCE(Content.season, 0)
    later = (their_season > season) | ((their_season == season) & (Content.episode > content.episode))
    return (
        Content.select()
        .where(Content.series_id == content.series_id, Content.episode.is_null(False), later)
        .order_by(their_season, Content.episode, Content.id)
        .first()
    )


def mark_watched(rt, user_id, download_id):
    """Mark a completed download watched. With the user's smart downloads on, the next episode of
    its series, on the same device and at the same quality, takes its place (`starts.replace`);
    the watched one is kept when there is no next episode or the next cannot be started."""
    download = get_download(user_id, download_id)
    if download.status != lifecycle.COMPLETED:
        raise InvalidTransition(f"Cannot mark watched a download that is {download.status}.", status=download.status)
    now = utcnow()
    marked = list(
        Download.update(watched_at=now, updated_at=now)
        .where(Download.id == download.id, Download.status == lifecycle.COMPLETED)
        .returning(Download)
        .execute()
    )
    if not marked:
        return mark_watched(rt, user_id, download_id)  # it changed meanwhile: answer from what it is now
    watched = marked[0]
    if not accounts.settings_of(user_id)["smart_downloads"]:
        return Watched(watched, None, "Marked watched.")
    following = next_episode(Content.get_by_id(watched.content_id))
    if following is None:
        return Watched(watched, None, "Marked watched; it is the last episode of its series, so it is kept.")
    start = starts.StartRequest(user_id, following.id, watched.quality, device_id=watched.device_id)
    try:
        replacement = starts.replace(rt, watched, start)
    except Refusal as refusal:
        log.info("Smart download of %s not started: %s", following.id, refusal, extra=context(watched))
        return Watched(watched, None, f"Marked watched and kept: the next episode was not started. {refusal}")
    return Watched(watched, replacement, f"Marked watched and deleted; the next episode, {following.title!r}, started.")
