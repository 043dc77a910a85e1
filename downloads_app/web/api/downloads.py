"""Routes of /api/downloads: start, list, inspect, control and delete downloads."""

import hashlib

import marshmallow as ma
from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint

from downloads_app.downloads import episodes, progress_reads, user_actions
from downloads_app.infra import event_hub
from downloads_app.infra.metrics import STARTED
from downloads_app.web.api.documented_errors import JSON_BODY, SIGNED_IN, WRITE, refusals
from downloads_app.web.auth import authenticate, current_user
from downloads_app.web.current import current_runtime
from downloads_app.web.rate_limits import limit_starts
from downloads_app.web.schemas import (
    CleanupSchema,
    DownloadEnvelopeSchema,
    DownloadListSchema,
    DownloadQueryArgsSchema,
    IdempotencyHeaderSchema,
    MessageSchema,
    ProgressSchema,
    StartDownloadSchema,
    WatchedSchema,
)

blp = Blueprint("downloads", __name__, url_prefix="/api/downloads", description="Your downloads")

blp.before_request(authenticate)


@blp.route("")
class Downloads(MethodView):
    @blp.doc(operationId="list_downloads")
    @blp.arguments(DownloadQueryArgsSchema, location="query", unknown=ma.RAISE)
    @blp.response(200, DownloadListSchema)
    @refusals(blp, SIGNED_IN)
    def get(self, args):
        """List your downloads, newest first, optionally by status"""
        downloads, pagination = user_actions.list_downloads(current_user().id, **args)
        return {"success": True, "downloads": downloads, "pagination": pagination}


