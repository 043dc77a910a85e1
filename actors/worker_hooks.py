"""Dramatiq middleware tying the Flask app to the worker: app context, reconciler, graceful stop."""

import threading

import dramatiq.worker
from dramatiq import Middleware

from actors.reconciler import ReconcilerThread
from downloads_app.transfer.run import worker_stopping


class WorkerHooks(Middleware):
    """Each message runs in an app context; each worker runs a reconciler and stops transfers cleanly."""

    def __init__(self, app):
        self.app = app
        self._local = threading.local()
        self._reconciler = None

    def before_worker_boot(self, broker, worker):
        # Dramatiq prefetches two messages per thread: a busy worker would hold downloads it
        # cannot start while another's threads sit idle. One per thread, unless the operator
        # set dramatiq_queue_prefetch.
        if not dramatiq.worker.QUEUE_PREFETCH:
            worker.queue_prefetch = worker.worker_threads

    def after_worker_boot(self, broker, worker):
        worker_stopping.clear()
        self._reconciler = ReconcilerThread(self.app, worker_threads=len(worker.workers))
        self._reconciler.start()

    def before_worker_shutdown(self, broker, worker):
        # Running transfers see this at their next step, hand their download back to
        # the queue and return, so the worker's own join finishes promptly.
        worker_stopping.set()
        if self._reconciler is not None:
            self._reconciler.stop()

    def before_process_message(self, broker, message):
        self._local.context = self.app.app_context()
        self._local.context.push()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        context = getattr(self._local, "context", None)
        if context is not None:
            self._local.context = None
            context.pop()

    after_skip_message = after_process_message
