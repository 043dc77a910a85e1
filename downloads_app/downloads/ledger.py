"""Each user's storage ledger: the quota, the bytes reserved, and reserving or releasing them.

Called inside the transaction of the download change that moves the bytes, so the ledger
always equals the sum of the user's reserving downloads.
"""

from peewee import EXCLUDED, fn

from downloads_app.downloads.models import StorageLedger
from downloads_app.downloads.refusals import QuotaExceeded
from downloads_app.infra.stored_files import human_bytes


def _quota_expression(default_quota):
    return fn.COALESCE(StorageLedger.quota_bytes, default_quota)


def storage(settings, user_id):
    """{quota_bytes, used_bytes, free_bytes} of `user_id` (STORAGE_QUOTA_BYTES unless they have their own)."""
    row = StorageLedger.get_or_none(StorageLedger.user_id == user_id)
    used = row.used_bytes if row else 0
    quota = row.quota_bytes if row and row.quota_bytes is not None else None
    if quota is None:
        quota = settings.storage_quota_bytes
    return {"quota_bytes": quota, "used_bytes": used, "free_bytes": max(quota - used, 0)}


def reserve(rt, user_id, nbytes):
    """Add `nbytes` to the ledger if they fit in the quota, else QuotaExceeded.

    One statement: a user's first reservation inserts the row (when it fits the default
    quota), later ones update it only while the sum stays within the quota.
    """
    default_quota = rt.settings.storage_quota_bytes
    fits_new_row = nbytes <= default_quota
    reserved = list(
        StorageLedger.insert(user_id=user_id, used_bytes=nbytes if fits_new_row else 0)
        .on_conflict(
            conflict_target=[StorageLedger.user_id],
            update={StorageLedger.used_bytes: StorageLedger.used_bytes + nbytes},
            where=StorageLedger.used_bytes + nbytes <= _quota_expression(default_quota),
        )
        .returning(StorageLedger.used_bytes)
        .tuples()
        .execute()
    )
    if not reserved or reserved[0][0] < nbytes:  # refused, or a new row that did not fit
        free = storage(rt.settings, user_id)["free_bytes"]
        raise QuotaExceeded(
            f"Not enough storage: this download needs {human_bytes(nbytes)} and {human_bytes(free)} are free.",
            needed_bytes=str(nbytes),
            free_bytes=str(free),
        )


def reserve_all(rt, needed):
    """Add each user's bytes of {user id: bytes} to the ledger, in one statement, if every one's fit
    in their quota; True if they all did. If not, the caller must roll back: some may have been added.

    Rows are locked in user order, so batches that overlap cannot deadlock.
    """
    default_quota = rt.settings.storage_quota_bytes
    if any(nbytes > default_quota for nbytes in needed.values()):
        return False  # a new row would not fit: `reserve` tells which and why
    reserved = (
        StorageLedger.insert_many([{"user_id": user_id, "used_bytes": needed[user_id]} for user_id in sorted(needed)])
        .on_conflict(
            conflict_target=[StorageLedger.user_id],
            update={StorageLedger.used_bytes: StorageLedger.used_bytes + EXCLUDED.used_bytes},
            where=StorageLedger.used_bytes + EXCLUDED.used_bytes <= _quota_expression(default_quota),
        )
        .returning(StorageLedger.user_id)
        .execute()
    )
    return len(list(reserved)) == len(needed)


def settle(rt, deltas):
    """Apply {user id: bytes to reserve (+) or release (-)}: one statement per user."""
    for user_id, nbytes in deltas.items():
        if nbytes > 0:
            reserve(rt, user_id, nbytes)
        elif nbytes < 0:
            StorageLedger.update(used_bytes=StorageLedger.used_bytes + nbytes).where(
                StorageLedger.user_id == user_id
            ).execute()


def lock(user_id):
    """Lock the user's ledger row until commit (making it if they have none): their starts, resumes
    and device changes then go one at a time."""
    StorageLedger.insert(user_id=user_id, used_bytes=0).on_conflict(
        conflict_target=[StorageLedger.user_id], update={StorageLedger.used_bytes: StorageLedger.used_bytes}
    ).execute()
