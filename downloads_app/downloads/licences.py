"""Licences of completed downloads: each title's periods, the first playback's window, and expiry."""

import logging
from datetime import timedelta

from downloads_app.downloads import lifecycle
from downloads_app.downloads.models import Content, Download, utcnow
from downloads_app.downloads.refusals import InvalidTransition, LicenceExpired
from downloads_app.downloads.transitions import apply_all
from downloads_app.infra.metrics import LICENCES_EXPIRED

log = logging.getLogger("downloads_app.service")


def period(settings, content):
    """How long a licence of `content` lasts from its completion or renewal (its own or LICENSE_DAYS)."""
    days = content.license_days if content.license_days is not None else settings.license_days
    return timedelta(days=days)


def playback_window(settings, content):
    """How long a licence of `content` lasts from its first playback (its own or PLAYBACK_WINDOW_HOURS)."""
    hours = (
        content.playback_window_hours if content.playback_window_hours is not None else settings.playback_window_hours
    )
    return timedelta(hours=hours)


def renewal_cap(settings, content):
    """Renewals of `content` per account and calendar year (its own or MAX_RENEWALS_PER_YEAR)."""
    return content.max_renewals if content.max_renewals is not None else settings.max_renewals_per_year


def expiry_on_completion(settings, content_id, now):
    """When the licence of a download of `content_id` completed `now` runs out."""
    content = Content.select(Content.license_days).where(Content.id == content_id).get()
    return now + period(settings, content)


def has_expired(download, now):
    """Whether `download`'s licence ran out: expired, or completed and past its expiry (the
    expiry job has not moved it yet). A completed download without a licence (written by hand,
    not by a worker's completion) never expires."""
    if download.status == lifecycle.EXPIRED:
        return True
    expires = download.license_expires_at
    return download.status == lifecycle.COMPLETED and expires is not None and expires <= now


def licence_expired(download):
    """The refusal of anything but a renewal once `download`'s licence ran out."""
    return LicenceExpired(
        f"The licence of this download ran out on {download.license_expires_at:%Y-%m-%d %H:%M} UTC: "
        "renew it to watch it again.",
        status=lifecycle.EXPIRED,
    )


def check_licensed(download, action, now):
    """LicenceExpired (410) or InvalidTransition (409) unless `download` is completed with a licence
    that still runs; `action` names what was asked in the message."""
    if has_expired(download, now):
        raise licence_expired(download)
    if download.status != lifecycle.COMPLETED:
        raise InvalidTransition(f"Cannot {action} a download that is {download.status}.", status=download.status)


def expire_due(rt):
    """Expire every completed download whose licence has run out: files removed, quota released,
    a status event each. Safe with many workers: each download moves once."""
    expired = apply_all(rt, "expire", Download.license_expires_at <= utcnow())
    if expired:
        rt.events.publish("status", expired)
        LICENCES_EXPIRED.inc(len(expired))
    return expired
