"""Starting downloads in batches: concurrent starts recorded in one transaction, queued in one round trip."""

import logging
from collections import defaultdict
from dataclasses import dataclass

from downloads_app.downloads import admission, allowances, catalogue, devices, ledger, lifecycle
from downloads_app.downloads.models import Content, Download, new_id, utcnow
from downloads_app.downloads.refusals import AlreadyHeld, InvalidTransition, QuotaExceeded, Refusal
from downloads_app.downloads.transitions import delete_records, delete_where, forget_deleted
from downloads_app.infra import activity
from downloads_app.infra.broker import QueueUnavailable
from downloads_app.infra.database import database
from downloads_app.infra.logs import context
from downloads_app.infra.stored_files import InsufficientStorage

log = logging.getLogger("downloads_app.service")


@dataclass(frozen=True)
class StartRequest:
    """One user's ask to start a title at a quality on a device (None: the default device), with
    the request's Idempotency-Key if any."""

    user_id: str
    content_id: str
    quality: str
    idempotency_key: str | None = None
    device_id: str | None = None


@dataclass(frozen=True)
class _Planned:
    index: int
    start: StartRequest
    size: int
    content: Content


class _AlreadyStarted(Exception):
    """Raised inside a start's transaction to roll it back: the download exists."""

    def __init__(self, download):
        super().__init__(download.id)
        self.download = download


class _NotTogether(Exception):
    """Raised inside a batch's transaction to roll it back: some start is not a plain new one."""


def start_batch(rt, starts):
    """One outcome per StartRequest, in order: (download, created), or the exception to raise for it.

    A download that answers `created` is committed and its transfer queued: if Redis refuses
    the batch's messages, its downloads are taken back and each answers QueueUnavailable.
    """
    outcomes = [None] * len(starts)
    planned = []
    files = catalogue.files_of(rt.settings, [(start.content_id, start.quality) for start in starts])
    for index, (start, file) in enumerate(zip(starts, files, strict=True)):
        if isinstance(file, Refusal):
            outcomes[index] = file
            continue
        size, source, content = file
        try:
            if source is not None:
                rt.files.check_free_space(size)
        except InsufficientStorage as exc:
            outcomes[index] = exc
            continue
        planned.append(_Planned(index, start, size, content))
    created = _record_together(rt, planned)
    if created is None:
        created = []
        for plan in planned:
            try:
                download, new = _record_one(rt, plan)
            except Exception as exc:  # this start's refusal or failure, not its batch's
                outcomes[plan.index] = exc
                continue
            if new:
                created.append((plan.index, download))
            else:
                outcomes[plan.index] = (download, False)
    if created:
        _queue(rt, created, outcomes)
    return outcomes


def _record_together(rt, planned):
    """[(index, new download)] of every start of `planned`, recorded in one transaction; or None,
    and nothing recorded, unless each is a plain new start: distinct, fits its user's quota,
    repeats no held download or Idempotency-Key, stays within the active cap, and is on the
    default device of a user without devices, of a title without a yearly cap."""
    if len(planned) < 2:
        return None
    if any(plan.start.device_id is not None or plan.content.max_downloads_per_year is not None for plan in planned):
        return None
    starts = [plan.start for plan in planned]
    if len({(s.user_id, s.content_id, s.quality) for s in starts}) < len(starts):
        return None
    keys = [(s.user_id, s.idempotency_key) for s in starts if s.idempotency_key is not None]
    if len(set(keys)) < len(keys):
        return None
    needed = defaultdict(int)
    for plan in planned:
        needed[plan.start.user_id] += plan.size
    now = utcnow()
    downloads = [
        Download(
            id=new_id(),
            user_id=plan.start.user_id,
            content=plan.start.content_id,
            quality=plan.start.quality,
            status=lifecycle.PENDING,
            file_size_bytes=plan.size,
            idempotency_key=plan.start.idempotency_key,
            created_at=now,
            updated_at=now,
        )
        for plan in planned
    ]
    try:
        with database.atomic():
            # The same checks as `_record_one`, each one statement for the batch.
            if not ledger.reserve_all(rt, needed) or admission.any_existing(starts):
                raise _NotTogether
            if devices.any_registered(needed):
                raise _NotTogether
            _insert(downloads)
            if admission.over_active_cap(rt, list(needed)):
                raise _NotTogether
    except _NotTogether:
        return None
    return [(plan.index, download) for plan, download in zip(planned, downloads, strict=True)]


# The columns of a new download, in the model's order, and its fields to convert each value.
_FIELDS = Download._meta.sorted_fields
_INSERT = f"INSERT INTO {Download._meta.table_name} ({', '.join(f.column_name for f in _FIELDS)}) VALUES "


