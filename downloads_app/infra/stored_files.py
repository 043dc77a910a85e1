"""Files of downloads under STORAGE_DIR: the growing `.part`, its origin version, the finished file."""
import fcntl
import hashlib
import os
import shutil
import time
from pathlib import Path

from flask import current_app

from downloads_app.downloads.refusals import InsufficientStorage

HASH_READ_BYTES = 1024 * 1024
# A run stopped by pause or cancel lets go of the `.part` at its next chunk: wait that long.
PART_LOCK_WAIT_SECONDS = 5.0


class PartFileBusy(Exception):
    """Another run of the same download still holds its `.part` file (try again later)."""


def _user_dir(user_id):
    # User ids come from tokens: hash them into a safe directory name.
    return Path(current_app.config["STORAGE_DIR"]) / hashlib.sha256(user_id.encode()).hexdigest()[:32]


def final_path(download):
    """Where a completed download's file lives."""
    return _user_dir(download.user_id) / download.id


def part_path(download):
    """The file a transfer appends to until it is verified."""
    return final_path(download).with_suffix(".part")


def _version_path(download):
    """Beside the `.part`: the origin's ETag or Last-Modified of the bytes in it."""
    return final_path(download).with_suffix(".version")


def stored_bytes(download):
    """Bytes already in the `.part` file (0 if there is none)."""
    try:
        return part_path(download).stat().st_size
    except FileNotFoundError:
        return 0


def part_version(download):
    """The origin version the `.part` bytes belong to, or None."""
    try:
        return _version_path(download).read_text() or None
    except FileNotFoundError:
        return None


class PartFile:
    """The `.part` of a download, opened to append from `offset` (cut back to it), hashing as it grows."""

    def __init__(self, download, offset, version):
        path = part_path(download)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unbuffered: the bytes `size` counts are in the file, even if the process dies next.
        self.file = open(path, "a+b", buffering=0)  # noqa: SIM115 (closed by close())
        if not _lock(self.file):
            self.file.close()
            raise PartFileBusy(f"another run still writes {path.name}")
        self.file.truncate(offset)
        _version_path(download).write_text(version or "")
        self.sha256 = hashlib.sha256()
        self.file.seek(0)
        remaining = offset
        while remaining:  # the bytes kept from earlier runs count towards the checksum
            block = self.file.read(min(HASH_READ_BYTES, remaining))
            if not block:
                break
            self.sha256.update(block)
            remaining -= len(block)
        self.size = offset

    def write(self, chunk):
        view = memoryview(chunk)
        while view:  # an unbuffered write may take fewer bytes than offered
            view = view[self.file.write(view):]
        self.sha256.update(chunk)
        self.size += len(chunk)

    def close(self):
        self.file.close()


def _lock(file):
    """Lock `file` for this run, waiting up to PART_LOCK_WAIT_SECONDS for an earlier run to let go."""
    deadline = time.monotonic() + PART_LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def finish(download):
    """Move the verified `.part` to its final name, atomically and durably."""
    with open(part_path(download), "rb") as part:
        os.fsync(part.fileno())
    os.replace(part_path(download), final_path(download))
    _version_path(download).unlink(missing_ok=True)


def discard_part(download):
    """Forget the bytes of an unfinished transfer (the next run starts from zero)."""
    part_path(download).unlink(missing_ok=True)
    _version_path(download).unlink(missing_ok=True)


def remove(download):
    """Delete every file of `download`: finished or not."""
    final_path(download).unlink(missing_ok=True)
    discard_part(download)


def check_free_space(needed_bytes):
    """InsufficientStorage unless STORAGE_DIR has `needed_bytes` plus STORAGE_FREE_MARGIN_BYTES free."""
    directory = Path(current_app.config["STORAGE_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    margin = current_app.config["STORAGE_FREE_MARGIN_BYTES"]
    if free < needed_bytes + margin:
        raise InsufficientStorage(
            f"The service's storage is full: {needed_bytes} bytes are needed plus a margin of "
            f"{margin}, and {free} are free. Try again later.",
        )
