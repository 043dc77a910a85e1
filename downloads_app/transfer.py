"""One run of a download's transfer: claim it, move the bytes, record the outcome."""
import logging
import time

from flask import current_app

from downloads_app import lifecycle, service

log = logging.getLogger("downloads_app.worker")

SIMULATED_STEPS = 10


class TransferFailed(Exception):
    """A run failed and the download went back to pending: let the queue retry it."""


def simulated_transfer(download, report):
    """Pretend to fetch the file: ten equal steps over DOWNLOAD_SIMULATED_SECONDS.

    Starts at the step after the bytes already persisted, so a resumed or redelivered
    job continues where the last run stopped. `report(bytes)` returns False to stop.
    """
    size = download.file_size_bytes
    step_seconds = current_app.config["DOWNLOAD_SIMULATED_SECONDS"] / SIMULATED_STEPS
    first_step = download.downloaded_bytes * SIMULATED_STEPS // size + 1 if size else SIMULATED_STEPS
    for step in range(first_step, SIMULATED_STEPS + 1):
        time.sleep(step_seconds)
        if not report(size * step // SIMULATED_STEPS):
            return False
    return True


TRANSPORTS = {"simulated": simulated_transfer}


def run(download_id):
    """Perform one delivery of the transfer job for `download_id` (idempotent)."""
    log.info("[Download Worker] Processing download job: %s", download_id)
    download = service.claim(download_id)
    if download is None:
        log.info("[Download Worker] Skipped %s: not pending (already taken, paused, "
                 "cancelled or deleted)", download_id)
        return
    log.info("[Download Worker] Download %s started (attempt %d, from byte %d of %d)",
             download.id, download.attempts, download.downloaded_bytes, download.file_size_bytes)
    transport = TRANSPORTS[current_app.config["DOWNLOAD_TRANSPORT"]]
    try:
        finished = transport(download, lambda nbytes: service.record_progress(download, nbytes))
    except Exception as exc:
        outcome = service.record_failure(download, f"{type(exc).__name__}: {exc}")
        status = outcome.status if outcome else "moved on"
        log.warning("[Download Worker] Job failed: %s (%s): %s", download.id, status, exc)
        if outcome is not None and outcome.status == lifecycle.PENDING:
            raise TransferFailed(f"download {download.id} will be retried") from exc
        return
    if finished and service.complete(download) is not None:
        log.info("[Download Worker] Job completed: %s", download.id)
    else:
        log.info("[Download Worker] Stopped %s: it was paused, cancelled or deleted", download.id)
