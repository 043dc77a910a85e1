"""Server-Sent Event streams of download progress and state, and the browser's stream cookie."""

import logging
import queue
import re
import time
from datetime import UTC, datetime

import redis
from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint

from downloads_app.downloads import lifecycle, user_actions
from downloads_app.downloads.models import Download
from downloads_app.infra import event_hub
from downloads_app.infra.database import database
from downloads_app.web.api.documented_errors import SIGNED_IN, WRITE, refusals
from downloads_app.web.auth import (
    STREAM_COOKIE,
    authenticate,
    authenticate_stream,
    bearer_token,
    current_user,
    token_lifetime,
)
from downloads_app.web.current import current_runtime
from downloads_app.web.schemas import MessageSchema

log = logging.getLogger(__name__)

blp = Blueprint("events", __name__, url_prefix="/api", description="Live progress (Server-Sent Events)")

SNAPSHOT_LIMIT = 500
# Event ids are times in milliseconds: ASCII digits (str.isdigit takes "²" too), at most the
# end of year 9999, the last time a datetime holds.
EVENT_ID = re.compile(r"[0-9]{1,15}")
LAST_EVENT_ID_MAX = 253402300799999
# OpenAPI 3.0 has no way to describe an event of a stream (3.2's `itemSchema`), and tools read the
# media type's `schema` either as the whole text (generated clients) or as each parsed event
# (schemathesis: `{data, event, id}` objects). So the schema sets no type, which holds for both
# readings, and tells the shape of the stream and its events in words and by example.
STREAM_DOC = {
    "description": "A text/event-stream: `retry: 2000` first, then events, and a `: heartbeat` comment "
    "every 15 s. Browsers may authenticate with the cookie set by POST /api/session instead of the "
    "Authorization header; the stream ends after a while, and clients reconnect with `Last-Event-ID`.",
    "content": {
        "text/event-stream": {
            "schema": {
                "description": "The stream as text. Each event has `event: status` (a state change) or "
                "`event: progress`, `id:` the time in milliseconds, and one `data:` line: JSON like the "
                "Progress schema (GET /api/downloads/{download_id}/progress), whose `status` is `deleted` "
                "after a delete.",
                "example": "retry: 2000\n\nevent: status\nid: 1700000000000\ndata: {\"success\": true, "
                "\"id\": \"0123456789abcdef0123456789abcdef\", \"status\": \"downloading\", \"progress\": 40, "
                "\"downloaded_bytes\": \"99323400\", \"file_size_bytes\": \"248308500\"}\n\n",
            }
        }
    },
}


def _snapshot(user_id, download_id, last_event_id):
    """Events that bring a (re)connecting client up to date at once."""
    if download_id:
        return [event_hub.event("status", user_actions.get_download(user_id, download_id))]
    query = Download.select().where(Download.user_id == user_id)
    deleted = []
    if last_event_id is not None:
        # Changed or deleted since the last event the client saw (one second of margin for clock skew).
        since_ms = max(last_event_id - 1000, 0)
        query = query.where(Download.updated_at >= datetime.fromtimestamp(since_ms / 1000, UTC).replace(tzinfo=None))
        try:
            deleted = event_hub.deletions_since(current_runtime().queue.client, user_id, since_ms)
        except redis.RedisError:  # the rows still bring the stream up to date, but for deletions
            log.warning("Could not read recent deletions for a reconnecting stream")
    else:
        query = query.where(Download.status.in_([lifecycle.PENDING, lifecycle.DOWNLOADING, lifecycle.PAUSED]))
    newest = list(query.order_by(Download.updated_at.desc(), Download.id.desc()).limit(SNAPSHOT_LIMIT))
    return deleted + [event_hub.event("status", d) for d in reversed(newest)]  # oldest first


STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _last_event_id():
    """The `Last-Event-ID` header as milliseconds; a malformed one counts as missing."""
    value = request.headers.get("Last-Event-ID", "")
    if EVENT_ID.fullmatch(value) and int(value) <= LAST_EVENT_ID_MAX:
        return int(value)
    return None


