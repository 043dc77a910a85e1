"""Recovery: stalled and orphaned downloads queued again, poison ones failed, an operator's requeue."""

import logging
from datetime import timedelta

from downloads_app.downloads import lifecycle
from downloads_app.downloads.models import Download, utcnow
from downloads_app.downloads.refusals import DownloadNotFound, InvalidTransition
from downloads_app.downloads.transitions import apply, apply_all, published
from downloads_app.infra.broker import QueueUnavailable
from downloads_app.infra.database import database

log = logging.getLogger("downloads_app.reconciler")

STALLED_ERROR = "the worker stopped reporting (crashed or killed)"
# Orphans touched per UPDATE: well below SQLite's limit on bound parameters.
TOUCH_BATCH = 500


def stalled(settings):
    """Condition: a downloading record its worker has not touched for DOWNLOAD_STALL_SECONDS."""
    cutoff = utcnow() - timedelta(seconds=settings.download_stall_seconds)
    return (Download.status == lifecycle.DOWNLOADING) & (Download.updated_at < cutoff)


def recover_stalled(rt):
    """Downloads whose worker went silent: back to pending, or failed when attempts are spent.

    Returns (ids put back to pending, ids failed). Safe to run from several processes at
    once: each row moves for exactly one of them.
    """
    max_attempts = rt.settings.download_max_attempts
    silent = (stalled(rt.settings),)
    with database.atomic():
        failed = apply_all(
            rt,
            "fail",
            *silent,
            Download.attempts >= max_attempts,
            claim_token=None,
            last_error=STALLED_ERROR,
            error=f"Gave up after {max_attempts} attempts: {STALLED_ERROR}",
        )
        requeued = apply_all(
            rt, "requeue", *silent, Download.attempts < max_attempts, claim_token=None, last_error=STALLED_ERROR
        )
    rt.events.publish("status", requeued + failed)
    return [d.id for d in requeued], [d.id for d in failed]


def touch_orphans(rt, live_download_ids):
    """Ids of pending downloads untouched for a reconcile period that have no live message.

    They are touched, conditionally, so that of several sweepers exactly one takes each.
    Such a download's message never reached Redis, Redis lost it, or a run that skipped it
    raced a requeue. The period leaves the API time to queue a download it just created.
    """
    cutoff = utcnow() - timedelta(seconds=rt.settings.download_reconcile_seconds)
    waiting = Download.select(Download.id).where(Download.status == lifecycle.PENDING, Download.updated_at < cutoff)
    lost = [download_id for (download_id,) in waiting.tuples() if download_id not in live_download_ids]
    touched = []
    for start in range(0, len(lost), TOUCH_BATCH):
        touched += (
            Download.update(updated_at=utcnow())
            .where(
                Download.id.in_(lost[start : start + TOUCH_BATCH]),
                Download.status == lifecycle.PENDING,
                Download.updated_at < cutoff,
            )
            .returning(Download.id)
            .tuples()
            .execute()
        )
    return [download_id for (download_id,) in touched]


def sweep(rt):
    """One pass of the reconciler. Returns {"requeued": ids, "failed": ids, "orphans": ids}.

    A download is queued again only when the broker holds no live message for it, so a
    backlog is never multiplied and a retry's backoff is never skipped. Stalled downloads
    are moved first: a message of theirs that a dead worker held is then put back on the
    queue (by `live_download_ids`) only once they are `pending` again.
    """
    requeued, failed = recover_stalled(rt)
    orphans = []
    try:
        live = rt.queue.live_download_ids()
    except QueueUnavailable:
        # The stalled ones stay pending: a later pass finds them as orphans once Redis is back.
        log.warning("[Reconciler] Redis unavailable; %d stalled downloads stay pending", len(requeued))
    else:
        orphans = touch_orphans(rt, live)
        for download_id in [i for i in requeued if i not in live] + orphans:
            try:
                rt.queue.enqueue_transfer(download_id)
            except QueueUnavailable:
                log.warning("[Reconciler] Redis unavailable; %s stays pending", download_id)
                break
    if requeued or failed or orphans:
        log.info(
            "[Reconciler] stalled requeued: %s; failed after max attempts: %s; orphans queued: %s",
            requeued,
            failed,
            orphans,
        )
    return {"requeued": requeued, "failed": failed, "orphans": orphans}


def requeue(rt, download_id):
    """An operator's requeue: a stalled, pending or failed download is queued again.

    Dead-lettered messages of the download are discarded first. A failed download starts
    over with fresh attempts (its quota is reserved again); a download that is running,
    paused, cancelled or completed is refused.
    """
    download = Download.get_or_none(Download.id == download_id)
    if download is None:
        raise DownloadNotFound(f"No download {download_id!r}.")
    rt.queue.discard_dead_letters(download_id)
    with database.atomic():
        if download.status == lifecycle.PENDING:
            moved = Download.update(updated_at=utcnow()).where(
                Download.id == download_id, Download.status == lifecycle.PENDING
            ).execute() and Download.get_by_id(download_id)
        elif download.status == lifecycle.DOWNLOADING:
            moved = apply(rt, "requeue", Download.id == download_id, stalled(rt.settings), claim_token=None)
        else:
            moved = apply(rt, "retry", Download.id == download_id, attempts=0, error=None)
        if not moved:
            raise InvalidTransition(
                f"Cannot requeue a download that is {download.status}"
                + (" and still reporting" if download.status == lifecycle.DOWNLOADING else "")
                + ".",
                status=download.status,
            )
        rt.queue.enqueue_transfer(download_id)
    return published(rt, "status", moved)
