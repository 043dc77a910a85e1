"""The download service: every read and state change of a download, for the API and the worker.

Each state change is one conditional UPDATE (`WHERE id = ? AND status IN (...)`) in the
same transaction as its storage-ledger change, so racing requests and workers can
neither lose nor resurrect a download, and the ledger always equals the sum of the
reserving downloads.
"""
import logging
import math
from collections import defaultdict
from datetime import timedelta

from flask import current_app
from peewee import fn

from downloads_app.downloads import admission, catalogue, ledger, lifecycle
from downloads_app.infra import event_hub, stored_files
from downloads_app.infra.database import database
from downloads_app.downloads.refusals import (
    DownloadNotFound,
    InvalidTransition,
    NoStoredFile,
    QueueUnavailable,
    QuotaExceeded,
)
from downloads_app.infra.logs import context
from downloads_app.downloads.models import Download, new_id, utcnow
from downloads_app.infra.broker import discard_dead_letters, enqueue_transfer

log = logging.getLogger("downloads_app.service")

# ---------------------------------------------------------------- transitions


def _apply_all(transition, *conditions, **changes):
    """Move every download matching `conditions` along `transition`; return those moved.

    Runs inside the caller's transaction when there is one. A transition that releases the
    quota (cancel, fail) removes the download's files too: the quota follows the bytes on disk.
    """
    with database.atomic():
        moved = list(
            Download.update(status=lifecycle.target(transition), updated_at=utcnow(), **changes)
            .where(Download.status.in_(lifecycle.sources(transition)), *conditions)
            .returning(Download)
            .execute()
        )
        deltas = defaultdict(int)
        for download in moved:
            log.info("Download %s %s: now %s", download.id, transition, download.status, extra=context(download))
            deltas[download.user_id] += lifecycle.quota_change(transition, download.file_size_bytes)
        ledger.settle(deltas)
    if lifecycle.releases_quota(transition):
        for download in moved:
            stored_files.remove(download)
    return moved


def _apply(transition, *conditions, **changes):
    """Like `_apply_all` for one download: the download moved, or None."""
    moved = _apply_all(transition, *conditions, **changes)
    return moved[0] if moved else None


def get_download(user_id, download_id):
    download = Download.get_or_none((Download.id == download_id) & (Download.user_id == user_id))
    if download is None:
        raise DownloadNotFound("No download with that id.")
    return download


def _user_transition(user_id, download_id, transition, enqueue=False, **changes):
    with database.atomic():
        download = _apply(
            transition, Download.id == download_id, Download.user_id == user_id, **changes
        )
        if download is None:
            current = get_download(user_id, download_id)
            raise InvalidTransition(
                f"Cannot {transition} a download that is {current.status}.",
                status=current.status,
            )
        if transition == "retry":
            admission.check_not_held(download)
        if lifecycle.target(transition) in lifecycle.ACTIVE:
            admission.check_active_cap(user_id)
        if enqueue:
            # Sent inside the transaction: if Redis refuses, nothing changed. The row is
            # locked until commit, so a worker that picks the message up at once waits
            # for the commit and then sees it pending.
            enqueue_transfer(download.id)
    event_hub.publish("status", [download])
    return download


def pause(user_id, download_id):
    """pending or downloading → paused; the worker stops at its next step."""
    return _user_transition(user_id, download_id, "pause")


def resume(user_id, download_id):
    """paused → pending, queued again; the transfer continues from its downloaded bytes."""
    return _user_transition(user_id, download_id, "resume", enqueue=True)


def cancel(user_id, download_id):
    """pending, downloading or paused → cancelled; releases the reservation."""
    return _user_transition(user_id, download_id, "cancel")


def retry(user_id, download_id):
    """failed or cancelled → pending with fresh attempts; reserves the quota again."""
    return _user_transition(user_id, download_id, "retry", enqueue=True, attempts=0, error=None)


# ---------------------------------------------------------------- user requests


class _AlreadyStarted(Exception):
    """Raised inside the start's transaction to roll it back: the download exists."""

    def __init__(self, download):
        super().__init__(download.id)
        self.download = download


