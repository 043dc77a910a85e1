"""Every error as JSON `{success: false, message, errors?}` with its status code: the one table of statuses."""
import logging

import peewee
import redis
from flask import current_app
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException

from downloads_app.downloads import refusals
from downloads_app.infra.broker import QueueUnavailable
from downloads_app.infra.stored_files import InsufficientStorage
from downloads_app.web.auth import NotAllowed, NotAuthenticated
from downloads_app.web.rate_limits import retry_after_seconds

log = logging.getLogger(__name__)

# The HTTP status of every refusal of the domain, the adapters and authentication.
STATUSES = {
    refusals.DownloadNotFound: 404,
    refusals.ContentNotFound: 404,
    refusals.ContentExists: 409,
    refusals.ContentInUse: 409,
    refusals.QualityNotOffered: 422,
    refusals.QuotaExceeded: 413,
    refusals.TooManyActiveDownloads: 409,
    refusals.AlreadyHeld: 409,
    refusals.IdempotencyKeyReused: 422,
    refusals.OriginUnusable: 422,
    refusals.InvalidTransition: 409,
    refusals.NoStoredFile: 409,
    InsufficientStorage: 507,
    QueueUnavailable: 503,
    NotAuthenticated: 401,
    NotAllowed: 403,
}


def _body(message, **extra):
    return {"success": False, "message": message, **extra}


def _first_problem(problems, path=()):
    """(field path, message) of the first error in marshmallow's nested error dict."""
    if isinstance(problems, list) and problems and isinstance(problems[0], str):
        return ".".join(map(str, path)), problems[0]
    if isinstance(problems, dict):
        for field, inner in problems.items():
            found = _first_problem(inner, (*path, field))
            if found:
                return found
    return None


def _describe_validation(errors):
    """First field error as a sentence, e.g. `quality: Missing data for required field.`"""
    for location in errors.values():
        found = _first_problem(location)
        if found:
            return f"Invalid request: {found[0]}: {found[1]}"
    return "Invalid request."


def handle_http_exception(error):
    data = getattr(error, "data", None) or {}
    headers = data.get("headers", {})
    errors = data.get("errors") or data.get("messages")
    if errors:
        return _body(data.get("message") or _describe_validation(errors), errors=errors), error.code, headers
    message = data.get("message") or error.description
    if error.code == 405:
        headers = {"Allow": ", ".join(error.valid_methods or ())}
    elif error.code == 413:
        message = f"The request body is too large (at most {current_app.config['MAX_CONTENT_LENGTH']} bytes)."
    elif error.code == 429:  # flask-limiter adds the X-RateLimit-* headers
        message = f"Too many requests: the limit is {error.description}. Try again later."
        headers = {"Retry-After": str(retry_after_seconds())}
    return _body(message), error.code, headers


def handle_refusal(error):
    status = STATUSES[type(error)]
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 503:
        headers["Retry-After"] = "5"
    return _body(str(error), reason=error.reason, **getattr(error, "details", {})), status, headers


def handle_database_error(error):
    log.error("Database unavailable: %s", error)
    return _body("The database is unavailable; try again shortly."), 503, {"Retry-After": "5"}


def handle_redis_error(error):
    log.error("Redis unavailable: %s", error)
    return _body("The job queue is unavailable; try again shortly."), 503, {"Retry-After": "5"}


def handle_unexpected(error):
    log.exception("Unhandled error")
    return _body("Internal server error."), 500


def init_app(app):
    app.register_error_handler(HTTPException, handle_http_exception)
    for refusal in STATUSES:
        app.register_error_handler(refusal, handle_refusal)
    app.register_error_handler(peewee.OperationalError, handle_database_error)
    app.register_error_handler(peewee.InterfaceError, handle_database_error)
    app.register_error_handler(MaxConnectionsExceeded, handle_database_error)
    app.register_error_handler(redis.RedisError, handle_redis_error)
    app.register_error_handler(Exception, handle_unexpected)
