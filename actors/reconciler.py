"""The reconciler thread of each worker process: beats into the worker registry, sweeps, expires licences."""

import logging
import threading

from downloads_app.downloads import licences, recovery
from downloads_app.infra import worker_registry

log = logging.getLogger("downloads_app.reconciler")


class ReconcilerThread(threading.Thread):
    """Beats into the worker registry, runs `recovery.sweep` and expires the licences that ran out
    (`licences.expire_due`) every DOWNLOAD_RECONCILE_SECONDS."""

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

    def stop(self):
        self._stopped.set()
        self.join(timeout=10)
        self._pass("deregistration", lambda: worker_registry.forget(self.runtime.queue.client, self.worker))
