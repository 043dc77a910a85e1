"""One run of a download's transfer: claim it, move the bytes through a Run handle, record the outcome."""

import logging
import threading
import time

from dramatiq.middleware.time_limit import TimeLimitExceeded

from downloads_app.downloads import catalogue, lifecycle, run_writes
from downloads_app.downloads.refusals import OriginUnusable, QuotaExceeded
from downloads_app.infra import activity
from downloads_app.infra.broker import QueueUnavailable
from downloads_app.infra.logs import context
from downloads_app.infra.metrics import TRANSFER_SECONDS, TRANSFERS
from downloads_app.transfer import copier, simulation
from downloads_app.transfer.handle import RunHandle

log = logging.getLogger("downloads_app.worker")

# Set while this worker process shuts down: running transfers stop at their next step.
worker_stopping = threading.Event()


class TransferFailed(Exception):
    """A run failed and the download went back to pending: let the queue retry it."""


def _move_bytes(rt, download, handle):
    """The catalogue's (or DOWNLOAD_ORIGIN_URL's) file, or the simulation when there is none."""
    source = catalogue.source_for(rt.settings, download.content_id, download.quality, download.file_size_bytes)
    if source is None:
        return simulation.simulate(handle, rt.settings.download_simulated_seconds)
    return copier.fetch(handle, source, rt.settings)


def _describe(error):
    """The error as `last_error` keeps it; a time limit carries no message of its own."""
    if isinstance(error, TimeLimitExceeded):
        return "TimeLimitExceeded: the run outlasted its time limit (DOWNLOAD_TIME_LIMIT_SECONDS)"
    return f"{type(error).__name__}: {error}"


def _is_permanent(error):
    """Errors a retry cannot mend: the origin refuses the file, or it outgrew the quota."""
    return isinstance(error, (OriginUnusable, QuotaExceeded)) or getattr(error, "permanent", False)


# A download handed back at shutdown waits this long in the delay queue, so that the stopping
# worker's idle threads do not take it again (and spend an attempt) before they stop.
HAND_BACK_DELAY_MS = 1000


def _hand_back(rt, download, job_log):
    """The worker is stopping: put the download back in the queue for another worker."""
    if run_writes.release(rt, download) is None:
        run_writes.discard_files_if_gone(rt, download)  # cancelled or deleted as it stopped
        return
    try:
        rt.queue.enqueue_transfer(download.id, delay_ms=HAND_BACK_DELAY_MS)
        job_log.info("[Download Worker] Requeued %s at shutdown, from byte %d", download.id, download.downloaded_bytes)
    except QueueUnavailable:
        job_log.warning("[Download Worker] %s left pending at shutdown; the reconciler will queue it", download.id)


def run(rt, download_id, job_id=None):
    """Perform one delivery of the transfer job for `download_id` (idempotent)."""
    plain = logging.LoggerAdapter(log, context(job_id=job_id))
    plain.info("[Download Worker] Processing download job: %s", download_id)
    if worker_stopping.is_set():  # a message taken as the worker stops: leave it to another worker
        try:
            rt.queue.enqueue_transfer(download_id, delay_ms=HAND_BACK_DELAY_MS)
            plain.info("[Download Worker] Left %s to another worker: this one is stopping", download_id)
        except QueueUnavailable:
            plain.warning("[Download Worker] %s left pending at shutdown; the reconciler will queue it", download_id)
        return
    download = run_writes.claim(rt, download_id)
    if download is None:
        plain.info(
            "[Download Worker] Skipped %s: not pending (already taken, paused, cancelled or deleted)", download_id
        )
        return
    job_log = logging.LoggerAdapter(log, context(download, job_id))
    job_log.info(
        "[Download Worker] Download %s started (attempt %d, from byte %d of %d)",
        download.id,
        download.attempts,
        download.downloaded_bytes,
        download.file_size_bytes,
    )
    started, first_byte = time.monotonic(), download.downloaded_bytes
    try:
        finished = _move_bytes(rt, download, RunHandle(rt, download, worker_stopping))
    except (Exception, TimeLimitExceeded) as exc:  # the time limit is a BaseException: the run ends here too
        _measure(started, "failed")
        outcome = run_writes.record_failure(rt, download, _describe(exc), permanent=_is_permanent(exc))
        status = outcome.status if outcome else "moved on"
        job_log.warning("[Download Worker] Job failed: %s (%s): %s", download.id, status, exc)
        if outcome is not None and outcome.status == lifecycle.PENDING:
            raise TransferFailed(f"download {download.id} will be retried") from exc
        return
    if finished and run_writes.complete(rt, download) is not None:
        _measure(started, "completed")
        job_log.info(
            "[Download Worker] Job completed: %s (%d bytes this run)",
            download.id,
            download.file_size_bytes - first_byte,
        )
    elif worker_stopping.is_set():
        _measure(started, "handed_back")
        _hand_back(rt, download, job_log)
    else:
        _measure(started, "stopped")
        run_writes.discard_files_if_gone(rt, download)
        job_log.info("[Download Worker] Stopped %s: it was paused, cancelled or deleted", download.id)


def _measure(started, outcome):
    TRANSFERS.labels(outcome).inc()
    if outcome in ("completed", "failed"):
        activity.TALLY.add(outcome)
    TRANSFER_SECONDS.labels(outcome).observe(time.monotonic() - started)
