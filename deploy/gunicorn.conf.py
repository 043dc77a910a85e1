"""gunicorn settings for the API: gevent workers, tuned from the environment."""

import os
import shutil
import tempfile

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gevent"
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "1000"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
wsgi_app = "wsgi:app"

# LOG_FORMAT=json: gunicorn's own error and access lines are JSON too.
if os.environ.get("LOG_FORMAT") == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "downloads_app.infra.logs.JsonFormatter"}},
        "handlers": {
            "error": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
            "access": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
        },
        "root": {"handlers": ["error"], "level": "INFO"},
        "loggers": {
            "gunicorn.error": {"handlers": ["error"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }

# Metrics of all workers are merged from this directory (prometheus-client multiprocess
# mode). It is set before the app, and so prometheus_client, is imported.
# The metrics directory of this server, made here (and removed at exit) unless the operator set one.
MADE_METRICS_DIR = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    MADE_METRICS_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="downloads-api-metrics-")


def on_starting(server):
    """Refuse to start without a usable JWT_SECRET; start from empty metrics.

    The app refuses it too, but in a worker that gunicorn would boot again and again. The
    metrics files of an earlier run's processes would count again.
    """
    from downloads_app.config import jwt_secret_problem, load_settings, settings_from

    if problem := jwt_secret_problem(settings_from(load_settings())):
        raise SystemExit(problem)
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """End this worker's event streams as soon as it is told to stop.

    Open Server-Sent Event streams are requests in flight: without this, each would hold
    the worker's shutdown until its client went away or graceful_timeout ran out.
    """
    import threading
    import time

    hub = worker.wsgi.extensions["event_hub"]

    def watch():
        while worker.alive:
            time.sleep(0.5)
        hub.end_streams()

    threading.Thread(target=watch, name="end-streams-on-shutdown", daemon=True).start()


def post_fork(server, worker):
    """Make psycopg2 yield to the gevent hub instead of blocking the whole worker."""
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


# gunicorn ≥ 25.1 opens a control socket at one fixed path per user, so several
# instances on a host would collide: off unless a path is given.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True


def on_exit(server):
    """Remove the metrics directory this configuration made: every process of the server has stopped."""
    if MADE_METRICS_DIR:
        shutil.rmtree(MADE_METRICS_DIR, ignore_errors=True)
