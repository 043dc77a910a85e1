"""Worker entry point for `dramatiq actors`: the Redis broker first, then every actor."""

import os
import tempfile

# Dramatiq's Prometheus middleware and the transfer metrics share one multiprocess
# directory, which must be set before prometheus_client is first imported. The main
# `dramatiq` process sets it; its worker processes and exposition server inherit it.
os.environ.setdefault(
    "dramatiq_prom_db",
    os.path.join(tempfile.gettempdir(), f"downloads-worker-metrics-{os.getpid()}"),
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["dramatiq_prom_db"]
os.environ.setdefault("dramatiq_prom_host", "127.0.0.1")

import dramatiq
from dramatiq.middleware import CurrentMessage
from dramatiq.middleware.prometheus import Prometheus

from actors.worker_hooks import WorkerHooks
from downloads_app import create_app

app = create_app()
broker = app.extensions["broker"]
worker_hooks = WorkerHooks(app)
broker.add_middleware(Prometheus())
broker.add_middleware(CurrentMessage())
broker.add_middleware(worker_hooks)
dramatiq.set_broker(broker)

from actors import transfer_download  # noqa: E402  (actors must see the broker set above)

__all__ = ["app", "broker", "transfer_download", "worker_hooks"]
