"""Metrics of HTTP requests (count and latency per route) and the `/metrics` exposition."""

import time

from flask import Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from downloads_app.infra.metrics import LATENCY, REQUESTS, registry

# Any token is a valid method name: labelling others as sent would let each request add series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method():
    return request.method if request.method in KNOWN_METHODS else "other"


def _route():
    return request.url_rule.rule if request.url_rule else "unmatched"


def init_app(app):
    @app.before_request
    def start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def count(response):
        method, route = _method(), _route()
        REQUESTS.labels(method, route, str(response.status_code)).inc()
        if response.mimetype != "text/event-stream" and hasattr(g, "request_started"):
            LATENCY.labels(method, route).observe(time.perf_counter() - g.request_started)
        return response

    @app.route("/metrics")
    def metrics():
        return Response(generate_latest(registry()), mimetype=CONTENT_TYPE_LATEST)
