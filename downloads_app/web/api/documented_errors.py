"""The error answers each operation documents, so the spec lists every status it can send."""

from http import HTTPStatus

SIGNED_IN = (401, 503)  # every /api route: a bad token, or the database or Redis down
WRITE = (*SIGNED_IN, 429)  # every write is rate limited
JSON_BODY = (400, 413, 415, 422)  # malformed, too large, not JSON, or invalid body
ADMIN = (403,)


def refusals(blp, *groups):
    """Decorator documenting the error statuses of `groups` (tuples of codes) on a view."""
    codes = sorted({code for group in groups for code in group})

    def document(view):
        for code in codes:
            view = blp.alt_response(code, response=HTTPStatus(code).name)(view)
        return view

    return document