def start_download(user_id, content_id, quality, idempotency_key=None):
    """Reserve quota, record a pending download, then queue its transfer: (download, created).

    Not created when the request repeats an Idempotency-Key, or the user already holds this
    title at this quality (pending, downloading, paused or completed): that download is
    returned, and nothing is reserved or queued.
    """
    content = catalogue.get_content(content_id)
    size, source = catalogue.file_of(content, quality)
    if source is not None:
        stored_files.check_free_space(size)
    try:
        with database.atomic():
            # Reserving locks the user's ledger row until commit, so one user's starts run
            # one at a time and the checks below cannot race with each other.
            ledger.reserve(user_id, size)
            existing = admission.existing_download(user_id, content.id, quality, idempotency_key)
            if existing is not None:
                raise _AlreadyStarted(existing)
            download = Download.create(
                id=new_id(),
                user_id=user_id,
                content=content.id,
                quality=quality,
                status=lifecycle.PENDING,
                file_size_bytes=size,
                idempotency_key=idempotency_key,
            )
            admission.check_active_cap(user_id)
    except _AlreadyStarted as started:
        return started.download, False
    except QuotaExceeded:
        existing = admission.existing_download(user_id, content.id, quality, idempotency_key)
        if existing is None:
            raise
        return existing, False
    try:
        job_id = enqueue_transfer(download.id)
    except QueueUnavailable:
        # The client is told to try again, so take the record back rather than
        # leave a pending download that no worker will ever see.
        _delete_where(Download.id == download.id)
        raise
    log.info("Download %s started: %s at %s, %d bytes", download.id, content_id, quality, size,
             extra=context(download, job_id))
    event_hub.publish("status", [download])
    return download, True


def stored_file(download):
    """(path, content type) of a completed download's file; NoStoredFile if there is none."""
    if download.status != lifecycle.COMPLETED:
        raise NoStoredFile(f"The download is {download.status}: its file is served once it is completed.",
                           status=download.status)
    path = stored_files.final_path(download)
    if download.sha256 is None or not path.exists():
        raise NoStoredFile("This download was simulated: it has no stored file.", status=download.status)
    source = catalogue.source_for(download.content_id, download.quality, download.file_size_bytes)
    content_type = (source and source.content_type) or "application/octet-stream"
    return path, content_type


def list_downloads(user_id, status=None, page=1, page_size=20):
    """(downloads on `page`, pagination dict), newest first, paged in the database."""
    query = Download.select().where(Download.user_id == user_id)
    if status:
        query = query.where(Download.status == status)
    total = query.count()
    rows = list(query.order_by(Download.created_at.desc(), Download.id.desc()).paginate(page, page_size))
    pagination = {
        "page": page,
        "page_size": page_size,
        "total": total,
        "pages": math.ceil(total / page_size),
    }
    return rows, pagination


def _delete_where(*conditions):
    """Delete matching downloads, release what they reserved; (count, bytes released)."""
    with database.atomic():
        deleted = list(Download.delete().where(*conditions).returning(Download).execute())
        deltas = defaultdict(int)
        for download in deleted:
            if download.status in lifecycle.RESERVING:
                deltas[download.user_id] -= download.file_size_bytes
        ledger.settle(deltas)
    for download in deleted:
        stored_files.remove(download)
        log.info("Download %s deleted", download.id, extra=context(download))
    event_hub.publish("status", deleted, status=event_hub.DELETED)
    return len(deleted), -sum(deltas.values())


def delete_download(user_id, download_id):
    count, _ = _delete_where(Download.id == download_id, Download.user_id == user_id)
    if not count:
        raise DownloadNotFound("No download with that id.")


def cleanup(user_id):
    """Delete all of the user's downloads; (count deleted, bytes of quota freed)."""
    return _delete_where(Download.user_id == user_id)


# ---------------------------------------------------------------- worker side


def _published(kind, download):
    """Publish `download`'s new state, if it moved; return it."""
    if download is not None:
        event_hub.publish(kind, [download])
    return download


def claim(download_id):
    """pending → downloading for one worker run; None if the download is not pending."""
    return _published("status", _apply(
        "claim",
        Download.id == download_id,
        attempts=Download.attempts + 1,
        claim_token=new_id(),
        started_at=fn.COALESCE(Download.started_at, utcnow()),
    ))


def _owned_by(download):
    """Conditions that hold while `download`'s claim is the current one."""
    return (Download.id == download.id, Download.claim_token == download.claim_token)


def _percent(downloaded_bytes, file_size_bytes):
    return min(downloaded_bytes * 100 // file_size_bytes, 100) if file_size_bytes else 100


def record_progress(download, downloaded_bytes):
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
            *_owned_by(download),
            Download.status == lifecycle.DOWNLOADING,
            Download.downloaded_bytes <= downloaded_bytes,
        )
        .execute()
    )
    if written and moved:
        download.downloaded_bytes, download.progress = downloaded_bytes, progress
        event_hub.publish("progress", [download])
    return bool(written)


def record_bytes_on_disk(download, downloaded_bytes):
    """Set the bytes of a claimed transfer to what is on disk, even fewer (a file started over)."""
    progress = _percent(downloaded_bytes, download.file_size_bytes)
    written = Download.update(downloaded_bytes=downloaded_bytes, progress=progress, updated_at=utcnow()).where(
        *_owned_by(download), Download.status == lifecycle.DOWNLOADING
    ).execute()
    if written:
        download.downloaded_bytes, download.progress = downloaded_bytes, progress
        event_hub.publish("progress", [download])
    return bool(written)


