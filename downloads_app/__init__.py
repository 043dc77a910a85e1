"""The offline-downloads API: `create_app()` builds the Flask application."""
import logging
import os

from flask import Flask

# Set (to a non-empty value) in the environment of processes whose parent has already warned that
# JWT_SECRET is not set: `make run`'s devserver warns once, not in each process it starts.
DEV_SECRET_WARNED = "DOWNLOADS_DEV_SECRET_WARNED"


def create_app(test_config=None):
    """Settings from the environment, then `test_config`; extensions wired by init_app."""
    # Imported here, not at module level, so that importing a light module of this package
    # (gunicorn's config loads `downloads_app.infra.logs` in the master) does not import Dramatiq,
    # redis and PyJWT before gevent's monkey-patching in the workers.
    from downloads_app.web import api, dashboard, http_errors, rate_limits, security_headers
    from downloads_app.downloads import catalogue
    from downloads_app import cli
    from downloads_app.infra import database, event_hub, logs, metrics, broker
    from downloads_app.config import DEV_JWT_SECRET, load_settings

    app = Flask(__name__, static_folder="web/static", template_folder="web/templates")
    app.config.update(load_settings())
    if test_config:
        app.config.update(test_config)
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_REQUEST_BYTES"]
    if problem := catalogue.transport_problem(app.config):
        raise SystemExit(problem)  # at start-up, not at the first download
    if not app.testing:
        logs.configure(app.config["LOG_FORMAT"])
    if app.config["JWT_SECRET"] == DEV_JWT_SECRET and not app.testing and not os.environ.get(DEV_SECRET_WARNED):
        logging.getLogger(__name__).warning(
            "JWT_SECRET is not set: using the development secret. Set it in production."
        )
    database.init_app(app)
    broker.init_app(app)
    event_hub.init_app(app)
    api.init_app(app)
    rate_limits.init_app(app, api.BLUEPRINTS)
    security_headers.init_app(app)
    http_errors.init_app(app)
    metrics.init_app(app)
    app.register_blueprint(dashboard.blp)
    cli.init_app(app)
    return app
