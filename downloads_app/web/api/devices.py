"""Routes of /api/devices: register, list and deregister the devices you download to."""

from flask.views import MethodView
from flask_smorest import Blueprint

from downloads_app.downloads import devices
from downloads_app.web.api.documented_errors import JSON_BODY, SIGNED_IN, WRITE, refusals
from downloads_app.web.auth import authenticate, current_user
from downloads_app.web.current import current_runtime
from downloads_app.web.schemas import CleanupSchema, DeviceCreateSchema, DeviceEnvelopeSchema, DeviceListSchema

blp = Blueprint("devices", __name__, url_prefix="/api/devices", description="Your download devices")
blp.before_request(authenticate)


@blp.route("")
class Devices(MethodView):
    @blp.doc(operationId="list_devices")
    @blp.response(200, DeviceListSchema)
    @refusals(blp, SIGNED_IN)
    def get(self):
        """Your devices, oldest first, with the downloads each holds"""
        registered, default = devices.list_devices(current_user().id)
        return {"success": True, "devices": registered, "default_device": default}

    @blp.doc(operationId="register_device")
    @blp.arguments(DeviceCreateSchema)
    @blp.response(201, DeviceEnvelopeSchema)
    @refusals(blp, WRITE, JSON_BODY, (409,))
    def post(self, body):
        """Register a device to download to

        From then on every start names its `device_id`. At most MAX_DEVICES_PER_USER devices: 409 beyond.
        """
        device = devices.register(current_runtime(), current_user().id, body["name"], body["platform"])
        device.download_count, device.used_bytes = 0, 0
        return {"success": True, "message": "Device registered", "device": device}


@blp.route("/<device_id:device_id>")
class DeviceById(MethodView):
    @blp.doc(operationId="deregister_device")
    @blp.response(200, CleanupSchema)
    @refusals(blp, WRITE, (404,))
    def delete(self, device_id):
        """Deregister a device: its downloads are deleted and their storage freed"""
        count, freed = devices.deregister(current_runtime(), current_user().id, device_id)
        return {
            "success": True,
            "message": f"Device deregistered; deleted its {count} download{'' if count == 1 else 's'}",
            "deleted_count": count,
            "freed_bytes": freed,
        }
