"""What a signed-in user asks of their downloads: start, list, pause, resume, cancel, retry, delete."""

import math
from functools import partial

from downloads_app.downloads import admission, catalogue, lifecycle, starts
from downloads_app.downloads.models import Download
from downloads_app.downloads.refusals import DownloadNotFound, InvalidTransition, NoStoredFile
from downloads_app.downloads.transitions import apply, delete_where
from downloads_app.infra.database import database


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
        if transition == "retry":
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


def start_download(rt, user_id, content_id, quality, idempotency_key=None):
    """Reserve quota, record a pending download, then queue its transfer: (download, created).

    Not created when the request repeats an Idempotency-Key, or the user already holds this
    title at this quality (pending, downloading, paused or completed): that download is
    returned, and nothing is reserved or queued. Concurrent starts of a process are recorded
    and queued together (`starts.start_batch`).
    """
    start = starts.StartRequest(user_id, content_id, quality, idempotency_key)
    return rt.start_batches.submit(partial(starts.start_batch, rt), start)


def stored_file(rt, download):
    """(path, content type) of a completed download's file; NoStoredFile if there is none."""
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


def delete_download(rt, user_id, download_id):
    """Delete one of the user's downloads with its files; its reservation is released."""
    count, _ = delete_where(rt, Download.id == download_id, Download.user_id == user_id)
    if not count:
        raise DownloadNotFound("No download with that id.")


def cleanup(rt, user_id):
    """Delete all of the user's downloads, completed ones too; (count deleted, bytes of quota freed)."""
    return delete_where(rt, Download.user_id == user_id)
