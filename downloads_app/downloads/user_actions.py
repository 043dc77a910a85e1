"""What a signed-in user asks of their downloads: start, list, pause, resume, cancel, retry, play,
renew, delete."""

import math
from functools import partial

from downloads_app.downloads import admission, allowances, catalogue, licences, lifecycle, starts
from downloads_app.downloads.models import Content, Download, utcnow
from downloads_app.downloads.refusals import DownloadNotFound, InvalidTransition, NoStoredFile
from downloads_app.downloads.transitions import apply, delete_where
from downloads_app.infra.database import database
from downloads_app.infra.metrics import LICENCES_RENEWED


def get_download(user_id, download_id):
    """The user's download, or DownloadNotFound (also for another user's id)."""
    download = Download.get_or_none((Download.id == download_id) & (Download.user_id == user_id))
    if download is None:
        raise DownloadNotFound("No download with that id.")
    return download


def _user_transition(rt, user_id, download_id, transition, enqueue=False, **changes):
    with database.atomic():
        download = apply(rt, transition, Download.id == download_id, Download.user_id == user_id, **changes)
        if download is None:
            current = get_download(user_id, download_id)
            raise InvalidTransition(
                f"Cannot {transition} a download that is {current.status}.",
                status=current.status,
            )
        if lifecycle.reserves_quota(transition):  # it holds the title again
            admission.check_not_held(download)
        if lifecycle.target(transition) in lifecycle.ACTIVE:
            admission.check_active_cap(rt, user_id)
        if enqueue:
            # Sent inside the transaction: if Redis refuses, nothing changed. The row is
            # locked until commit, so a worker that picks the message up at once waits
            # for the commit and then sees it pending.
            rt.queue.enqueue_transfer(download.id)
    rt.events.publish("status", [download])
    return download


def pause(rt, user_id, download_id):
    """pending or downloading → paused; the worker stops at its next step."""
    return _user_transition(rt, user_id, download_id, "pause")


def resume(rt, user_id, download_id):
    """paused → pending, queued again; the transfer continues from its downloaded bytes."""
    return _user_transition(rt, user_id, download_id, "resume", enqueue=True)


def cancel(rt, user_id, download_id):
    """pending, downloading or paused → cancelled; releases the reservation."""
    return _user_transition(rt, user_id, download_id, "cancel")


def retry(rt, user_id, download_id):
    """failed or cancelled → pending with fresh attempts, from zero bytes (cancel and failure
    removed the files); reserves the quota again."""
    return _user_transition(
        rt, user_id, download_id, "retry", enqueue=True, attempts=0, error=None, downloaded_bytes=0, progress=0
    )


# A renewed expired download is fetched again from zero, with a new licence at its completion.
_FETCH_AGAIN = {
    "attempts": 0,
    "error": None,
    "downloaded_bytes": 0,
    "progress": 0,
    "sha256": None,
    "completed_at": None,
    "license_expires_at": None,
    "played_at": None,
}


def play(rt, user_id, download_id):
    """Record a playback of a completed download: the first one of its licence starts the title's
    playback window, which ends the licence sooner if it would run longer; later ones change nothing."""
    while True:
        now = utcnow()
        download = get_download(user_id, download_id)
        licences.check_licensed(download, "play", now)
        if download.played_at is not None:
            return download
        content = Content.get_by_id(download.content_id)
        window_ends = now + licences.playback_window(rt.settings, content)
        expires = min(download.license_expires_at or window_ends, window_ends)
        played = list(
            Download.update(played_at=now, license_expires_at=expires, updated_at=now)
            .where(
                Download.id == download.id,
                Download.status == lifecycle.COMPLETED,
                Download.played_at.is_null(),
                Download.license_expires_at == download.license_expires_at,
            )
            .returning(Download)
            .execute()
        )
        if played:
            rt.events.publish("status", played)
            return played[0]
        # Played, renewed, expired or deleted meanwhile: look again.


