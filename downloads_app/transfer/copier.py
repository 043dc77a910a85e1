"""A real transfer: stream the file from its origin into STORAGE_DIR, resuming, then verify it."""
import logging

from flask import current_app

from downloads_app.transfer import bandwidth
from downloads_app.downloads import service
from downloads_app.infra import stored_files, origins

log = logging.getLogger("downloads_app.worker")

MIN_THROTTLED_CHUNK = 4096


class VerificationFailed(Exception):
    """The finished file is not the one the catalogue describes; the next run starts from zero."""


def _chunk_size(config):
    """DOWNLOAD_CHUNK_BYTES, smaller under a bandwidth limit so a chunk takes at most ¼ s."""
    rates = [r for r in (config["DOWNLOAD_MAX_BYTES_PER_SECOND"], config["DOWNLOAD_WORKER_MAX_BYTES_PER_SECOND"]) if r]
    return min([config["DOWNLOAD_CHUNK_BYTES"], *(max(rate // 4, MIN_THROTTLED_CHUNK) for rate in rates)])


def fetch(download, source, report):
    """Move the file of `source` into the download's `.part` from the bytes already there.

    True once the file is verified and in its place (`download.sha256` is set); False when
    `report(bytes on disk)` says to stop. A changed origin (its ETag or Last-Modified) starts
    the file over. Raises OriginError, VerificationFailed, InsufficientStorage, QuotaExceeded.
    """
    config = current_app.config
    offset = stored_files.stored_bytes(download)
    stored_files.check_free_space(max(download.file_size_bytes - offset, 0))
    with origins.open_range(
        source.location, offset, stored_files.part_version(download),
        connect_timeout=config["DOWNLOAD_CONNECT_TIMEOUT_SECONDS"],
        read_timeout=config["DOWNLOAD_READ_TIMEOUT_SECONDS"],
        chunk_size=_chunk_size(config),
    ) as answer:
        if answer.start < offset:
            log.info("[Download Worker] %s: the origin's file changed; starting over", download.id)
        elif offset:
            log.info("[Download Worker] %s: resuming at byte %d of the file on disk", download.id, offset)
        if answer.start != download.downloaded_bytes:
            service.record_bytes_on_disk(download, answer.start)  # the bytes on disk are the truth
        if answer.total_size != download.file_size_bytes:
            service.resize(download, answer.total_size)  # the quota follows the real file
        part = stored_files.PartFile(download, answer.start, answer.validator)
        try:
            if not _copy(answer, part, report, config):
                return False
        finally:
            part.close()
    _verify(download, source, part)
    stored_files.finish(download)
    download.sha256 = part.sha256.hexdigest()
    return True


def _copy(answer, part, report, config):
    """Append the answer's body to `part` within the bandwidth limits; False if told to stop."""
    own_limit = bandwidth.Throttle(config["DOWNLOAD_MAX_BYTES_PER_SECOND"])
    worker_limit = bandwidth.process_throttle(config["DOWNLOAD_WORKER_MAX_BYTES_PER_SECOND"])
    if not report(part.size):
        return False
    for chunk in answer.chunks():
        part.write(chunk)
        own_limit.spend(len(chunk))
        worker_limit.spend(len(chunk))
        if not report(part.size):
            return False
    return True


def _verify(download, source, part):
    """The size the origin announced, and the catalogue's SHA-256 when it has one."""
    digest = part.sha256.hexdigest()
    problem = None
    if part.size != download.file_size_bytes:
        problem = f"the file has {part.size} bytes, the origin announced {download.file_size_bytes}"
    elif source.sha256 and digest != source.sha256.lower():
        problem = f"SHA-256 {digest} does not match the catalogue's {source.sha256.lower()}"
    if problem:
        stored_files.discard_part(download)
        service.record_bytes_on_disk(download, 0)
        raise VerificationFailed(f"{problem}; the next attempt starts from zero")
