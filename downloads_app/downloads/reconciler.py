"""The reconciler: queues stalled and orphaned downloads again, and fails poison ones."""
import logging
import threading

from flask import current_app

from downloads_app.downloads import service
from downloads_app.infra import worker_registry
from downloads_app.downloads.refusals import QueueUnavailable
from downloads_app.infra.broker import enqueue_transfer

log = logging.getLogger("downloads_app.reconciler")


def orphan_seconds(config):
    """Age at which a pending download is taken to have no message: past any retry backoff."""
    return config["DOWNLOAD_STALL_SECONDS"] + config["DOWNLOAD_RETRY_MAX_BACKOFF_MS"] / 1000


def sweep():
    """One pass. Returns {"requeued": ids, "failed": ids, "orphans": ids}."""
    config = current_app.config
    requeued, failed = service.recover_stalled()
    orphans = service.touch_orphans(orphan_seconds(config))
    for download_id in requeued + orphans:
        try:
            enqueue_transfer(download_id)
        except QueueUnavailable:
            # Still pending: a later pass finds it as an orphan once Redis is back.
            log.warning("[Reconciler] Redis unavailable; %s stays pending", download_id)
            break
    if requeued or failed or orphans:
        log.info("[Reconciler] stalled requeued: %s; failed after max attempts: %s; orphans queued: %s",
                 requeued, failed, orphans)
    return {"requeued": requeued, "failed": failed, "orphans": orphans}


class ReconcilerThread(threading.Thread):
    """Beats into the worker registry and runs `sweep` every DOWNLOAD_RECONCILE_SECONDS."""

    def __init__(self, app, worker_threads):
        super().__init__(name="reconciler", daemon=True)
        self.app = app
        self.worker = worker_registry.identity(worker_threads)
        self._stopped = threading.Event()

    def _pass(self, name, step):
        try:
            with self.app.app_context():
                step()
        except Exception as exc:  # Redis or the database may be down: try again next pass
            log.warning("[Reconciler] %s failed: %s: %s", name, type(exc).__name__, exc)

    def run(self):
        client = self.app.extensions["broker"].client
        self._pass("heartbeat", lambda: worker_registry.beat(client, self.worker))
        while not self._stopped.wait(self.app.config["DOWNLOAD_RECONCILE_SECONDS"]):
            self._pass("heartbeat", lambda: worker_registry.beat(client, self.worker))
            self._pass("sweep", sweep)

    def stop(self):
        self._stopped.set()
        self.join(timeout=10)
        self._pass("deregistration", lambda: worker_registry.forget(self.app.extensions["broker"].client, self.worker))
