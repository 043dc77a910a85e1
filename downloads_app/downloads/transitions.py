"""The one way a download changes state: a conditional UPDATE … RETURNING with its ledger change.

Each transition of the lifecycle table moves only rows in one of its source states, in
the same transaction as the storage-ledger change, so racing requests and workers can
neither lose nor resurrect a download, and the ledger always equals the sum of the
reserving downloads.
"""

import logging
from collections import defaultdict

from downloads_app.downloads import ledger, lifecycle
from downloads_app.downloads.models import Download, utcnow
from downloads_app.infra import event_hub
from downloads_app.infra.database import database
from downloads_app.infra.logs import context

log = logging.getLogger("downloads_app.service")


def apply_all(rt, transition, *conditions, **changes):
    """Move every download matching `conditions` along `transition`; return those moved.

    Runs inside the caller's transaction when there is one. A transition that moves no quota
    (claim, complete, pause, resume) is the one UPDATE, atomic by itself: no transaction of its
    own. One that releases the quota (cancel, fail) removes the download's files too: the quota
    follows the bytes on disk.
    """
    update = (
        Download.update(status=lifecycle.target(transition), updated_at=utcnow(), **changes)
        .where(Download.status.in_(lifecycle.sources(transition)), *conditions)
        .returning(Download)
    )
    if lifecycle.moves_quota(transition):
        with database.atomic():
            moved = list(update.execute())
            deltas = defaultdict(int)
            for download in moved:
                deltas[download.user_id] += lifecycle.quota_change(transition, download.file_size_bytes)
            ledger.settle(rt, deltas)
    else:
        moved = list(update.execute())
    for download in moved:
        log.info("Download %s %s: now %s", download.id, transition, download.status, extra=context(download))
    if lifecycle.releases_quota(transition):
        for download in moved:
            rt.files.of(download).remove()
    return moved


def apply(rt, transition, *conditions, **changes):
    """Like `apply_all` for one download: the download moved, or None."""
    moved = apply_all(rt, transition, *conditions, **changes)
    return moved[0] if moved else None


def published(rt, kind, download):
    """Publish `download`'s new state, if it moved; return it."""
    if download is not None:
        rt.events.publish(kind, [download])
    return download


def delete_where(rt, *conditions):
    """Delete matching downloads and their files, release what they reserved; (count, bytes released)."""
    with database.atomic():
        deleted, released = delete_records(rt, *conditions)
    forget_deleted(rt, deleted)
    return len(deleted), released


def delete_records(rt, *conditions):
    """Delete the matching rows and release what they reserved, in the caller's transaction; (the
    deleted downloads, bytes released). Their files stay until `forget_deleted`, after the commit."""
    deleted = list(Download.delete().where(*conditions).returning(Download).execute())
    deltas = defaultdict(int)
    for download in deleted:
        if download.status in lifecycle.RESERVING:
            deltas[download.user_id] -= download.file_size_bytes
    ledger.settle(rt, deltas)
    return deleted, -sum(deltas.values())


def forget_deleted(rt, deleted):
    """After the commit of `delete_records`: remove the downloads' files and announce the deletions."""
    for download in deleted:
        rt.files.of(download).remove()
        log.info("Download %s deleted", download.id, extra=context(download))
    rt.events.publish("status", deleted, status=event_hub.DELETED)
