"""The flask-smorest Api: OpenAPI spec, locally served Swagger UI, and every blueprint."""

import flask_smorest
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from downloads_app.web.api import (
    account,
    contents,
    converters,
    devices,
    downloads,
    event_streams,
    files,
    health,
    queue_admin,
    quota,
)
from downloads_app.web.schemas import ByteCount, ErrorSchema, spec_properties

BLUEPRINTS = (
    downloads.blp,
    event_streams.blp,
    files.blp,
    devices.blp,
    account.blp,
    quota.blp,
    contents.blp,
    queue_admin.blp,
    health.blp,
)

SWAGGER_ASSETS = "/docs/assets/"

API_CONFIG = {
    "API_TITLE": "Offline downloads",
    "API_VERSION": "1.0",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": SWAGGER_ASSETS,
    "OPENAPI_SWAGGER_UI_CONFIG": {"persistAuthorization": True},
    "API_SPEC_OPTIONS": {
        "info": {"description": "Download titles for offline viewing. Sign in with a bearer JWT."},
        "security": [{"bearerAuth": []}],
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    },
}


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema
    # No catch-all `default` response: each operation lists the error statuses it sends.
    DEFAULT_ERROR_RESPONSE_NAME = None


class SchemaPlugin(MarshmallowPlugin):
    """The marshmallow plugin with this app's fields mapped from the start.

    flask-smorest converts ERROR_SCHEMA while the Api is bound to the app, before anything
    registered afterwards applies: mapped here, the Error schema's byte counts are decimal
    strings (with their pattern) like every other schema's.
    """

    def __init__(self, app):
        super().__init__()
        self._app = app

    def init_spec(self, spec):
        super().init_spec(spec)
        self.map_to_openapi_type(ByteCount, "string", None)
        self.converter.add_attribute_function(spec_properties(self._app))


swagger_assets = Blueprint("swagger_assets", __name__)


@swagger_assets.route(f"{SWAGGER_ASSETS}<path:filename>")
def swagger_asset(filename):
    return send_from_directory(swagger_ui_path, filename)


def init_app(app):
    for key, value in API_CONFIG.items():
        app.config.setdefault(key, value)
    api = Api(app, spec_kwargs={"marshmallow_plugin": SchemaPlugin(app)})
    converters.init_app(app, api)
    for blp in BLUEPRINTS:
        api.register_blueprint(blp)
    app.register_blueprint(swagger_assets)
