"""Routes of /api/contents: the catalogue, readable by users, changed by admins."""
from flask.views import MethodView
from flask_smorest import Blueprint

from downloads_app import catalogue
from downloads_app.api.refusals import ADMIN, JSON_BODY, SIGNED_IN, WRITE, refusals
from downloads_app.auth import admin_required, authenticate
from downloads_app.schemas import (
    ContentCreateSchema,
    ContentEnvelopeSchema,
    ContentListSchema,
    ContentUpdateSchema,
    MessageSchema,
)

blp = Blueprint("contents", __name__, url_prefix="/api/contents", description="The catalogue")
blp.before_request(authenticate)


@blp.route("")
class Contents(MethodView):
    @blp.response(200, ContentListSchema)
    @refusals(blp, SIGNED_IN)
    def get(self):
        """Titles that can be downloaded, with qualities and sizes"""
        return {"success": True, "contents": catalogue.list_contents()}

    @admin_required
    @blp.arguments(ContentCreateSchema)
    @blp.response(201, ContentEnvelopeSchema)
    @refusals(blp, WRITE, ADMIN, JSON_BODY, (409,))
    def post(self, body):
        """Add a title (admin)"""
        return {"success": True, "message": "Title added", "content": catalogue.create_content(**body)}


@blp.route("/<content_id:content_id>")
class ContentById(MethodView):
    @blp.response(200, ContentEnvelopeSchema)
    @refusals(blp, SIGNED_IN, (404,))
    def get(self, content_id):
        """One title"""
        return {"success": True, "content": catalogue.get_content(content_id)}

    @admin_required
    @blp.arguments(ContentUpdateSchema)
    @blp.response(200, ContentEnvelopeSchema)
    @refusals(blp, WRITE, ADMIN, JSON_BODY, (404,))
    def patch(self, body, content_id):
        """Change a title (admin)"""
        content = catalogue.update_content(content_id, **body)
        return {"success": True, "message": "Title updated", "content": content}

    @admin_required
    @blp.response(200, MessageSchema)
    @refusals(blp, WRITE, ADMIN, (404, 409))
    def delete(self, content_id):
        """Remove a title that has no downloads (admin)"""
        catalogue.delete_content(content_id)
        return {"success": True, "message": "Title removed"}
