"""What operators look at: the queue in Redis, the live workers, and downloads by state."""
from datetime import timedelta

import dramatiq
from flask import current_app
from peewee import fn

from downloads_app import lifecycle, workers
from downloads_app.models import Download, utcnow

LISTED = 100  # at most this many stalled or dead-lettered downloads are listed


def _keys():
    queue = f"dramatiq:{current_app.config['DOWNLOADS_QUEUE']}"
    return {"ready": queue, "delayed": f"{queue}.DQ.msgs", "dead": f"{queue}.XQ", "dead_msgs": f"{queue}.XQ.msgs"}


def dead_lettered_ids(client):
    """Download ids of the messages Dramatiq gave up on (dead-letter queue)."""
    raws = client.hvals(_keys()["dead_msgs"])
    return sorted({dramatiq.Message.decode(raw).args[0] for raw in raws})


def discard_dead_letters(client, download_id):
    """Remove the dead-lettered messages of `download_id`; returns how many."""
    keys = _keys()
    ids = [
        message_id
        for message_id, raw in client.hgetall(keys["dead_msgs"]).items()
        if dramatiq.Message.decode(raw).args[0] == download_id
    ]
    if ids:
        client.zrem(keys["dead"], *ids)
        client.hdel(keys["dead_msgs"], *ids)
    return len(ids)


def stalled_cutoff():
    return utcnow() - timedelta(seconds=current_app.config["DOWNLOAD_STALL_SECONDS"])


def snapshot():
    """The whole picture, as the admin endpoint and `flask queue stats` show it."""
    config = current_app.config
    client = current_app.extensions["broker"].client
    keys = _keys()
    with client.pipeline(transaction=False) as pipe:
        pipe.llen(keys["ready"])
        pipe.hlen(keys["delayed"])
        pipe.zcard(keys["dead"])
        ready, delayed, dead = pipe.execute()
    # A worker beats on every reconciler pass; three missed passes and it is presumed dead.
    alive_within = 3 * config["DOWNLOAD_RECONCILE_SECONDS"] + 5
    registry = workers.registered(client, alive_within)

    by_status = dict.fromkeys(lifecycle.STATUSES, 0)
    for status, count in Download.select(Download.status, fn.COUNT(Download.id)).group_by(Download.status).tuples():
        by_status[status] = count
    oldest_pending = (
        Download.select(fn.MIN(Download.created_at)).where(Download.status == lifecycle.PENDING).scalar()
    )
    stalled_query = Download.select().where(
        Download.status == lifecycle.DOWNLOADING, Download.updated_at < stalled_cutoff()
    )
    now = utcnow()
    return {
        "queue": {"name": config["DOWNLOADS_QUEUE"], "ready": ready, "delayed": delayed, "dead_lettered": dead},
        "dead_lettered_downloads": dead_lettered_ids(client)[:LISTED],
        "workers": registry,
        "workers_alive": sum(w["alive"] for w in registry),
        "downloads_by_status": by_status,
        "oldest_pending_age_seconds": (now - oldest_pending).total_seconds() if oldest_pending else None,
        "stalled_count": stalled_query.count(),
        "stalled": list(stalled_query.order_by(Download.updated_at).limit(LISTED)),
    }
