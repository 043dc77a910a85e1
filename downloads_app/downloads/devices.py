"""Each user's download devices: registering, what each holds, the starts they allow, deregistering."""

from peewee import fn

from downloads_app.downloads import ledger, lifecycle
from downloads_app.downloads.models import Device, Download
from downloads_app.downloads.refusals import DeviceNotFound, DeviceRequired, TooManyDevices, TooManyDownloadsOnDevice
from downloads_app.downloads.transitions import delete_where
from downloads_app.infra.database import database


def register(rt, user_id, name, platform):
    """A new device of the user; TooManyDevices once they have MAX_DEVICES_PER_USER."""
    cap = rt.settings.max_devices_per_user
    with database.atomic():
        ledger.lock(user_id)  # registrations, starts and deregistrations of a user go one at a time
        registered = Device.select().where(Device.user_id == user_id).count()
        if registered >= cap:
            raise TooManyDevices(
                f"You have {registered} devices registered, the most allowed: deregister one to add another.",
                max_devices=cap,
            )
        return Device.create(user_id=user_id, name=name, platform=platform)


def _holdings(user_id):
    """{device id or None (the default device): (downloads, bytes)} of the user's reserving downloads."""
    rows = (
        Download.select(Download.device, fn.COUNT(Download.id), fn.SUM(Download.file_size_bytes))
        .where(Download.user_id == user_id, Download.status.in_(lifecycle.RESERVING))
        .group_by(Download.device)
        .tuples()
    )
    return {device_id: (count, int(nbytes or 0)) for device_id, count, nbytes in rows}


def list_devices(user_id):
    """(the user's devices, oldest first, each with `download_count` and `used_bytes`; the same two
    of the default device: downloads started without naming a device)."""
    holdings = _holdings(user_id)
    devices = list(Device.select().where(Device.user_id == user_id).order_by(Device.created_at, Device.id))
    for device in devices:
        device.download_count, device.used_bytes = holdings.get(device.id, (0, 0))
    count, nbytes = holdings.get(None, (0, 0))
    return devices, {"download_count": count, "used_bytes": nbytes}


def get_device(user_id, device_id):
    """The user's device, or DeviceNotFound (also for another user's id)."""
    device = Device.get_or_none(Device.id == device_id, Device.user_id == user_id)
    if device is None:
        raise DeviceNotFound(f"No device with id {device_id!r}: register it with POST /api/devices.")
    return device


def check_start_on(rt, user_id, device_id):
    """Whether a new download may go to `device_id` (None: the default device), inside the start's
    transaction, which holds the user's ledger row: DeviceRequired, DeviceNotFound or
    TooManyDownloadsOnDevice if not."""
    if device_id is None:
        if Device.select().where(Device.user_id == user_id).exists():
            raise DeviceRequired(
                "You have registered devices: name the one to download to in device_id (GET /api/devices)."
            )
        return
    get_device(user_id, device_id)
    cap = rt.settings.max_downloads_per_device
    held = Download.select().where(Download.device == device_id, Download.status.in_(lifecycle.RESERVING)).count()
    if held >= cap:
        raise TooManyDownloadsOnDevice(
            f"This device holds {held} downloads, the most allowed: delete one from it first.",
            max_downloads_per_device=cap,
        )


def any_registered(user_ids):
    """Whether any of `user_ids` has a registered device (their starts must then name one); one query."""
    return Device.select().where(Device.user_id.in_(list(user_ids))).exists()


def deregister(rt, user_id, device_id):
    """Forget a device and delete its downloads with their files; (downloads deleted, bytes freed)."""
    with database.atomic():
        ledger.lock(user_id)
        device = get_device(user_id, device_id)
        deleted = delete_where(rt, Download.device == device.id)
        device.delete_instance()
    return deleted
