"""Files of downloads under STORAGE_DIR: the growing `.part`, its origin version, the finished file."""

import fcntl
import hashlib
import os
import shutil
import time
from pathlib import Path

HASH_READ_BYTES = 1024 * 1024
# A run stopped by pause or cancel lets go of the `.part` at its next chunk: wait that long.
PART_LOCK_WAIT_SECONDS = 5.0


class InsufficientStorage(Exception):
    """STORAGE_DIR has too little free space for the file (plus STORAGE_FREE_MARGIN_BYTES)."""

    reason = "insufficient_storage"


class PartFileBusy(Exception):
    """Another run of the same download still holds its `.part` file (try again later)."""


def human_bytes(count):
    """`count` bytes as people read them, exact count beside: "70.0 GB (70,002,000,000 bytes)", "5 bytes"."""
    if abs(count) < 1000:
        return "1 byte" if count == 1 else f"{count} bytes"
    scaled = count
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        scaled /= 1000
        if abs(round(scaled, 1)) < 1000 or unit == "PB":  # 999,999 bytes read 1.0 MB, not 1000.0 kB
            return f"{scaled:.1f} {unit} ({count:,} bytes)"


class StoredFiles:
    """The storage directory of this service (STORAGE_DIR) and the free space it must keep."""

    def __init__(self, directory, free_margin_bytes):
        self.directory = Path(directory)
        self.free_margin_bytes = free_margin_bytes

    def of(self, download):
        """The files of `download` (anything with `id` and `user_id`)."""
        # User ids come from tokens: hash them into a safe directory name.
        user_dir = self.directory / hashlib.sha256(download.user_id.encode()).hexdigest()[:32]
        return DownloadFiles(self, user_dir / download.id)

    def check_free_space(self, needed_bytes):
        """InsufficientStorage unless STORAGE_DIR has `needed_bytes` plus the margin free."""
        self.directory.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.directory).free
        margin = self.free_margin_bytes
        if free < needed_bytes + margin:
            raise InsufficientStorage(
                f"The service's storage is full: {human_bytes(needed_bytes)} are needed plus a margin of "
                f"{human_bytes(margin)}, and {human_bytes(free)} are free. Try again later.",
            )


class DownloadFiles:
    """One download's files: the finished file, the `.part` a transfer appends to, and its version."""

    def __init__(self, storage, final_path):
        self.storage = storage
        self.final_path = final_path
        self.part_path = final_path.with_suffix(".part")
        # Beside the `.part`: the origin's ETag or Last-Modified of the bytes in it.
        self.version_path = final_path.with_suffix(".version")

    def check_free_space(self, needed_bytes):
        """InsufficientStorage unless the storage directory has room for `needed_bytes` more."""
        self.storage.check_free_space(needed_bytes)

    def stored_bytes(self):
        """Bytes already in the `.part` file (0 if there is none)."""
        try:
            return self.part_path.stat().st_size
        except FileNotFoundError:
            return 0

    def part_version(self):
        """The origin version the `.part` bytes belong to, or None."""
        try:
            return self.version_path.read_text() or None
        except FileNotFoundError:
            return None

    def open_part(self):
        """The `.part`, locked for this run (PartFileBusy if another run keeps it), as it is on disk."""
        return PartFile(self)

    def discard_part(self):
        """Forget the bytes of an unfinished transfer (the next run starts from zero)."""
        self.part_path.unlink(missing_ok=True)
        self.version_path.unlink(missing_ok=True)

    def remove(self):
        """Delete every file of the download: finished or not."""
        self.final_path.unlink(missing_ok=True)
        self.discard_part()


class PartFile:
    """The `.part` of a download, locked by one run: cut back to an offset, appended to, hashed, published.

    Its size is read only once the lock is held, so no other run can have renamed, cut or
    grown it in between.
    """

    def __init__(self, files):
        self.files = files
        files.part_path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            # Unbuffered: the bytes `size` counts are in the file, even if the process dies next.
            self.file = open(files.part_path, "a+b", buffering=0)  # noqa: SIM115 (closed by close())
            if not _lock(self.file):
                self.file.close()
                raise PartFileBusy(f"another run still writes {files.part_path.name}")
            if _is_at(self.file, files.part_path):
                break
            # The run we waited for renamed or discarded the part meanwhile: lock the one there now.
            self.file.close()
        self.size = os.fstat(self.file.fileno()).st_size
        self.sha256 = hashlib.sha256()

    def start_at(self, offset, version, keep_going=lambda: True):
        """Cut the part back to `offset` (never longer: a hole would read as zeros) for `version`,
        hashing the bytes kept; `keep_going()` is asked between blocks, and False stops it (False)."""
        if offset > self.size:
            raise ValueError(f"cannot resume {self.files.part_path.name} at byte {offset}: it has {self.size}")
        self.file.truncate(offset)
        self.size = offset
        self.files.version_path.write_text(version or "")
        self.sha256 = hashlib.sha256()
        self.file.seek(0)
        remaining = offset
        while remaining:  # the bytes kept from earlier runs count towards the checksum
            if not keep_going():
                return False
            block = self.file.read(min(HASH_READ_BYTES, remaining))
            if not block:
                break
            self.sha256.update(block)
            remaining -= len(block)
        return True

    def write(self, chunk):
        view = memoryview(chunk)
        while view:  # an unbuffered write may take fewer bytes than offered
            view = view[self.file.write(view) :]
        self.sha256.update(chunk)
        self.size += len(chunk)

    def sync(self):
        """Make the part's bytes durable (fsync)."""
        os.fsync(self.file.fileno())

    def publish(self):
        """Rename the synced part to the download's final name, atomically, while still locked."""
        os.replace(self.files.part_path, self.files.final_path)
        self.files.version_path.unlink(missing_ok=True)

    def discard(self):
        """Forget the part's bytes while still locked (the next run starts from zero)."""
        self.files.discard_part()

    def close(self):
        self.file.close()


def _is_at(file, path):
    """True if the open `file` is still the one at `path` (not renamed away or removed)."""
    try:
        there = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(file.fileno())
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


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
