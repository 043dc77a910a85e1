"""Whether a start or a resume may make a download live: held titles, idempotency keys, the cap."""

from peewee import fn

from downloads_app.downloads import ledger, lifecycle
from downloads_app.downloads.models import Download
from downloads_app.downloads.refusals import AlreadyHeld, IdempotencyKeyReused, TooManyActiveDownloads


def existing_download(user_id, content_id, quality, idempotency_key, device_id=None):
    """The download a start must return instead of making one, or None.

    That is the download started with the same Idempotency-Key (IdempotencyKeyReused if it
    was for another title or quality), else one of this title and quality the user holds on
    the device (None: the default device).
    """
    if idempotency_key is not None:
        keyed = Download.get_or_none(Download.user_id == user_id, Download.idempotency_key == idempotency_key)
        if keyed is not None:
            if (keyed.content_id, keyed.quality) != (content_id, quality):
                raise IdempotencyKeyReused(
                    f"The Idempotency-Key {idempotency_key!r} was used for {keyed.content_id} at "
                    f"{keyed.quality}; use a new key for a different download."
                )
            return keyed
    return _held(user_id, content_id, quality, device_id).order_by(Download.created_at.desc()).first()


def any_existing(starts):
    """Whether any of `starts` (user_id, content_id, quality, idempotency_key), all on the default
    device, has a download `existing_download` would return; one query for them all."""
    users = {start.user_id for start in starts}
    wanted = {(start.user_id, start.content_id, start.quality) for start in starts}
    keys = {(start.user_id, start.idempotency_key) for start in starts if start.idempotency_key is not None}
    held = (
        Download.user_id.in_(users)
        & Download.content.in_({content_id for _, content_id, _ in wanted})
        & Download.quality.in_({quality for _, _, quality in wanted})
        & Download.status.in_(lifecycle.RESERVING)
        & Download.device.is_null()
    )
    if keys:
        held |= Download.user_id.in_(users) & Download.idempotency_key.in_({key for _, key in keys})
    columns = (Download.user_id, Download.content, Download.quality, Download.idempotency_key, Download.status)
    for user_id, content_id, quality, key, status in Download.select(*columns).where(held).tuples():
        if (user_id, key) in keys or ((user_id, content_id, quality) in wanted and status in lifecycle.RESERVING):
            return True
    return False


def _held(user_id, content_id, quality, device_id):
    """The user's downloads of this title and quality on the device (None: the default device)
    that hold quota (live or completed)."""
    on_device = Download.device.is_null() if device_id is None else Download.device == device_id
    return Download.select().where(
        Download.user_id == user_id,
        Download.content == content_id,
        Download.quality == quality,
        Download.status.in_(lifecycle.RESERVING),
        on_device,
    )


def check_not_held(download):
    """AlreadyHeld if the user holds another download of `download`'s title and quality on its device."""
    held = (
        _held(download.user_id, download.content_id, download.quality, download.device_id)
        .where(Download.id != download.id)
        .first()
    )
    if held is not None:
        raise AlreadyHeld(
            f"You already have this title at this quality ({held.status}) in another download.",
            status=held.status,
        )


def over_active_cap(rt, user_ids):
    """Whether any of `user_ids` has more pending and downloading downloads than the cap; one query.

    The caller holds their ledger rows (reserving locks them), so the counts cannot race.
    """
    cap = rt.settings.max_active_downloads_per_user
    if not cap:
        return False
    over = (
        Download.select(Download.user_id)
        .where(Download.user_id.in_(user_ids), Download.status.in_(lifecycle.ACTIVE))
        .group_by(Download.user_id)
        .having(fn.COUNT(Download.id) > cap)
    )
    return over.exists()


def check_active_cap(rt, user_id):
    """TooManyActiveDownloads if the user's pending and downloading downloads exceed the cap."""
    cap = rt.settings.max_active_downloads_per_user
    if not cap:
        return
    ledger.lock(user_id)  # concurrent starts and resumes count one at a time
    active = Download.select().where(Download.user_id == user_id, Download.status.in_(lifecycle.ACTIVE)).count()
    if active > cap:
        raise TooManyActiveDownloads(
            f"You have {cap} downloads pending or downloading, the most allowed at once: "
            "wait for one to finish, or pause or cancel one.",
            max_active_downloads=cap,
        )
