"""Route of a completed download's file: Range requests, ETag, and the browser's cookie."""

import mimetypes

from flask import send_file
from flask.views import MethodView
from flask_smorest import Blueprint

from downloads_app.downloads import user_actions
from downloads_app.web.api.documented_errors import SIGNED_IN, refusals
from downloads_app.web.auth import authenticate_stream, current_user
from downloads_app.web.current import current_runtime

blp = Blueprint("files", __name__, url_prefix="/api/downloads", description="Your downloaded files")

FILE_DOC = {
    "description": "The file's bytes (`Accept-Ranges: bytes`, `ETag` = its SHA-256)",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}


@blp.route("/<download_id:download_id>/file")
class StoredFile(MethodView):
    @blp.doc(
        operationId="get_download_file",
        responses={"200": FILE_DOC, "206": {**FILE_DOC, "description": "The part asked for with Range"}},
    )
    @refusals(blp, SIGNED_IN, (404, 409, 410, 416))
    def get(self, download_id):
        """The file of a completed download, with Range requests (206) and an ETag

        410 Gone once its licence ran out: renew it to fetch it again.

        Browsers may authenticate with the cookie set by POST /api/session, so a plain link
        saves the file.
        """
        authenticate_stream()
        download = user_actions.get_download(current_user().id, download_id)
        path, content_type = user_actions.stored_file(current_runtime(), download)
        return send_file(
            path,
            mimetype=content_type,
            as_attachment=True,
            conditional=True,
            etag=download.sha256,
            download_name=f"{download.content_id}-{download.quality}{mimetypes.guess_extension(content_type) or ''}",
        )
