"""Refusals of the domain: one plain exception each, with a machine-readable `reason`.

The web wing decides their HTTP statuses (`web/http_errors.py`); the CLI prints them.
"""


class Refusal(Exception):
    """Base: a request the service refuses, with a message fit for the client and details."""

    reason = "refused"

    def __init__(self, message, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class DownloadNotFound(Refusal):
    """No such download for this user."""

    reason = "download_not_found"


class ContentNotFound(Refusal):
    """No such title in the catalogue."""

    reason = "content_not_found"


class ContentExists(Refusal):
    """A title with this id is already in the catalogue."""

    reason = "content_exists"


class ContentInUse(Refusal):
    """The title still has downloads and cannot be removed."""

    reason = "content_in_use"


class QualityNotOffered(Refusal):
    """The title is not offered in the requested quality."""

    reason = "quality_not_offered"


class QuotaExceeded(Refusal):
    """The download does not fit in the user's free storage."""

    reason = "quota_exceeded"


class TooManyActiveDownloads(Refusal):
    """The user already has MAX_ACTIVE_DOWNLOADS_PER_USER downloads pending or downloading."""

    reason = "too_many_active_downloads"


class AlreadyHeld(Refusal):
    """A retry would make a second live download of a title and quality the user holds."""

    reason = "already_held"


class IdempotencyKeyReused(Refusal):
    """The Idempotency-Key was used before for a different title or quality."""

    reason = "idempotency_key_reused"


class OriginUnusable(Refusal):
    """The file's origin cannot be used: misconfigured, or it did not serve the file."""

    reason = "origin_unusable"


class InvalidTransition(Refusal):
    """The action does not fit the download's current state."""

    reason = "invalid_transition"


class NoStoredFile(Refusal):
    """The download has no file to serve: not completed, or moved by the simulated transport."""

    reason = "no_stored_file"


class TitleNotDownloadable(Refusal):
    """The catalogue does not allow this title to be downloaded."""

    reason = "title_not_downloadable"


class YearlyDownloadsSpent(Refusal):
    """The account downloaded this title as often this year as the title allows."""

    reason = "yearly_downloads_spent"


class RenewalsSpent(Refusal):
    """The account renewed this title's licence as often this year as the title allows."""

    reason = "renewals_spent"


class LicenceExpired(Refusal):
    """The download's licence has run out: its file is gone until it is renewed."""

    reason = "licence_expired"


class DeviceNotFound(Refusal):
    """No such device for this user."""

    reason = "device_not_found"


class DeviceRequired(Refusal):
    """The user has registered devices, so a start must name one."""

    reason = "device_required"


class TooManyDevices(Refusal):
    """The user already has MAX_DEVICES_PER_USER devices."""

    reason = "too_many_devices"


class TooManyDownloadsOnDevice(Refusal):
    """The device already holds MAX_DOWNLOADS_PER_DEVICE downloads."""

    reason = "too_many_downloads_on_device"
