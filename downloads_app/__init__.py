"""The offline-downloads API: `create_app()` builds the Flask application."""

from flask import Flask


def create_app(test_config=None):
    """Settings from the environment, then `test_config`; adapters built from them; blueprints wired."""
    # Imported here, not at module level, so that importing a light module of this package
    # (gunicorn's config loads `downloads_app.infra.logs` in the master) does not import Dramatiq,
    # redis and PyJWT before gevent's monkey-patching in the workers.
    from downloads_app.config import jwt_secret_problem, load_settings, settings_from
    from downloads_app.downloads import catalogue
    from downloads_app.downloads.runtime import build_runtime
    from downloads_app.infra import broker, database, event_hub, logs
    from downloads_app.web import api, cli, dashboard, http_errors, rate_limits, request_metrics, security_headers

    app = Flask(__name__, static_folder="web/static", template_folder="web/templates")
    app.config.update(load_settings())
    if test_config:
        app.config.update(test_config)
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_REQUEST_BYTES"]
    settings = settings_from(app.config)
    if problem := catalogue.transport_problem(settings):
        raise SystemExit(problem)  # at start-up, not at the first download
    if not app.testing:
        logs.configure(settings.log_format)
    if not app.testing and (problem := jwt_secret_problem(settings)):
        raise SystemExit(problem)  # a missing or guessable secret would let anyone mint admin tokens
    database.connect(settings)
    app.teardown_appcontext(_close_database_connection)
    app.extensions["broker"] = broker.make_broker(settings)
    app.extensions["runtime"] = build_runtime(settings, app.extensions["broker"])
    app.extensions["event_hub"] = event_hub.make_hub(settings)
    api.init_app(app)
    rate_limits.init_app(app, api.BLUEPRINTS)
    security_headers.init_app(app)
    http_errors.init_app(app)
    request_metrics.init_app(app)
    app.register_blueprint(dashboard.blp)
    cli.init_app(app)
    return app


def _close_database_connection(exc):
    """One database connection per request or command: returned to the pool at teardown."""
    from downloads_app.infra.database import database

    if not database.is_closed():
        database.close()
