"""One run of a download's transfer: claim it, move the bytes, record the outcome."""
import logging
import threading
import time

from flask import current_app

from downloads_app.downloads import catalogue, lifecycle, service
from downloads_app.transfer import copier
from downloads_app.infra import stored_files
from downloads_app.downloads.refusals import OriginUnusable, QueueUnavailable, QuotaExceeded
from downloads_app.infra.logs import context
from downloads_app.infra.metrics import TRANSFER_SECONDS, TRANSFERRED_BYTES, TRANSFERS
from downloads_app.downloads.models import Download
from downloads_app.infra.broker import enqueue_transfer

log = logging.getLogger("downloads_app.worker")

SIMULATED_STEPS = 10
# A running transfer writes at least this often, so the reconciler can tell it from a dead one.
HEARTBEAT_SECONDS = 1.0

# Set while this worker process shuts down: running transfers stop at their next step.
worker_stopping = threading.Event()


class TransferFailed(Exception):
    """A run failed and the download went back to pending: let the queue retry it."""


def _wait(seconds, heartbeat):
    """Sleep `seconds`, calling `heartbeat()` every HEARTBEAT_SECONDS; False as soon as it is."""
    deadline = time.monotonic() + seconds
    while deadline - time.monotonic() > HEARTBEAT_SECONDS:
        time.sleep(HEARTBEAT_SECONDS)
        if not heartbeat():
            return False
    time.sleep(max(deadline - time.monotonic(), 0))
    return True


def simulated_transfer(download, report):
    """Pretend to fetch the file: ten equal steps over DOWNLOAD_SIMULATED_SECONDS.

    Starts at the step after the bytes already persisted, so a resumed or redelivered
    job continues where the last run stopped. `report(bytes)` returns False to stop.
    """
    size = download.file_size_bytes
    step_seconds = current_app.config["DOWNLOAD_SIMULATED_SECONDS"] / SIMULATED_STEPS
    done = download.downloaded_bytes
    first_step = done * SIMULATED_STEPS // size + 1 if size else SIMULATED_STEPS
    for step in range(first_step, SIMULATED_STEPS + 1):
        if not _wait(step_seconds, lambda: report(done)):
            return False
        done = size * step // SIMULATED_STEPS
        if not report(done):
            return False
    return True


def _transfer(download, report):
    """The catalogue's (or DOWNLOAD_ORIGIN_URL's) file, or the simulation when there is none."""
    source = catalogue.source_for(download.content_id, download.quality, download.file_size_bytes)
    if source is None:
        return simulated_transfer(download, report)
    return copier.fetch(download, source, report)


def _is_permanent(error):
    """Errors a retry cannot mend: the origin refuses the file, or it outgrew the quota."""
    return isinstance(error, (OriginUnusable, QuotaExceeded)) or getattr(error, "permanent", False)


def _tidy(download):
    """After a run that stopped early: drop the files of a download that is gone or cancelled."""
    current = Download.get_or_none(Download.id == download.id)
    if current is None or current.status not in lifecycle.RESERVING:
        stored_files.remove(download)


def _hand_back(download, log):
    """The worker is stopping: put the download back in the queue for another worker."""
    if service.release(download) is None:
        return
    try:
        enqueue_transfer(download.id)
        log.info("[Download Worker] Requeued %s at shutdown, from byte %d", download.id, download.downloaded_bytes)
    except QueueUnavailable:
        log.warning("[Download Worker] %s left pending at shutdown; the reconciler will queue it", download.id)


def run(download_id, job_id=None):
    """Perform one delivery of the transfer job for `download_id` (idempotent)."""
    plain = logging.LoggerAdapter(log, context(job_id=job_id))
    plain.info("[Download Worker] Processing download job: %s", download_id)
    download = service.claim(download_id)
    if download is None:
        plain.info("[Download Worker] Skipped %s: not pending (already taken, paused, "
                   "cancelled or deleted)", download_id)
        return
    job_log = logging.LoggerAdapter(log, context(download, job_id))
    job_log.info("[Download Worker] Download %s started (attempt %d, from byte %d of %d)",
                 download.id, download.attempts, download.downloaded_bytes, download.file_size_bytes)
    started, first_byte = time.monotonic(), download.downloaded_bytes
    interval = current_app.config["DOWNLOAD_PROGRESS_INTERVAL_MS"] / 1000
    step = current_app.config["DOWNLOAD_PROGRESS_BYTES"]
    last_write = started - interval

    def report(nbytes):
        """Persist progress at most every DOWNLOAD_PROGRESS_INTERVAL_MS and DOWNLOAD_PROGRESS_BYTES,
        and at least every HEARTBEAT_SECONDS (always the last bytes)."""
        nonlocal last_write
        now = time.monotonic()
        due = (
            nbytes >= download.file_size_bytes
            or now - last_write >= HEARTBEAT_SECONDS
            or (now - last_write >= interval and nbytes - download.downloaded_bytes >= step)
        )
        if not due:
            return not worker_stopping.is_set()
        last_write = now
        moved = nbytes - download.downloaded_bytes
        if not service.record_progress(download, nbytes):
            return False
        TRANSFERRED_BYTES.inc(moved)
        return not worker_stopping.is_set()

    try:
        finished = _transfer(download, report)
    except Exception as exc:
        _measure(started, "failed")
        outcome = service.record_failure(download, f"{type(exc).__name__}: {exc}", permanent=_is_permanent(exc))
        status = outcome.status if outcome else "moved on"
        job_log.warning("[Download Worker] Job failed: %s (%s): %s", download.id, status, exc)
        if outcome is not None and outcome.status == lifecycle.PENDING:
            raise TransferFailed(f"download {download.id} will be retried") from exc
        return
    if finished and service.complete(download) is not None:
        _measure(started, "completed")
        job_log.info("[Download Worker] Job completed: %s (%d bytes this run)", download.id,
                     download.file_size_bytes - first_byte)
    elif worker_stopping.is_set():
        _measure(started, "handed_back")
        _hand_back(download, job_log)
    else:
        _measure(started, "stopped")
        _tidy(download)
        job_log.info("[Download Worker] Stopped %s: it was paused, cancelled or deleted", download.id)


def _measure(started, outcome):
    TRANSFERS.labels(outcome).inc()
    TRANSFER_SECONDS.labels(outcome).observe(time.monotonic() - started)
