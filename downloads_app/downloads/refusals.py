"""Refusals of the domain, one class each; the API maps them to HTTP statuses."""


class ServiceError(Exception):
    """Base: a request the service refuses, with a message fit for the client."""

    status_code = 400

    def __init__(self, message, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class DownloadNotFound(ServiceError):
    """No such download for this user."""

    status_code = 404


class ContentNotFound(ServiceError):
    """No such title in the catalogue."""

    status_code = 404


class ContentExists(ServiceError):
    """A title with this id is already in the catalogue."""

    status_code = 409


class ContentInUse(ServiceError):
    """The title still has downloads and cannot be removed."""

    status_code = 409


class QualityNotOffered(ServiceError):
    """The title is not offered in the requested quality."""

    status_code = 422


class QuotaExceeded(ServiceError):
    """The download does not fit in the user's free storage."""

    status_code = 413


class TooManyActiveDownloads(ServiceError):
    """The user already has MAX_ACTIVE_DOWNLOADS_PER_USER downloads pending or downloading."""

    status_code = 409


class AlreadyHeld(ServiceError):
    """A retry would make a second live download of a title and quality the user holds."""

    status_code = 409


class IdempotencyKeyReused(ServiceError):
    """The Idempotency-Key was used before for a different title or quality."""

    status_code = 422


class OriginUnusable(ServiceError):
    """The file's origin cannot be used: misconfigured, or it did not serve the file."""

    status_code = 422


class InsufficientStorage(ServiceError):
    """STORAGE_DIR has too little free space for the file (plus STORAGE_FREE_MARGIN_BYTES)."""

    status_code = 507


class InvalidTransition(ServiceError):
    """The action does not fit the download's current state."""

    status_code = 409


class QueueUnavailable(ServiceError):
    """Redis (the job queue) did not answer."""

    status_code = 503


class NoStoredFile(ServiceError):
    """The download has no file to serve: not completed, or moved by the simulated transport."""

    status_code = 409


class NotAuthenticated(ServiceError):
    """No valid bearer token came with the request."""

    status_code = 401


class NotAllowed(ServiceError):
    """The caller is signed in but may not do this."""

    status_code = 403