def resize(download, file_size_bytes):
    """The origin's file has another size than recorded: record it, reserving or releasing
    the difference (QuotaExceeded if it no longer fits)."""
    with database.atomic():
        written = Download.update(file_size_bytes=file_size_bytes, updated_at=utcnow()).where(
            *_owned_by(download), Download.status == lifecycle.DOWNLOADING
        ).execute()
        if written:
            ledger.settle({download.user_id: file_size_bytes - download.file_size_bytes})
    if written:
        log.info("Download %s is %d bytes at its origin, not %d", download.id, file_size_bytes,
                 download.file_size_bytes, extra=context(download))
        download.file_size_bytes = file_size_bytes
    return bool(written)


def complete(download):
    """downloading → completed for the current claim; None if the download moved on."""
    return _published("status", _apply(
        "complete",
        *_owned_by(download),
        downloaded_bytes=download.file_size_bytes,
        progress=100,
        completed_at=utcnow(),
        claim_token=None,
        sha256=download.sha256,
    ))


def record_failure(download, error, permanent=False):
    """After a failed run: back to pending for a retry, or failed when attempts are spent
    (at once when the error is `permanent`: asking again cannot help).

    Returns the resulting download, or None if it had already moved on (paused,
    cancelled, deleted, claimed again).
    """
    if permanent or download.attempts >= current_app.config["DOWNLOAD_MAX_ATTEMPTS"]:
        reason = "Failed" if permanent else f"Gave up after {download.attempts} attempts"
        return _published("status", _apply(
            "fail", *_owned_by(download), claim_token=None, last_error=error, error=f"{reason}: {error}",
        ))
    return _published("status", _apply("requeue", *_owned_by(download), claim_token=None, last_error=error))


def release(download):
    """downloading → pending for a run that stops early (worker shutdown); None if moved on."""
    return _published("status", _apply("requeue", *_owned_by(download), claim_token=None))


# ---------------------------------------------------------------- reconciliation


STALLED_ERROR = "the worker stopped reporting (crashed or killed)"


def stalled():
    """Condition: a downloading record its worker has not touched for DOWNLOAD_STALL_SECONDS."""
    cutoff = utcnow() - timedelta(seconds=current_app.config["DOWNLOAD_STALL_SECONDS"])
    return (Download.status == lifecycle.DOWNLOADING) & (Download.updated_at < cutoff)


def recover_stalled():
    """Downloads whose worker went silent: back to pending, or failed when attempts are spent.

    Returns (ids put back to pending, ids failed). Safe to run from several processes at
    once: each row moves for exactly one of them.
    """
    max_attempts = current_app.config["DOWNLOAD_MAX_ATTEMPTS"]
    silent = (stalled(),)
    with database.atomic():
        failed = _apply_all(
            "fail", *silent, Download.attempts >= max_attempts, claim_token=None,
            last_error=STALLED_ERROR, error=f"Gave up after {max_attempts} attempts: {STALLED_ERROR}",
        )
        requeued = _apply_all(
            "requeue", *silent, Download.attempts < max_attempts, claim_token=None, last_error=STALLED_ERROR
        )
    event_hub.publish("status", requeued + failed)
    return [d.id for d in requeued], [d.id for d in failed]


def requeue(download_id):
    """An operator's requeue: a stalled, pending or failed download is queued again.

    Dead-lettered messages of the download are discarded first. A failed download starts
    over with fresh attempts (its quota is reserved again); a download that is running,
    paused, cancelled or completed is refused.
    """
    download = Download.get_or_none(Download.id == download_id)
    if download is None:
        raise DownloadNotFound(f"No download {download_id!r}.")
    discard_dead_letters(download_id)
    with database.atomic():
        if download.status == lifecycle.PENDING:
            moved = Download.update(updated_at=utcnow()).where(
                Download.id == download_id, Download.status == lifecycle.PENDING
            ).execute() and Download.get_by_id(download_id)
        elif download.status == lifecycle.DOWNLOADING:
            moved = _apply("requeue", Download.id == download_id, stalled(), claim_token=None)
        else:
            moved = _apply("retry", Download.id == download_id, attempts=0, error=None)
        if not moved:
            raise InvalidTransition(
                f"Cannot requeue a download that is {download.status}"
                + (" and still reporting" if download.status == lifecycle.DOWNLOADING else "") + ".",
                status=download.status,
            )
        enqueue_transfer(download_id)
    return _published("status", moved)


def touch_orphans(orphan_seconds):
    """Ids of pending downloads untouched for `orphan_seconds`, touched so one sweeper takes each.

    Such a download's message never reached Redis, or Redis lost it: it must be queued again.
    """
    cutoff = utcnow() - timedelta(seconds=orphan_seconds)
    touched = (
        Download.update(updated_at=utcnow())
        .where(Download.status == lifecycle.PENDING, Download.updated_at < cutoff)
        .returning(Download.id)
        .tuples()
        .execute()
    )
    return [download_id for (download_id,) in touched]