@blp.route("/start")
class StartDownload(MethodView):
    @limit_starts
    @blp.doc(operationId="start_download")
    @blp.arguments(StartDownloadSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(202, DownloadEnvelopeSchema, description="Started: a new pending download")
    @blp.alt_response(
        200,
        schema=DownloadEnvelopeSchema,
        success=True,
        description="Not started again: the download of an earlier start with the same "
        "Idempotency-Key, or the one you already hold of this title and quality",
    )
    @refusals(blp, WRITE, JSON_BODY, (403, 404, 409, 507))
    def post(self, body, headers):
        """Start downloading a title at a quality; the transfer runs in the background

        A repeat with the same `Idempotency-Key`, or a start of a title and quality you already
        have pending, downloading, paused or completed on that device, returns that download
        with 200. Refused: 403 for a title that may not be downloaded, 409 when a cap is reached
        (active downloads, downloads on the device, the title's downloads this year).
        """
        key = headers.get("idempotency_key")
        download, created = user_actions.start_download(
            current_runtime(), current_user().id, body["content_id"], body["quality"], key, body.get("device_id")
        )
        if created:
            STARTED.inc()
            return {"success": True, "message": "Download started", "download": download}
        if key is not None and download.idempotency_key == key:
            message = "Download already started with this Idempotency-Key"
        else:
            message = f"You already have this title at this quality ({download.status}): no new download"
        return {"success": True, "message": message, "download": download}, 200


@blp.route("/cleanup")
class Cleanup(MethodView):
    @blp.doc(operationId="cleanup_downloads")
    @blp.response(200, CleanupSchema)
    @refusals(blp, WRITE)
    def post(self):
        """Delete all your downloads and free their storage"""
        count, freed = user_actions.cleanup(current_runtime(), current_user().id)
        return {
            "success": True,
            "message": f"Deleted {count} downloads",
            "deleted_count": count,
            "freed_bytes": freed,
        }


def _delete(download_id):
    user_actions.delete_download(current_runtime(), current_user().id, download_id)
    return {"success": True, "message": "Download deleted"}


@blp.route("/<download_id:download_id>")
class DownloadById(MethodView):
    @blp.doc(operationId="get_download")
    @blp.response(200, DownloadEnvelopeSchema)
    @refusals(blp, SIGNED_IN, (404,))
    def get(self, download_id):
        """One of your downloads"""
        return {"success": True, "download": user_actions.get_download(current_user().id, download_id)}

    @blp.doc(operationId="delete_download")
    @blp.response(200, MessageSchema)
    @refusals(blp, WRITE, (404,))
    def delete(self, download_id):
        """Delete a download and free its storage"""
        return _delete(download_id)


@blp.route("/<download_id:download_id>/delete")
class DeleteDownload(MethodView):
    @blp.doc(operationId="delete_download_legacy_path")
    @blp.response(200, MessageSchema)
    @refusals(blp, WRITE, (404,))
    def delete(self, download_id):
        """Delete a download and free its storage (the seed's path)"""
        return _delete(download_id)


@blp.route("/<download_id:download_id>/watched")
class Watched(MethodView):
    @blp.doc(operationId="mark_watched")
    @blp.response(200, WatchedSchema)
    @refusals(blp, WRITE, (404, 409, 503, 507))
    def post(self, download_id):
        """Mark a completed download watched

        With your `smart_downloads` on (PATCH /api/me), the next episode of its series takes its
        place: on the same device, at the same quality, this one deleted first so your storage grows
        by no more than its free space. It is kept when there is no next episode, or the next cannot
        be started (the message says why).
        """
        watched = episodes.mark_watched(current_runtime(), current_user().id, download_id)
        return {
            "success": True,
            "message": watched.message,
            "download": watched.download,
            "next_download": watched.next_download,
        }


# Clients poll progress: they may keep the body, but must ask again each time (If-None-Match),
# and only for themselves.
PROGRESS_CACHE_CONTROL = "private, no-cache"
PROGRESS_HEADERS_DOC = {
    "ETag": {
        "description": "Validator of this body: send it in `If-None-Match` to get 304 while it holds",
        "schema": {"type": "string"},
        "required": True,
    },
    "Cache-Control": {"schema": {"type": "string", "enum": [PROGRESS_CACHE_CONTROL]}, "required": True},
}
IF_NONE_MATCH_DOC = {
    "name": "If-None-Match",
    "in": "header",
    "description": "The `ETag` of a progress body you hold, a comma-separated list of them, or `*`: "
    "304 with no body while it is still the download's progress",
    "schema": {"type": "string"},
}


def progress_etag(download):
    """A strong validator of the progress body of `download`: it changes exactly when the body does
    (its fields, by name and value, hashed; `success` is always true)."""
    shown = "\x1f".join(f"{name}={getattr(download, name)}" for name in event_hub.PROGRESS_FIELDS)
    return hashlib.blake2b(shown.encode(), digest_size=16).hexdigest()


@blp.route("/<download_id:download_id>/progress")
class Progress(MethodView):
    @blp.doc(operationId="get_progress", parameters=[IF_NONE_MATCH_DOC])
    @blp.response(200, ProgressSchema, headers=PROGRESS_HEADERS_DOC)
    @blp.alt_response(
        304,
        description="Not modified: the progress is still the one of the `ETag` sent in `If-None-Match`",
        headers=PROGRESS_HEADERS_DOC,
    )
    @refusals(blp, SIGNED_IN, (404,))
    def get(self, download_id):
        """Progress of a download

        Send the `ETag` of the last answer in `If-None-Match`: while the progress is the same, the
        answer is 304 with no body.
        """
        download = progress_reads.progress_of(current_user().id, download_id)
        etag = progress_etag(download)
        headers = {"ETag": f'"{etag}"', "Cache-Control": PROGRESS_CACHE_CONTROL}
        if request.if_none_match.contains_weak(etag):  # RFC 9110 13.1.2: the weak comparison
            return Response(status=304, headers=headers)
        # The body ProgressSchema would dump (it is that dict already), without marshmallow: the
        # schema stays for the spec (tests/unit/web/test_progress_body.py compares the two).
        return current_app.json.response(event_hub.progress_fields(download)), 200, headers


# action: (user action, message on success, docstring for the spec: summary, then description)
ACTIONS = {
    "pause": (user_actions.pause, "Download paused", "Pause a pending or running download"),
    "resume": (user_actions.resume, "Download resumed", "Resume a paused download from where it stopped"),
    "cancel": (user_actions.cancel, "Download cancelled", "Cancel a download and release its storage"),
    "retry": (
        user_actions.retry,
        "Download retried",
        "Retry a failed or cancelled download\n\n"
        "Its file size is reserved again: 413 when it no longer fits your quota.",
    ),
    "play": (
        user_actions.play,
        "Playback recorded",
        "Record a playback of a completed download\n\n"
        "The first one starts the title's playback window: the licence then ends at the playback "
        "plus that window if that is sooner. 410 once the licence ran out.",
    ),
    "renew": (
        user_actions.renew,
        "Licence renewed",
        "Renew a download's licence by another period\n\n"
        "A completed download's licence runs another period from its expiry (or from now, if that "
        "passed); an expired one is fetched again, its file size reserved (413 when it no longer "
        "fits), and licensed from its new completion. 409 once the title's renewals of the year are "
        "spent, with the day they are new again.",
    ),
}
# Refusals of an action beyond every action's 404 and 409: a retry or a renewal reserves the
# quota again; a playback of an expired download is gone.
ACTION_REFUSALS = {"retry": (413,), "renew": (413,), "play": (410,)}


def _action_view(action, change, message, summary):
    def post(download_id):
        return {
            "success": True,
            "message": message,
            "download": change(current_runtime(), current_user().id, download_id),
        }

    post.__name__ = f"{action}_download"
    post.__doc__ = summary
    return post


for _action, (_change, _message, _summary) in ACTIONS.items():
    blp.route(f"/<download_id:download_id>/{_action}", methods=["POST"])(
        blp.doc(operationId=f"{_action}_download")(
            blp.response(200, DownloadEnvelopeSchema)(
                refusals(blp, WRITE, (404, 409), ACTION_REFUSALS.get(_action, ()))(
                    _action_view(_action, _change, _message, _summary)
                )
            )
        )
    )