def _stream(user_id, download_id=None):
    if request.method == "HEAD":
        # Flask runs this view for HEAD and drops the body: a generator that never starts never
        # runs its `finally`, so a subscription opened here would stay open for good.
        if download_id:
            user_actions.get_download(user_id, download_id)  # the 404 a GET would answer
        return Response(mimetype="text/event-stream", headers=STREAM_HEADERS)
    hub = current_app.extensions["event_hub"]
    heartbeat = current_app.config["SSE_HEARTBEAT_SECONDS"]
    last_event_id = _last_event_id()
    # Subscribe before reading the snapshot so that nothing falls between the two.
    subscription = hub.open_stream(user_id)
    try:
        snapshot = _snapshot(user_id, download_id, last_event_id)
    except Exception:
        hub.close_stream(user_id, subscription)
        raise
    database.close()  # an idle stream holds no database connection

    # Streams end after SSE_MAX_STREAM_SECONDS; clients reconnect with Last-Event-ID, so
    # no connection pins one API process for ever and deploys drain.
    ends_at = time.monotonic() + current_app.config["SSE_MAX_STREAM_SECONDS"]

    sent = {}  # download id → the last (kind, data) this stream sent of it

    def news(message):
        """Whether `message` tells the client something new: the subscription, opened before the
        snapshot was read, may still deliver a change the snapshot already holds."""
        told = (message["event"], message["data"])
        if sent.get(message["data"]["id"]) == told:
            return False
        sent[message["data"]["id"]] = told
        return True

    def generate():
        try:
            yield "retry: 2000\n\n"
            for message in snapshot:
                if news(message):
                    yield event_hub.format_sse(message)
            while (left := ends_at - time.monotonic()) > 0:
                try:
                    message = subscription.get(timeout=min(heartbeat, left))
                except queue.Empty:
                    if ends_at > time.monotonic():
                        yield ": heartbeat\n\n"
                    continue
                if message is event_hub.END_OF_STREAM:
                    return
                if (download_id is None or message["data"]["id"] == download_id) and news(message):
                    yield event_hub.format_sse(message)
        finally:  # the client went away: gunicorn closes the generator
            hub.close_stream(user_id, subscription)

    return Response(
        generate(),
        mimetype="text/event-stream",
        headers=STREAM_HEADERS,
    )


@blp.route("/downloads/events")
class AllEvents(MethodView):
    @blp.doc(operationId="stream_events", responses={"200": STREAM_DOC})
    @refusals(blp, SIGNED_IN)
    def get(self):
        """Stream progress and state changes of all your downloads"""
        authenticate_stream()
        return _stream(current_user().id)


@blp.route("/downloads/<download_id:download_id>/events")
class DownloadEvents(MethodView):
    @blp.doc(operationId="stream_download_events", responses={"200": STREAM_DOC})
    @refusals(blp, SIGNED_IN, (404,))
    def get(self, download_id):
        """Stream progress and state changes of one download"""
        authenticate_stream()
        return _stream(current_user().id, download_id)


@blp.route("/session")
class StreamSession(MethodView):
    @blp.doc(operationId="open_stream_session")
    @blp.response(200, MessageSchema)
    @refusals(blp, WRITE)
    def post(self):
        """Set an HttpOnly cookie with your token, for EventSource (which cannot send headers)"""
        authenticate()
        token = bearer_token()
        response = current_app.make_response({"success": True, "message": "Stream cookie set"})
        response.set_cookie(
            STREAM_COOKIE,
            token,
            max_age=token_lifetime(token),
            httponly=True,
            samesite="Strict",
            secure=request.is_secure,
            path="/api/downloads",
        )
        return response

    @blp.doc(security=[], operationId="close_stream_session")
    @blp.response(200, MessageSchema)
    @refusals(blp, (429,))
    def delete(self):
        """Remove the stream cookie"""
        response = current_app.make_response({"success": True, "message": "Stream cookie removed"})
        response.delete_cookie(STREAM_COOKIE, path="/api/downloads")
        return response
