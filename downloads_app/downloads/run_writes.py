"""A worker run's writes to its download: claim, progress, bytes on disk, size, outcome.

Every write after the claim is conditioned on the run's claim token, so a run that lost
its download (paused, cancelled, deleted, taken over by the reconciler) writes nothing.
"""

import logging

from peewee import fn

from downloads_app.downloads import ledger, licences, lifecycle
from downloads_app.downloads.models import Download, new_id, utcnow
from downloads_app.downloads.transitions import apply, published
from downloads_app.infra.database import database
from downloads_app.infra.logs import context

log = logging.getLogger("downloads_app.service")


def claim(rt, download_id):
    """pending → downloading for one worker run; None if the download is not pending."""
    return published(
        rt,
        "status",
        apply(
            rt,
            "claim",
            Download.id == download_id,
            attempts=Download.attempts + 1,
            claim_token=new_id(),
            started_at=fn.COALESCE(Download.started_at, utcnow()),
        ),
    )


def owned_by(download):
    """Conditions that hold while `download`'s claim is the current one."""
    return (Download.id == download.id, Download.claim_token == download.claim_token)


def owns(download):
    """True while `download`'s claim is the current one and the download is downloading."""
    return Download.select().where(*owned_by(download), Download.status == lifecycle.DOWNLOADING).exists()


def _percent(downloaded_bytes, file_size_bytes):
    return min(downloaded_bytes * 100 // file_size_bytes, 100) if file_size_bytes else 100


def record_progress(rt, download, downloaded_bytes):
    """Persist progress of a claimed transfer (same bytes: a heartbeat); False when the worker must stop."""
    progress = _percent(downloaded_bytes, download.file_size_bytes)
    moved = downloaded_bytes != download.downloaded_bytes
    written = (
        Download.update(
            downloaded_bytes=downloaded_bytes,
            progress=progress,
            updated_at=utcnow(),
        )
        .where(
            *owned_by(download),
            Download.status == lifecycle.DOWNLOADING,
            Download.downloaded_bytes <= downloaded_bytes,
        )
        .execute()
    )
    if written and moved:
        download.downloaded_bytes, download.progress = downloaded_bytes, progress
        rt.events.publish("progress", [download])
    return bool(written)


def record_bytes_on_disk(rt, download, downloaded_bytes):
    """Set the bytes of a claimed transfer to what is on disk, even fewer (a file started over)."""
    progress = _percent(downloaded_bytes, download.file_size_bytes)
    written = (
        Download.update(downloaded_bytes=downloaded_bytes, progress=progress, updated_at=utcnow())
        .where(*owned_by(download), Download.status == lifecycle.DOWNLOADING)
        .execute()
    )
    if written:
        download.downloaded_bytes, download.progress = downloaded_bytes, progress
        rt.events.publish("progress", [download])
    return bool(written)


def resize(rt, download, file_size_bytes):
    """The origin's file has another size than recorded: record it, reserving or releasing
    the difference (QuotaExceeded if it no longer fits)."""
    with database.atomic():
        written = (
            Download.update(file_size_bytes=file_size_bytes, updated_at=utcnow())
            .where(*owned_by(download), Download.status == lifecycle.DOWNLOADING)
            .execute()
        )
        if written:
            ledger.settle(rt, {download.user_id: file_size_bytes - download.file_size_bytes})
    if written:
        log.info(
            "Download %s is %d bytes at its origin, not %d",
            download.id,
            file_size_bytes,
            download.file_size_bytes,
            extra=context(download),
        )
        download.file_size_bytes = file_size_bytes
    return bool(written)


def complete(rt, download):
    """downloading → completed for the current claim, licensed for the title's period from now;
    None if the download moved on."""
    now = utcnow()
    return published(
        rt,
        "status",
        apply(
            rt,
            "complete",
            *owned_by(download),
            downloaded_bytes=download.file_size_bytes,
            progress=100,
            completed_at=now,
            license_expires_at=licences.expiry_on_completion(rt.settings, download.content_id, now),
            claim_token=None,
            sha256=download.sha256,
        ),
    )


def record_failure(rt, download, error, permanent=False):
    """After a failed run: back to pending for a retry, or failed when attempts are spent
    (at once when the error is `permanent`: asking again cannot help).

    Returns the resulting download, or None if it had already moved on (paused,
    cancelled, deleted, claimed again).
    """
    if permanent or download.attempts >= rt.settings.download_max_attempts:
        reason = "Failed" if permanent else f"Gave up after {download.attempts} attempts"
        return published(
            rt,
            "status",
            apply(
                rt,
                "fail",
                *owned_by(download),
                claim_token=None,
                last_error=error,
                error=f"{reason}: {error}",
            ),
        )
    return published(rt, "status", apply(rt, "requeue", *owned_by(download), claim_token=None, last_error=error))


def release(rt, download):
    """downloading → pending for a run that stops early (worker shutdown); None if moved on."""
    return published(rt, "status", apply(rt, "requeue", *owned_by(download), claim_token=None))


def discard_files_if_gone(rt, download):
    """After a run that stopped early: drop the files of a download that is gone or cancelled."""
    current = Download.get_or_none(Download.id == download.id)
    if current is None or current.status not in lifecycle.RESERVING:
        rt.files.of(download).remove()
