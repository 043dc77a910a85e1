"""Worker entry point for `dramatiq actors`: the Redis broker first, then every actor."""

import os
import tempfile

# Dramatiq's Prometheus middleware and the transfer metrics share one multiprocess
# directory, which must be set before prometheus_client is first imported. Each worker
# process imports this package (the main `dramatiq` process does not), so without an
# operator's `dramatiq_prom_db` it is one directory per worker process, which that process
# removes when it stops (WorkerHooks); one the operator set stays.
METRICS_DIR_MADE_HERE = None
if "dramatiq_prom_db" not in os.environ:
    METRICS_DIR_MADE_HERE = os.path.join(tempfile.gettempdir(), f"downloads-worker-metrics-{os.getpid()}")
    os.environ["dramatiq_prom_db"] = METRICS_DIR_MADE_HERE
os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["dramatiq_prom_db"]
os.environ.setdefault("dramatiq_prom_host", "127.0.0.1")

import dramatiq
from dramatiq.middleware import CurrentMessage
from dramatiq.middleware.prometheus import Prometheus

from actors.worker_hooks import WorkerHooks
from downloads_app import create_app

app = create_app()
broker = app.extensions["broker"]
worker_hooks = WorkerHooks(app, made_metrics_dir=METRICS_DIR_MADE_HERE)
broker.add_middleware(Prometheus())
broker.add_middleware(CurrentMessage())
broker.add_middleware(worker_hooks)
dramatiq.set_broker(broker)

from actors import transfer_download  # the actors must see the broker set above

__all__ = ["app", "broker", "transfer_download", "worker_hooks"]