def renew(rt, user_id, download_id):
    """Renew a download's licence, once more of the title's max_renewals this year: a completed one's
    by another period from its expiry (or now, if that passed), unplayed again; an expired one is
    fetched again (pending, its quota reserved) and licensed from its new completion."""
    with database.atomic():
        download = get_download(user_id, download_id)
        if download.status not in (lifecycle.COMPLETED, lifecycle.EXPIRED):
            raise InvalidTransition(f"Cannot renew a download that is {download.status}.", status=download.status)
        content = Content.get_by_id(download.content_id)
        allowances.take(user_id, content, allowances.RENEWALS, licences.renewal_cap(rt.settings, content))
        extended = None
        while extended is None and download.status == lifecycle.COMPLETED:
            extended = _extend_licence(rt, download, content)
            if extended is None:  # played, renewed or expired meanwhile: look again
                download = get_download(user_id, download_id)
        # Expired, maybe just now by the expiry job: fetch it again (that publishes its new state).
        renewed = extended or _user_transition(rt, user_id, download_id, "renew", enqueue=True, **_FETCH_AGAIN)
    if extended is not None:
        rt.events.publish("status", [extended])
    LICENCES_RENEWED.labels(status=lifecycle.COMPLETED if extended else lifecycle.EXPIRED).inc()
    return renewed


def _extend_licence(rt, download, content):
    """`download` (completed) with its licence a period longer, if it is still as read; else None."""
    now = utcnow()
    extended = list(
        Download.update(
            license_expires_at=max(download.license_expires_at or now, now) + licences.period(rt.settings, content),
            played_at=None,
            updated_at=now,
        )
        .where(
            Download.id == download.id,
            Download.status == lifecycle.COMPLETED,
            Download.license_expires_at == download.license_expires_at,
        )
        .returning(Download)
        .execute()
    )
    return extended[0] if extended else None


def start_download(rt, user_id, content_id, quality, idempotency_key=None, device_id=None):
    """Reserve quota, record a pending download, then queue its transfer: (download, created).

    Not created when the request repeats an Idempotency-Key, or the user already holds this
    title at this quality on the device (pending, downloading, paused or completed): that
    download is returned, and nothing is reserved or queued. Concurrent starts of a process
    are recorded and queued together (`starts.start_batch`).
    """
    start = starts.StartRequest(user_id, content_id, quality, idempotency_key, device_id)
    return rt.start_batches.submit(partial(starts.start_batch, rt), start)


def stored_file(rt, download):
    """(path, content type) of a completed download's file; LicenceExpired once its licence ran out,
    NoStoredFile if there is no file."""
    if licences.has_expired(download, utcnow()):
        raise licences.licence_expired(download)
    if download.status != lifecycle.COMPLETED:
        raise NoStoredFile(
            f"The download is {download.status}: its file is served once it is completed.", status=download.status
        )
    path = rt.files.of(download).final_path
    if download.sha256 is None or not path.exists():
        raise NoStoredFile("This download was simulated: it has no stored file.", status=download.status)
    source = catalogue.source_for(rt.settings, download.content_id, download.quality, download.file_size_bytes)
    content_type = (source and source.content_type) or "application/octet-stream"
    return path, content_type


def list_downloads(user_id, status=None, device_id=None, page=1, page_size=20):
    """(downloads on `page`, pagination dict), newest first, paged in the database; `device_id`
    "default" is the default device."""
    query = Download.select().where(Download.user_id == user_id)
    if status:
        query = query.where(Download.status == status)
    if device_id:
        query = query.where(Download.device.is_null() if device_id == "default" else Download.device == device_id)
    total = query.count()
    rows = list(query.order_by(Download.created_at.desc(), Download.id.desc()).paginate(page, page_size))
    pagination = {
        "page": page,
        "page_size": page_size,
        "total": total,
        "pages": math.ceil(total / page_size),
    }
    return rows, pagination


def delete_download(rt, user_id, download_id):
    """Delete one of the user's downloads with its files; its reservation is released."""
    count, _ = delete_where(rt, Download.id == download_id, Download.user_id == user_id)
    if not count:
        raise DownloadNotFound("No download with that id.")


def cleanup(rt, user_id):
    """Delete all of the user's downloads, completed ones too; (count deleted, bytes of quota freed)."""
    return delete_where(rt, Download.user_id == user_id)
