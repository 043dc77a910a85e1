"""Liveness and readiness probes for load balancers and orchestrators."""

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from downloads_app.infra import readiness
from downloads_app.web.current import current_runtime

blp = Blueprint("health", __name__, description="Liveness and readiness")


class HealthSchema(Schema):
    success = fields.Boolean(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("alive", "ready", "not ready")))
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "`ok`, or what is wrong, by dependency (`database`, `redis`)"},
    )


@blp.route("/healthz")
class Liveness(MethodView):
    @blp.doc(security=[], operationId="check_liveness")
    @blp.response(200, HealthSchema)
    def get(self):
        """The process is alive"""
        return {"success": True, "status": "alive", "checks": {}}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.doc(security=[], operationId="check_readiness")
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="A dependency is not ready")
    def get(self):
        """The database answers with every migration applied, and Redis answers"""
        runtime = current_runtime()
        checks = readiness.check(runtime.settings, runtime.queue.client)
        ready = all(result == "ok" for result in checks.values())
        body = {"success": ready, "status": "ready" if ready else "not ready", "checks": checks}
        return body, 200 if ready else 503
