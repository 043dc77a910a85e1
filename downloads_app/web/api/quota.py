"""Route of /api/storage: the caller's quota, used and free bytes."""

from flask.views import MethodView
from flask_smorest import Blueprint

from downloads_app.downloads import ledger
from downloads_app.web.api.documented_errors import SIGNED_IN, refusals
from downloads_app.web.auth import authenticate, current_user
from downloads_app.web.current import current_runtime
from downloads_app.web.schemas import StorageSchema

blp = Blueprint("storage", __name__, url_prefix="/api/storage", description="Your storage quota")
blp.before_request(authenticate)


@blp.route("")
class Storage(MethodView):
    @blp.doc(operationId="get_storage")
    @blp.response(200, StorageSchema)
    @refusals(blp, SIGNED_IN)
    def get(self):
        """Your storage quota: bytes allowed, reserved by downloads, and free"""
        return {"success": True, **ledger.storage(current_runtime().settings, current_user().id)}
