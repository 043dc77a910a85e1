"""Admin routes of /api/queue: health of the queue and workers, and requeueing a download."""

from flask.views import MethodView
from flask_smorest import Blueprint

from downloads_app.downloads import queue_health, recovery
from downloads_app.infra import activity
from downloads_app.web.api.documented_errors import ADMIN, SIGNED_IN, WRITE, refusals
from downloads_app.web.auth import admin_required, authenticate
from downloads_app.web.current import current_runtime
from downloads_app.web.schemas import ActivitySchema, DownloadEnvelopeSchema, QueueHealthSchema

blp = Blueprint("queue", __name__, url_prefix="/api/queue", description="Queue health (admin)")
blp.before_request(authenticate)


@blp.route("/health")
class QueueHealth(MethodView):
    @admin_required
    @blp.doc(operationId="get_queue_health")
    @blp.response(200, QueueHealthSchema)
    @refusals(blp, SIGNED_IN, ADMIN)
    def get(self):
        """Queue depths, dead letters, live workers, downloads by state, stalled downloads (admin)"""
        return {"success": True, **queue_health.snapshot(current_runtime())}


@blp.route("/activity")
class Activity(MethodView):
    @admin_required
    @blp.doc(operationId="get_queue_activity")
    @blp.response(200, ActivitySchema)
    @refusals(blp, SIGNED_IN, ADMIN)
    def get(self):
        """The last hour, minute by minute: starts, completions, failures, bytes moved, queue depth (admin)

        Kept in Redis by the service itself for two hours; the workers write theirs every
        DOWNLOAD_RECONCILE_SECONDS.
        """
        return {"success": True, "minutes": activity.last_minutes(current_runtime().queue.client)}


@blp.route("/downloads/<download_id:download_id>/requeue")
class Requeue(MethodView):
    @admin_required
    @blp.doc(operationId="requeue_download")
    @blp.response(200, DownloadEnvelopeSchema)
    @refusals(blp, WRITE, ADMIN, (404, 409, 413))
    def post(self, download_id):
        """Queue a stalled, pending, dead-lettered or failed download again (admin)

        A failed download reserves its file size again: 413 when it no longer fits its owner's quota.
        """
        return {
            "success": True,
            "message": "Download requeued",
            "download": recovery.requeue(current_runtime(), download_id),
        }
