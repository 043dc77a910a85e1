"""Routes of /api/me: the signed-in user's account settings."""

from flask.views import MethodView
from flask_smorest import Blueprint

from downloads_app.downloads import accounts
from downloads_app.web.api.documented_errors import JSON_BODY, SIGNED_IN, WRITE, refusals
from downloads_app.web.auth import authenticate, current_user
from downloads_app.web.schemas import AccountSchema, AccountUpdateSchema

blp = Blueprint("account", __name__, url_prefix="/api/me", description="Your account")
blp.before_request(authenticate)


def _account(settings):
    return {"success": True, "user_id": current_user().id, **settings}


@blp.route("")
class Account(MethodView):
    @blp.doc(operationId="get_account")
    @blp.response(200, AccountSchema)
    @refusals(blp, SIGNED_IN)
    def get(self):
        """Your account settings"""
        return _account(accounts.settings_of(current_user().id))

    @blp.doc(operationId="update_account")
    @blp.arguments(AccountUpdateSchema)
    @blp.response(200, AccountSchema)
    @refusals(blp, WRITE, JSON_BODY)
    def patch(self, body):
        """Change your account settings

        `smart_downloads: true`: marking an episode watched deletes it and starts the next episode of
        its series on the same device and quality.
        """
        return _account(accounts.change(current_user().id, **body))
