"""The Run handle: the one way a byte mover (the copier, the simulation) reports to its download."""

import threading
import time

from downloads_app.downloads import run_writes
from downloads_app.infra import activity
from downloads_app.infra.metrics import TRANSFERRED_BYTES

# A running transfer writes at least this often, so the reconciler can tell it from a dead one.
HEARTBEAT_SECONDS = 1.0


def _count_moved(nbytes):
    """Count `nbytes` moved: in the metrics and in the minute's activity."""
    TRANSFERRED_BYTES.inc(nbytes)
    activity.TALLY.add("transferred_bytes", nbytes)


class RunHandle:
    """Report bytes, rebase, resize, should-stop and finish, for the run holding the download's claim.

    Every write goes through the claim: a `False` answer means the download moved on
    (paused, cancelled, deleted, taken over) or the worker is stopping, and the mover stops.
    `still_owns` asks the same of the database without writing, for the steps that touch the
    files; `beat` and `beat_through` keep the heartbeat going through long steps.
    """

    def __init__(self, rt, download, stopping):
        self._rt = rt
        self._download = download
        self._stopping = stopping
        self.files = rt.files.of(download)
        self._interval = rt.settings.download_progress_interval_ms / 1000
        self._step = rt.settings.download_progress_bytes
        self._last_write = time.monotonic()  # the claim has just written the record

    @property
    def download_id(self):
        return self._download.id

    @property
    def file_size_bytes(self):
        return self._download.file_size_bytes

    @property
    def downloaded_bytes(self):
        """The bytes last recorded for the download."""
        return self._download.downloaded_bytes

    def should_stop(self):
        """True once the worker process is shutting down."""
        return self._stopping.is_set()

    def report(self, nbytes):
        """`nbytes` are done: persisted at most every DOWNLOAD_PROGRESS_INTERVAL_MS and
        DOWNLOAD_PROGRESS_BYTES, and at least every HEARTBEAT_SECONDS (always the last bytes).
        False when the mover must stop."""
        now = time.monotonic()
        due = (
            nbytes >= self.file_size_bytes
            or now - self._last_write >= HEARTBEAT_SECONDS
            or (now - self._last_write >= self._interval and nbytes - self.downloaded_bytes >= self._step)
        )
        if not due:
            return not self.should_stop()
        self._last_write = now
        moved = nbytes - self.downloaded_bytes
        if not run_writes.record_progress(self._rt, self._download, nbytes):
            return False
        _count_moved(moved)
        return not self.should_stop()

    def moved_all(self):
        """Every byte is in and nothing is left to do before the completion, which records them
        with the outcome (one write fewer than a last `report`). False when the mover must stop."""
        _count_moved(self.file_size_bytes - self.downloaded_bytes)
        return not self.should_stop()

    def beat(self):
        """A heartbeat between the blocks of a long step: the bytes last recorded, written again
        once HEARTBEAT_SECONDS have passed (even for a whole file). False when the mover must stop."""
        if time.monotonic() - self._last_write < HEARTBEAT_SECONDS:
            return not self.should_stop()
        return self.report(self.downloaded_bytes)

    def beat_through(self, step):
        """`step()` (one long system call: fsync, rename) in a helper thread, beating every
        HEARTBEAT_SECONDS meanwhile; returns what it returns, raises what it raises."""
        outcome = {}

        def perform():
            try:
                outcome["result"] = step()
            except BaseException as exc:  # handed to the run's thread below
                outcome["error"] = exc

        helper = threading.Thread(target=perform, name=f"step of {self.download_id}", daemon=True)
        helper.start()
        try:
            while True:
                helper.join(HEARTBEAT_SECONDS)
                if not helper.is_alive():
                    break
                self.beat()  # its answer waits for the step: the claim is checked once it is over
        finally:
            # The step works on the locked `.part`: even a run interrupted here (a time limit)
            # must not let go of the lock before the step is over.
            helper.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")

    def still_owns(self):
        """True while this run's claim is the download's current one and it is downloading;
        asked under the `.part` lock before the files are cut, renamed or discarded."""
        return run_writes.owns(self._download)

    def rebase(self, nbytes):
        """The bytes on disk are the truth, even fewer than recorded (a file started over)."""
        return run_writes.record_bytes_on_disk(self._rt, self._download, nbytes)

    def resize(self, file_size_bytes):
        """The origin's file has another size: the record and the quota follow it (QuotaExceeded)."""
        return run_writes.resize(self._rt, self._download, file_size_bytes)

    def finish(self, sha256):
        """The file is verified and in its place: its SHA-256 is recorded when the run completes."""
        self._download.sha256 = sha256
