"""Worker entry point for `dramatiq actors`: the Redis broker first, then every actor."""
import dramatiq

from actors.worker_hooks import WorkerHooks
from downloads_app import create_app
from downloads_app.transfer import TRANSPORTS

app = create_app()
if app.config["DOWNLOAD_TRANSPORT"] not in TRANSPORTS:
    raise SystemExit(
        f"DOWNLOAD_TRANSPORT={app.config['DOWNLOAD_TRANSPORT']!r}; expected one of {sorted(TRANSPORTS)}"
    )
broker = app.extensions["broker"]
worker_hooks = WorkerHooks(app)
broker.add_middleware(worker_hooks)
dramatiq.set_broker(broker)

from actors import transfer  # noqa: E402  (actors must see the broker set above)

__all__ = ["app", "broker", "transfer", "worker_hooks"]
