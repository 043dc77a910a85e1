"""Prometheus metrics of the API and the worker (multiprocess-safe when PROMETHEUS_MULTIPROC_DIR is set)."""
import os
import time

from flask import Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as PROCESS_REGISTRY

REQUESTS = Counter("downloads_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "downloads_http_request_duration_seconds", "Time to answer an HTTP request (event streams excluded).",
    ["method", "route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STARTED = Counter("downloads_started_total", "Downloads accepted by POST /api/downloads/start.")
STREAMS_OPEN = Gauge("downloads_sse_streams_open", "Server-Sent Event streams open.", multiprocess_mode="livesum")

TRANSFER_SECONDS = Histogram(
    "downloads_transfer_duration_seconds", "Duration of one transfer run, by how it ended.", ["outcome"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
TRANSFERRED_BYTES = Counter("downloads_transferred_bytes_total", "Bytes moved by transfers.")
TRANSFERS = Counter("downloads_transfers_total", "Transfer runs, by how they ended.", ["outcome"])


def registry():
    """All processes' metrics when running under several (gunicorn workers), else this one's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return PROCESS_REGISTRY


def _route():
    return request.url_rule.rule if request.url_rule else "unmatched"


def init_app(app):
    @app.before_request
    def start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def count(response):
        route = _route()
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        if response.mimetype != "text/event-stream" and hasattr(g, "request_started"):
            LATENCY.labels(request.method, route).observe(time.perf_counter() - g.request_started)
        return response

    @app.route("/metrics")
    def metrics():
        return Response(generate_latest(registry()), mimetype=CONTENT_TYPE_LATEST)
