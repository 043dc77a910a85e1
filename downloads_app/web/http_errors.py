"""Every error as JSON `{success: false, message, errors?}` with its status code: the one table of statuses."""

import json
import logging

import peewee
import redis
from flask import current_app, request
from flask_smorest.spec.plugins import FlaskPlugin
from playhouse.pool import MaxConnectionsExceeded
from webargs.core import is_json
from werkzeug.exceptions import HTTPException, NotFound, UnsupportedMediaType

from downloads_app.downloads import refusals
from downloads_app.infra.broker import QueueUnavailable
from downloads_app.infra.stored_files import InsufficientStorage
from downloads_app.web.auth import NotAllowed, NotAuthenticated

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
    refusals.TitleNotDownloadable: 403,
    refusals.YearlyDownloadsSpent: 409,
    refusals.RenewalsSpent: 409,
    refusals.LicenceExpired: 410,
    refusals.DeviceNotFound: 404,
    refusals.DeviceRequired: 422,
    refusals.TooManyDevices: 409,
    refusals.TooManyDownloadsOnDevice: 409,
    InsufficientStorage: 507,
    QueueUnavailable: 503,
    NotAuthenticated: 401,
    NotAllowed: 403,
}


def _body(message, **extra):
    return {"success": False, "message": message, **extra}


# What a location's errors are about when they name no field (webargs' keys: request parts).
WHOLE = {"json": "the body", "query": "the query string", "headers": "the headers"}
MAX_ECHOED_PATH = 200


def _first_problem(problems, path=()):
    """(field path, message) of the first error in marshmallow's nested error dict.

    The field path is empty when the error is about the whole location: webargs' list of
    messages (`{"json": ["Invalid JSON body."]}`) or marshmallow's `_schema` key.
    """
    if isinstance(problems, list) and problems and isinstance(problems[0], str):
        return ".".join(str(part) for part in path if part != "_schema"), problems[0]
    if isinstance(problems, dict):
        for field, inner in problems.items():
            found = _first_problem(inner, (*path, field))
            if found:
                return found
    return None


def _describe_validation(errors, schema=None):
    """First field error as a sentence, e.g. `quality: Missing data for required field.`"""
    for location, problems in errors.items():
        found = _first_problem(problems)
        if not found:
            continue
        field, message = found
        if field:
            return f"Invalid request: {field}: {message}"
        if location == "json" and schema is not None and message == schema.error_messages.get("type"):
            return "Invalid request: the body must be a JSON object."
        return f"Invalid request: {WHOLE.get(location, location)}: {message}"
    return "Invalid request."


def _describe_invalid_input(error, data, errors):
    if isinstance(getattr(error, "exc", None), (json.JSONDecodeError, UnicodeDecodeError)):
        return "Invalid request: the body is not valid JSON."
    return data.get("message") or _describe_validation(errors, data.get("schema"))


def _describe_not_found():
    path = request.path
    if len(path) > MAX_ECHOED_PATH:
        path = path[:MAX_ECHOED_PATH] + "…"
    if request.url_rule is None:  # no route matched
        return f"No such path: {path}. See /docs for the API."
    return f"No such file: {path}."  # a route for files, without this one


def handle_http_exception(error):
    data = getattr(error, "data", None) or {}
    headers = data.get("headers", {})
    errors = data.get("errors") or data.get("messages")
    if errors:
        return _body(_describe_invalid_input(error, data, errors), errors=errors), error.code, headers
    message = data.get("message") or error.description
    if error.code == 404 and message == NotFound.description:  # werkzeug's, not a view's own
        message = _describe_not_found()
    elif error.code == 405:
        headers = {"Allow": ", ".join(error.valid_methods or ())}
    elif error.code == 413:
        message = f"The request body is too large (at most {current_app.config['MAX_CONTENT_LENGTH']} bytes)."
    elif error.code == 429:  # rate_limits adds the X-RateLimit-* headers
        message = f"Too many requests: the limit is {error.description}. Try again later."
        headers = {"Retry-After": str(getattr(error, "retry_after", 60))}
    return _body(message), error.code, headers


def _declared_body_types():
    """(OpenAPI path, METHOD) -> media types of the request body the spec declares for it."""
    extensions = current_app.extensions
    declared = extensions.get("declared_body_types")
    if declared is None:  # read once per app, at its first request with a body
        declared = {}
        for registered in extensions["flask-smorest"]["apis"].values():
            for path, operations in registered["ext_obj"].spec.to_dict()["paths"].items():
                for method, operation in operations.items():
                    if isinstance(operation, dict) and "requestBody" in operation:
                        declared[(path, method.upper())] = tuple(operation["requestBody"]["content"])
        extensions["declared_body_types"] = declared
    return declared


def refuse_undeclared_media_type():
    """415 for a body sent in a media type its operation does not take (per the spec).

    Webargs would ignore a body that is not JSON and report its fields as missing. Operations
    that take no body (pause, resume, ...) are not checked, nor are requests without a body:
    those get the operation's own answer (422 for a missing required body). It runs before
    the blueprints' authentication, which is harmless: the media types are in /openapi.json.
    """
    has_body = request.content_length or "Transfer-Encoding" in request.headers
    if not has_body or request.url_rule is None:
        return
    path = FlaskPlugin.flaskpath2openapi(request.url_rule.rule)
    accepted = _declared_body_types().get((path, request.method))
    if not accepted or request.mimetype in accepted:
        return
    if is_json(request.mimetype) and any(is_json(media_type) for media_type in accepted):
        return  # e.g. application/merge-patch+json, which webargs parses as JSON too
    kind = "a JSON body" if all(is_json(media_type) for media_type in accepted) else "the body"
    sent = f"Content-Type: {request.mimetype}" if request.mimetype else "no Content-Type"
    raise UnsupportedMediaType(
        f"Unsupported media type: send {kind} with the header Content-Type: {' or '.join(accepted)} "
        f"(this request had {sent})."
    )


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
    app.before_request(refuse_undeclared_media_type)
    app.register_error_handler(HTTPException, handle_http_exception)
    for refusal in STATUSES:
        app.register_error_handler(refusal, handle_refusal)
    app.register_error_handler(peewee.OperationalError, handle_database_error)
    app.register_error_handler(peewee.InterfaceError, handle_database_error)
    app.register_error_handler(MaxConnectionsExceeded, handle_database_error)
    app.register_error_handler(redis.RedisError, handle_redis_error)
    app.register_error_handler(Exception, handle_unexpected)