def _insert(downloads):
    """Insert `downloads` in one statement, written out: Peewee took longer to build it than the database to run it."""
    row = "(" + ", ".join([database.param] * len(_FIELDS)) + ")"
    values = [field.db_value(download.__data__.get(field.name)) for download in downloads for field in _FIELDS]
    database.execute_sql(_INSERT + ", ".join([row] * len(downloads)), values)


def _record_one(rt, plan):
    """(download, created) of one planned start, in its own transaction; the reference for `_record_together`.

    Not created when the request repeats an Idempotency-Key, or the user already holds this
    title at this quality on the device (pending, downloading, paused or completed): that
    download is returned, and nothing is reserved or counted against the title's yearly cap.
    """
    start = plan.start
    user_id, content_id, quality, key = start.user_id, start.content_id, start.quality, start.idempotency_key
    try:
        with database.atomic():
            # Reserving locks the user's ledger row until commit, so one user's starts run
            # one at a time and the checks below cannot race with each other.
            ledger.reserve(rt, user_id, plan.size)
            existing = admission.existing_download(user_id, content_id, quality, key, start.device_id)
            if existing is not None:
                raise _AlreadyStarted(existing)
            devices.check_start_on(rt, user_id, start.device_id)
            yearly_cap = plan.content.max_downloads_per_year
            if yearly_cap is not None:
                allowances.take(user_id, plan.content, allowances.DOWNLOADS, yearly_cap)
            download = Download.create(
                id=new_id(),
                user_id=user_id,
                content=content_id,
                device=start.device_id,
                quality=quality,
                status=lifecycle.PENDING,
                file_size_bytes=plan.size,
                idempotency_key=key,
            )
            admission.check_active_cap(rt, user_id)
    except _AlreadyStarted as started:
        return started.download, False
    except QuotaExceeded:
        existing = admission.existing_download(user_id, content_id, quality, key, start.device_id)
        if existing is None:
            raise
        return existing, False
    return download, True


def replace(rt, old, start):
    """Delete the completed download `old` and start `start` in its place, in one transaction:
    `old`'s reservation is released before the new one is reserved, so the user's storage grows
    by no more than their free space. Returns the new download, or raises the start's refusal
    (or AlreadyHeld, or InvalidTransition when `old` is no longer completed) with `old` kept."""
    [file] = catalogue.files_of(rt.settings, [(start.content_id, start.quality)])
    if isinstance(file, Refusal):
        raise file
    size, source, content = file
    if source is not None:
        rt.files.check_free_space(size)
    with database.atomic():
        deleted, _ = delete_records(rt, Download.id == old.id, Download.status == lifecycle.COMPLETED)
        if not deleted:
            raise InvalidTransition("The download changed meanwhile: it is no longer completed.")
        download, created = _record_one(rt, _Planned(0, start, size, content))
        if not created:
            raise AlreadyHeld(
                f"You already have {start.content_id} at {start.quality} on this device ({download.status}).",
                status=download.status,
            )
        # Inside the transaction, as a resume's: if Redis refuses, nothing changed. The minute's
        # count of starts goes in the same round trip, as a batch's does.
        [job_id] = rt.queue.enqueue_transfers([download.id], alongside=lambda pipe: activity.add_to(pipe, "started", 1))
    forget_deleted(rt, deleted)
    rt.events.publish("status", [download])
    log.info(
        "Download %s started in place of %s: %s at %s, %d bytes",
        download.id,
        old.id,
        download.content_id,
        download.quality,
        download.file_size_bytes,
        extra=context(download, job_id),
    )
    return download


def _queue(rt, created, outcomes):
    """Queue the transfers of the `created` [(index, download)] and announce them, in one round trip."""
    downloads = [download for _, download in created]
    try:

        def alongside(pipe):  # their events, and the minute's count of starts: the same round trip
            rt.events.add_to(pipe, "status", downloads)
            activity.add_to(pipe, "started", len(downloads))

        job_ids = rt.queue.enqueue_transfers([download.id for download in downloads], alongside=alongside)
    except QueueUnavailable as exc:
        # The clients are told to try again, so take the records back rather than leave
        # pending downloads that no worker will ever see.
        delete_where(rt, Download.id.in_([download.id for download in downloads]))
        for index, _ in created:
            outcomes[index] = exc
        return
    for (index, download), job_id in zip(created, job_ids, strict=True):
        log.info(
            "Download %s started: %s at %s, %d bytes",
            download.id,
            download.content_id,
            download.quality,
            download.file_size_bytes,
            extra=context(download, job_id),
        )
        outcomes[index] = (download, True)
