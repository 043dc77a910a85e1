"""Prometheus metrics of the API and the worker (multiprocess-safe when PROMETHEUS_MULTIPROC_DIR is set)."""

import os

from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)

REQUESTS = Counter("downloads_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "downloads_http_request_duration_seconds",
    "Time to answer an HTTP request (event streams excluded).",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STARTED = Counter("downloads_started_total", "Downloads accepted by POST /api/downloads/start.")
STREAMS_OPEN = Gauge("downloads_sse_streams_open", "Server-Sent Event streams open.", multiprocess_mode="livesum")

TRANSFER_SECONDS = Histogram(
    "downloads_transfer_duration_seconds",
    "Duration of one transfer run, by how it ended.",
    ["outcome"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
TRANSFERRED_BYTES = Counter("downloads_transferred_bytes_total", "Bytes moved by transfers.")
TRANSFERS = Counter("downloads_transfers_total", "Transfer runs, by how they ended.", ["outcome"])
LICENCES_EXPIRED = Counter("downloads_licences_expired_total", "Completed downloads whose licence ran out.")
LICENCES_RENEWED = Counter(
    "downloads_licences_renewed_total", "Licences renewed, by the state of the download.", ["status"]
)


def registry():
    """All processes' metrics when running under several (gunicorn workers), else this one's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return PROCESS_REGISTRY
