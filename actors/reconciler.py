"""The reconciler thread of each worker process: beats into the worker registry, sweeps, expires
licences, and writes the activity history."""

import logging
import threading

from downloads_app.downloads import licences, recovery
from downloads_app.infra import activity, worker_registry

log = logging.getLogger("downloads_app.reconciler")


class ReconcilerThread(threading.Thread):
    """Beats into the worker registry, runs `recovery.sweep`, expires the licences that ran out
    (`licences.expire_due`) and writes the activity history every DOWNLOAD_RECONCILE_SECONDS."""

    def __init__(self, app, worker_threads):
        super().__init__(name="reconciler", daemon=True)
        self.app = app
        self.runtime = app.extensions["runtime"]
        self.worker = worker_registry.identity(worker_threads)
        self._stopped = threading.Event()

    def _pass(self, name, step):
        try:
            with self.app.app_context():  # its teardown returns the database connection
                step()
        except Exception as exc:  # Redis or the database may be down: try again next pass
            log.warning("[Reconciler] %s failed: %s: %s", name, type(exc).__name__, exc)

    def run(self):
        client = self.runtime.queue.client
        self._pass("heartbeat", lambda: worker_registry.beat(client, self.worker))
        while not self._stopped.wait(self.runtime.settings.download_reconcile_seconds):
            self._pass("heartbeat", lambda: worker_registry.beat(client, self.worker))
            self._pass("sweep", lambda: recovery.sweep(self.runtime))
            self._pass("licence expiry", lambda: licences.expire_due(self.runtime))
            self._pass("activity", self._record_activity)

    def _record_activity(self):
        """This process's counts since the last pass, and the queue's depth, into the minute's history."""
        ready, delayed, _ = self.runtime.queue.depths()
        activity.TALLY.flush(self.runtime.queue.client, queue_depth=ready + delayed)

    def stop(self):
        self._stopped.set()
        self.join(timeout=10)
        self._pass("activity", lambda: activity.TALLY.flush(self.runtime.queue.client))
        self._pass("deregistration", lambda: worker_registry.forget(self.runtime.queue.client, self.worker))
