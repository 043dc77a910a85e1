"""The origin copier: stream a file from its origin into the download's `.part`, resuming, then verify it.

It knows its download only through the Run handle and its files; it imports no domain module.
"""

import logging

from downloads_app.infra import origins
from downloads_app.transfer import bandwidth

log = logging.getLogger("downloads_app.worker")

MIN_THROTTLED_CHUNK = 4096


class VerificationFailed(Exception):
    """The finished file is not the one the catalogue describes; the next run starts from zero."""


def _chunk_size(settings):
    """DOWNLOAD_CHUNK_BYTES, smaller under a bandwidth limit so a chunk takes at most ¼ s."""
    rates = [r for r in (settings.download_max_bytes_per_second, settings.download_worker_max_bytes_per_second) if r]
    return min([settings.download_chunk_bytes, *(max(rate // 4, MIN_THROTTLED_CHUNK) for rate in rates)])


def fetch(handle, source, settings):
    """Move the file of `source` into the download's `.part` from the bytes already there.

    True once the file is verified and in its place (its SHA-256 given to `handle.finish`);
    False when the handle says to stop. A changed origin (its ETag or Last-Modified) starts
    the file over. Raises OriginError, VerificationFailed, InsufficientStorage, QuotaExceeded,
    PartFileBusy.

    Fenced: the `.part` is locked before its size is read and until the file is in its place,
    and the claim is checked under that lock before the part is cut back, renamed or
    discarded, so a run that lost its download touches no file.
    """
    files = handle.files
    part = files.open_part()
    try:
        offset = part.size
        files.check_free_space(max(handle.file_size_bytes - offset, 0))
        with origins.open_range(
            source.location,
            offset,
            files.part_version(),
            connect_timeout=settings.download_connect_timeout_seconds,
            read_timeout=settings.download_read_timeout_seconds,
            chunk_size=_chunk_size(settings),
        ) as answer:
            if answer.start < offset:
                log.info("[Download Worker] %s: the origin's file changed; starting over", handle.download_id)
            elif offset:
                log.info("[Download Worker] %s: resuming at byte %d of the file on disk", handle.download_id, offset)
            if answer.start != handle.downloaded_bytes and not handle.rebase(answer.start):
                return False  # the bytes on disk are the truth, but only for the run that owns them
            if answer.total_size != handle.file_size_bytes:
                handle.resize(answer.total_size)  # the quota follows the real file
                files.check_free_space(max(answer.total_size - answer.start, 0))  # and so must the disk
            if not handle.still_owns() or not part.start_at(answer.start, answer.validator, handle.beat):
                return False
            if not _copy(answer, part, handle, settings):
                return False
        _verify(handle, source, part)
        handle.beat_through(part.sync)
        if not handle.still_owns():
            return False  # superseded during the fsync: the file is the new owner's to place
        handle.beat_through(part.publish)
    finally:
        part.close()
    handle.finish(part.sha256.hexdigest())
    return True


def _copy(answer, part, handle, settings):
    """Append the answer's body to `part` within the bandwidth limits; False if told to stop."""
    own_limit = bandwidth.Throttle(settings.download_max_bytes_per_second)
    worker_limit = bandwidth.process_throttle(settings.download_worker_max_bytes_per_second)
    if not handle.report(part.size):
        return False
    for chunk in answer.chunks():
        part.write(chunk)
        own_limit.spend(len(chunk))
        worker_limit.spend(len(chunk))
        if not handle.report(part.size):
            return False
    return True


def _verify(handle, source, part):
    """The size the origin announced, and the catalogue's SHA-256 when it has one."""
    digest = part.sha256.hexdigest()
    problem = None
    if part.size != handle.file_size_bytes:
        problem = f"the file has {part.size} bytes, the origin announced {handle.file_size_bytes}"
    elif source.sha256 and digest != source.sha256.lower():
        problem = f"SHA-256 {digest} does not match the catalogue's {source.sha256.lower()}"
    if problem:
        if handle.rebase(0):  # only the run that owns the download may throw its bytes away
            part.discard()
        raise VerificationFailed(f"{problem}; the next attempt starts from zero")
