"""What operators look at: the queue in Redis, the live workers, downloads by state, licences about to expire."""

from datetime import timedelta

from peewee import fn

from downloads_app.downloads import lifecycle
from downloads_app.downloads.models import Download, utcnow
from downloads_app.downloads.recovery import stalled
from downloads_app.infra import worker_registry

LISTED = 100  # at most this many stalled, dead-lettered or expiring downloads are listed
EXPIRING_WITHIN = timedelta(days=1)


def snapshot(rt):
    """The whole picture, as the admin endpoint and `flask queue stats` show it."""
    ready, delayed, dead = rt.queue.depths()
    # A worker beats on every reconciler pass; three missed passes and it is presumed dead.
    alive_within = 3 * rt.settings.download_reconcile_seconds + 5
    registry = worker_registry.registered(rt.queue.client, alive_within)

    by_status = dict.fromkeys(lifecycle.STATUSES, 0)
    for status, count in Download.select(Download.status, fn.COUNT(Download.id)).group_by(Download.status).tuples():
        by_status[status] = count
    oldest_pending = Download.select(fn.MIN(Download.created_at)).where(Download.status == lifecycle.PENDING).scalar()
    stalled_query = Download.select().where(stalled(rt.settings))
    now = utcnow()
    expiring = Download.select().where(
        Download.status == lifecycle.COMPLETED, Download.license_expires_at <= now + EXPIRING_WITHIN
    )
    return {
        "queue": {"name": rt.queue.name, "ready": ready, "delayed": delayed, "dead_lettered": dead},
        "dead_lettered_downloads": rt.queue.dead_lettered_ids()[:LISTED],
        "workers": registry,
        "workers_alive": sum(w["alive"] for w in registry),
        "downloads_by_status": by_status,
        "oldest_pending_age_seconds": (now - oldest_pending).total_seconds() if oldest_pending else None,
        "stalled_count": stalled_query.count(),
        "stalled": list(stalled_query.order_by(Download.updated_at).limit(LISTED)),
        "licences_expiring_next_day": expiring.count(),
        "expiring_licences": list(expiring.order_by(Download.license_expires_at).limit(LISTED)),
    }
