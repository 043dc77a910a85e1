"""Routes of /api/contents: the catalogue, readable by users, changed by admins."""

from flask.views import MethodView
from flask_smorest import Blueprint

from downloads_app.downloads import catalogue
from downloads_app.web.api.documented_errors import ADMIN, JSON_BODY, SIGNED_IN, WRITE, refusals
from downloads_app.web.auth import admin_required, authenticate
from downloads_app.web.current import current_runtime
from downloads_app.web.schemas import (
    ContentCreateSchema,
    ContentEnvelopeSchema,
    ContentListSchema,
    ContentUpdateSchema,
    MessageSchema,
    SetSourceSchema,
    SourceEnvelopeSchema,
)

blp = Blueprint("contents", __name__, url_prefix="/api/contents", description="The catalogue")
blp.before_request(authenticate)


@blp.route("")
class Contents(MethodView):
    @blp.doc(operationId="list_contents")
    @blp.response(200, ContentListSchema)
    @refusals(blp, SIGNED_IN)
    def get(self):
        """Titles that can be downloaded, with qualities and sizes"""
        return {"success": True, "contents": catalogue.list_contents()}

    @admin_required
    @blp.doc(operationId="create_content")
    @blp.arguments(ContentCreateSchema)
    @blp.response(201, ContentEnvelopeSchema)
    @refusals(blp, WRITE, ADMIN, JSON_BODY, (409,))
    def post(self, body):
        """Add a title (admin)"""
        return {
            "success": True,
            "message": "Title added",
            "content": catalogue.create_content(current_runtime().settings, **body),
        }


@blp.route("/<content_id:content_id>")
class ContentById(MethodView):
    @blp.doc(operationId="get_content")
    @blp.response(200, ContentEnvelopeSchema)
    @refusals(blp, SIGNED_IN, (404,))
    def get(self, content_id):
        """One title"""
        return {"success": True, "content": catalogue.get_content(content_id)}

    @admin_required
    @blp.doc(operationId="update_content")
    @blp.arguments(ContentUpdateSchema)
    @blp.response(200, ContentEnvelopeSchema)
    @refusals(blp, WRITE, ADMIN, JSON_BODY, (404,))
    def patch(self, body, content_id):
        """Change a title (admin)"""
        content = catalogue.update_content(current_runtime().settings, content_id, **body)
        return {"success": True, "message": "Title updated", "content": content}

    @admin_required
    @blp.doc(operationId="delete_content")
    @blp.response(200, MessageSchema)
    @refusals(blp, WRITE, ADMIN, (404, 409))
    def delete(self, content_id):
        """Remove a title that has no downloads (admin)"""
        catalogue.delete_content(content_id)
        return {"success": True, "message": "Title removed"}


@blp.route("/<content_id:content_id>/sources/<quality:quality>")
class ContentSourceOfQuality(MethodView):
    @admin_required
    @blp.doc(operationId="set_source")
    @blp.arguments(SetSourceSchema)
    @blp.response(200, SourceEnvelopeSchema)
    @refusals(blp, WRITE, ADMIN, JSON_BODY, (404,))
    def put(self, body, content_id, quality):
        """Say where the title's file at this quality lives: http(s) or s3 (admin)

        Without `size_bytes` (or `content_type`) the origin is asked for it. Downloads of the
        title at this quality then fetch this file instead of being simulated.
        """
        source = catalogue.set_source(current_runtime().settings, content_id, quality, **body)
        return {"success": True, "message": "Source saved", "source": source}

    @admin_required
    @blp.doc(operationId="delete_source")
    @blp.response(200, MessageSchema)
    @refusals(blp, WRITE, ADMIN, (404,))
    def delete(self, content_id, quality):
        """Forget where the title's file at this quality lives (admin)"""
        catalogue.delete_source(content_id, quality)
        return {"success": True, "message": "Source removed"}
