"""The origin copier driven directly: a real nginx origin, a real RunHandle on a claimed download, real files.

Each test sets a title's source at nginx, starts a download of it, claims it as a worker run
would, and calls `copier.fetch` itself (no worker consumes the queue), so every step of the
run is the test's to arrange and check. nginx's access log tells what was asked of the origin.
"""

import hashlib
import json
import os
import re
import threading
import time
from types import SimpleNamespace

import pytest

from downloads_app.config import load_settings, settings_from
from downloads_app.downloads import catalogue, ledger, recovery, run_writes, user_actions
from downloads_app.downloads.models import ContentSource, Download
from downloads_app.downloads.refusals import QuotaExceeded
from downloads_app.infra import origins, stored_files
from downloads_app.infra.event_hub import channel
from downloads_app.infra.stored_files import InsufficientStorage, StoredFiles
from downloads_app.transfer import copier, handle
from downloads_app.transfer.copier import VerificationFailed
from downloads_app.transfer.handle import RunHandle
from support import sha256_hex, wait_until

MEDIA_SIZE = SIZE = 3 * 1024 * 1024 + 4321  # 13 chunks of DOWNLOAD_CHUNK_BYTES (256 KiB), the last one short
TIMEOUTS = {"connect_timeout": 5, "read_timeout": 10}
ACCESS_LOG_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) (?P<bytes>\d+)')


@pytest.fixture
def original(media):
    return (media / "movie.mp4").read_bytes()


@pytest.fixture
def rt(app_ctx, movie, configure):
    # No free-space margin: the tests' files are small, whatever the disk has free.
    return configure(STORAGE_FREE_MARGIN_BYTES=0)


@pytest.fixture
def location(nginx):
    return f"{nginx.url}/movie.mp4"


def claimed(rt, location, quality="720p", **source):
    """A download of `location` (catalogue source of `quality`), started and claimed by a worker run."""
    catalogue.set_source(rt.settings, "movie", quality, location, **source)
    download, created = user_actions.start_download(rt, "alice", "movie", quality)
    assert created
    run = run_writes.claim(rt, download.id)
    assert run is not None and run.status == "downloading"
    return run


def fetch(rt, download, stopping=None):
    """copier.fetch as a worker run calls it: (its answer, the handle)."""
    handle = RunHandle(rt, download, stopping or threading.Event())
    source = catalogue.source_for(rt.settings, download.content_id, download.quality, download.file_size_bytes)
    return copier.fetch(handle, source, rt.settings), handle


def record(download):
    return Download.get_by_id(download.id)


def logged(nginx, method="GET"):
    """(status, body bytes sent) of each `method` request nginx has logged, in order."""
    log = nginx.dir / "access.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [
        (int(m["status"]), int(m["bytes"])) for m in map(ACCESS_LOG_LINE.search, lines) if m and m["method"] == method
    ]


def gets(nginx, count):
    """The GET requests nginx logged, once there are `count` (it logs a request after answering it)."""
    wait_until(lambda: len(logged(nginx)) >= count, timeout=10, message=f"{count} GET lines in nginx's log")
    seen = logged(nginx)
    assert len(seen) == count, seen
    return seen


def leave_part(files, data, version):
    """The `.part` an earlier run left: `data` of the origin version `version`."""
    files.part_path.parent.mkdir(parents=True, exist_ok=True)
    files.part_path.write_bytes(data)
    files.version_path.write_text(version or "")


def validator(location):
    return origins.describe(location, **TIMEOUTS).validator


class ProgressEvents:
    """The downloaded_bytes of each progress event published for a user (Redis pub/sub), from now on."""

    def __init__(self, client, user_id="alice"):
        self.pubsub = client.pubsub()
        self.pubsub.subscribe(channel(client, user_id))
        wait_until(
            lambda: (m := self.pubsub.get_message(timeout=0.1)) and m["type"] == "subscribe",
            timeout=10,
            interval=0,
            message="the subscription",
        )
        self.bytes = []

    def until(self, last):
        """Every progress event up to one of `last` bytes."""

        def arrived():
            message = self.pubsub.get_message(timeout=0.1)
            if message and message["type"] == "message":
                event = json.loads(message["data"])
                if event["event"] == "progress":
                    self.bytes.append(int(event["data"]["downloaded_bytes"]))
            return self.bytes and self.bytes[-1] == last

        wait_until(arrived, timeout=10, interval=0, message=f"a progress event of {last} bytes")
        return self.bytes

    def close(self):
        self.pubsub.close()


@pytest.fixture
def progress_events(redis_client):
    events = []

    def subscribe():
        events.append(ProgressEvents(redis_client))
        return events[-1]

    yield subscribe
    for subscription in events:
        subscription.close()


# ---------------------------------------------------------------- the whole file


@pytest.mark.parametrize("with_checksum", [False, True])
def test_the_whole_file_is_copied_byte_exact_and_its_sha256_given_to_finish(
    rt, nginx, location, original, with_checksum
):
    download = claimed(rt, location, **({"sha256": sha256_hex(original)} if with_checksum else {}))
    finished, handle = fetch(rt, download)
    assert finished is True
    files = handle.files
    assert files.final_path.read_bytes() == original
    assert not files.part_path.exists() and not files.version_path.exists()
    assert download.sha256 == sha256_hex(original)  # handle.finish gave it to the download
    stored = record(download)
    assert (stored.status, stored.downloaded_bytes, stored.progress) == ("downloading", SIZE, 100)
    assert stored.sha256 is None  # recorded when the run completes, not before
    assert run_writes.complete(rt, download).sha256 == sha256_hex(original)
    assert gets(nginx, 1) == [(200, SIZE)]


def test_a_catalogue_checksum_in_capitals_matches(rt, location, original):
    download = claimed(rt, location, sha256=sha256_hex(original).upper())
    assert fetch(rt, download)[0] is True
    assert download.sha256 == sha256_hex(original)


def test_progress_is_recorded_as_the_bytes_arrive(rt, location, progress_events):
    download = claimed(rt, location)
    events = progress_events()
    fetch(rt, download)
    seen = events.until(SIZE)
    # Recorded along the way (every DOWNLOAD_PROGRESS_BYTES, 1 MiB, or sooner), rising, the last the whole file.
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == SIZE
    assert record(download).downloaded_bytes == SIZE


# ---------------------------------------------------------------- resuming


@pytest.mark.parametrize("kept", [1, 1_234_567, SIZE - 1])
def test_a_part_of_the_same_version_is_resumed_and_only_the_rest_asked_for(
    rt, nginx, location, original, progress_events, kept
):
    download = claimed(rt, location)
    files = rt.files.of(download)
    leave_part(files, original[:kept], validator(location))
    events = progress_events()
    finished, _ = fetch(rt, download)
    assert finished is True
    assert files.final_path.read_bytes() == original
    assert download.sha256 == sha256_hex(original)  # the kept bytes count towards the checksum
    assert gets(nginx, 1) == [(206, SIZE - kept)]  # only the rest was sent
    assert events.until(SIZE)[0] == kept  # the record was first set to the bytes on disk
    assert record(download).downloaded_bytes == SIZE


def test_a_complete_part_of_the_same_version_is_finished_without_a_body(rt, nginx, location, original):
    download = claimed(rt, location)
    files = rt.files.of(download)
    leave_part(files, original, validator(location))
    finished, _ = fetch(rt, download)
    assert finished is True and files.final_path.read_bytes() == original
    assert download.sha256 == sha256_hex(original)
    [(status, _)] = gets(nginx, 1)
    assert status == 416  # nothing of the file left to send (nginx's body is its error page, not read)
    assert record(download).downloaded_bytes == SIZE


def test_a_changed_origin_version_starts_over_and_rebases_the_record(
    rt, nginx, media, location, original, progress_events
):
    path = media / "movie.mp4"
    os.utime(path, (1_600_000_000, 1_600_000_000))  # version 1, of a known time (nginx's ETag: time and size)
    download = claimed(rt, location)
    files = rt.files.of(download)
    kept = 2_000_000
    leave_part(files, original[:kept], validator(location))
    assert run_writes.record_progress(rt, download, kept)  # an earlier run recorded them
    new_version = os.urandom(SIZE)  # the same size: only the version tells them apart
    path.write_bytes(new_version)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    events = progress_events()
    finished, _ = fetch(rt, download)
    assert finished is True
    assert files.final_path.read_bytes() == new_version
    assert download.sha256 == sha256_hex(new_version)
    assert gets(nginx, 1) == [(200, SIZE)]  # If-Range failed: the whole new file
    seen = events.until(SIZE)
    assert seen[0] == 0 and seen == sorted(seen)  # rebased to the new start, then progress from there
    assert record(download).downloaded_bytes == SIZE


def test_a_shorter_new_version_than_the_part_starts_over(rt, nginx, media, location, original):
    download = claimed(rt, location)
    files = rt.files.of(download)
    leave_part(files, original, validator(location))  # every byte of the old version
    new_version = os.urandom(SIZE // 2)
    (media / "movie.mp4").write_bytes(new_version)
    finished, _ = fetch(rt, download)
    assert finished is True and files.final_path.read_bytes() == new_version
    stored = record(download)
    assert (stored.file_size_bytes, stored.downloaded_bytes) == (SIZE // 2, SIZE // 2)


# ---------------------------------------------------------------- sizes and the ledger


@pytest.mark.parametrize("recorded", [SIZE - 1000, SIZE + 50_000])
def test_a_size_other_than_recorded_resizes_the_download_and_the_ledger(rt, location, original, recorded):
    download = claimed(rt, location, size_bytes=recorded)
    assert record(download).file_size_bytes == recorded
    assert ledger.storage(rt.settings, "alice")["used_bytes"] == recorded
    finished, _ = fetch(rt, download)
    assert finished is True and rt.files.of(download).final_path.read_bytes() == original
    assert download.file_size_bytes == SIZE
    stored = record(download)
    assert (stored.file_size_bytes, stored.downloaded_bytes, stored.progress) == (SIZE, SIZE, 100)
    assert ledger.storage(rt.settings, "alice")["used_bytes"] == SIZE


def test_a_file_that_outgrew_the_quota_is_refused_and_nothing_changes(rt, configure, nginx, location):
    rt = configure(STORAGE_QUOTA_BYTES=SIZE - 1)
    download = claimed(rt, location, size_bytes=SIZE - 1)
    with pytest.raises(QuotaExceeded) as refused:
        fetch(rt, download)
    assert refused.value.details == {"needed_bytes": "1", "free_bytes": "0"}
    stored = record(download)
    assert (stored.file_size_bytes, stored.downloaded_bytes) == (SIZE - 1, 0)
    assert download.file_size_bytes == SIZE - 1
    assert ledger.storage(rt.settings, "alice")["used_bytes"] == SIZE - 1
    files = rt.files.of(download)
    assert files.stored_bytes() == 0 and files.part_version() is None  # refused before a byte was written


def test_no_room_on_disk_is_refused_before_asking_the_origin(rt, configure, nginx, location):
    download = claimed(rt, location)
    rt = configure(STORAGE_FREE_MARGIN_BYTES=10**18)  # more than any disk has free
    with pytest.raises(InsufficientStorage, match="storage is full"):
        fetch(rt, download)
    wait_until(lambda: logged(nginx, "HEAD"), timeout=10, message="set_source's HEAD in nginx's log")
    assert logged(nginx) == []  # no GET: the HEAD of set_source is the only request
    files = rt.files.of(download)
    assert files.stored_bytes() == 0 and files.part_version() is None


def test_a_file_larger_than_recorded_is_checked_against_the_free_space(rt, configure, nginx, media):
    huge = media / "huge.mp4"
    with open(huge, "wb") as file:
        file.truncate(2**40)  # 1 TiB, sparse: larger than the disk's free space, though it takes none
    rt = configure(STORAGE_QUOTA_BYTES=10**15)  # the quota would allow it
    download = claimed(rt, f"{nginx.url}/huge.mp4", size_bytes=1000)
    stopping = threading.Event()
    stopping.set()  # if the copier goes on, it stops at its first step instead of writing 1 TiB
    with pytest.raises(InsufficientStorage):
        fetch(rt, download, stopping)


# ---------------------------------------------------------------- verification


def test_a_checksum_mismatch_discards_the_part_and_rebases_the_record_to_zero(rt, location, original):
    download = claimed(rt, location, sha256="0" * 64)
    with pytest.raises(VerificationFailed) as failed:
        fetch(rt, download)
    assert str(failed.value) == (
        f"SHA-256 {sha256_hex(original)} does not match the catalogue's {'0' * 64}; the next attempt starts from zero"
    )
    files = rt.files.of(download)
    assert not files.part_path.exists() and not files.version_path.exists() and not files.final_path.exists()
    stored = record(download)
    assert (stored.downloaded_bytes, stored.progress, stored.sha256) == (0, 0, None)
    assert (download.downloaded_bytes, download.sha256) == (0, None)  # handle.finish was not called


class SizeKeepingHandle:
    """A recording stand-in for RunHandle, for one case a real handle cannot produce deterministically.

    It keeps the recorded size when asked to resize: a real handle does so only when its claim
    is lost between `resize` and a progress write that is not due yet, a matter of timing. That
    is the one way the copied bytes can differ from the size the handle holds at verification.
    """

    def __init__(self, files, file_size_bytes):
        self.files = files
        self.file_size_bytes = file_size_bytes
        self.downloaded_bytes = 0
        self.download_id = "stand-in"
        self.calls = []

    def report(self, nbytes):
        self.calls.append(("report", nbytes))
        return True

    def beat(self):
        return True

    def beat_through(self, step):
        return step()

    def still_owns(self):
        return True

    def rebase(self, nbytes):
        self.calls.append(("rebase", nbytes))
        self.downloaded_bytes = nbytes
        return True

    def resize(self, file_size_bytes):
        self.calls.append(("resize", file_size_bytes))
        return False

    def finish(self, sha256):
        self.calls.append(("finish", sha256))


def test_a_size_mismatch_discards_the_part_and_rebases_to_zero(tmp_path, location):
    settings = settings_from(load_settings({}))
    files = StoredFiles(tmp_path / "storage", free_margin_bytes=0).of(Download(id="d1", user_id="alice"))
    handle = SizeKeepingHandle(files, file_size_bytes=SIZE + 10)
    source = ContentSource(location=location, size_bytes=SIZE + 10, sha256=None)
    with pytest.raises(VerificationFailed) as failed:
        copier.fetch(handle, source, settings)
    assert str(failed.value) == (
        f"the file has {SIZE} bytes, the origin announced {SIZE + 10}; the next attempt starts from zero"
    )
    assert not files.part_path.exists() and not files.version_path.exists() and not files.final_path.exists()
    assert handle.calls[0] == ("resize", SIZE)
    assert handle.calls[-1] == ("rebase", 0)
    assert not [call for call in handle.calls if call[0] == "finish"]


# ---------------------------------------------------------------- stopping


def test_a_handle_whose_claim_was_lost_stops_and_leaves_the_part_for_resume(
    rt, configure, monkeypatch, nginx, location, original
):
    rt = configure(DOWNLOAD_PROGRESS_BYTES=1)  # a progress write, so a claim check, at every chunk
    download = claimed(rt, location)
    record_progress = run_writes.record_progress

    def paused_at_the_first_bytes(rt, run, nbytes):
        if nbytes and record(run).status == "downloading":
            user_actions.pause(rt, "alice", run.id)  # the run's claim is no longer the current state
        return record_progress(rt, run, nbytes)

    monkeypatch.setattr(run_writes, "record_progress", paused_at_the_first_bytes)
    finished, handle = fetch(rt, download)
    monkeypatch.setattr(run_writes, "record_progress", record_progress)
    assert finished is False
    files = handle.files
    kept = files.stored_bytes()
    assert 0 < kept < SIZE  # it stopped at the first chunk it could not record
    assert files.part_path.read_bytes() == original[:kept]
    assert files.part_version() == validator(location)
    assert not files.final_path.exists() and download.sha256 is None
    stored = record(download)
    assert (stored.status, stored.downloaded_bytes) == ("paused", 0)

    user_actions.resume(rt, "alice", download.id)
    again = run_writes.claim(rt, download.id)
    finished, _ = fetch(rt, again)
    assert finished is True
    assert files.final_path.read_bytes() == original and again.sha256 == sha256_hex(original)
    assert (206, SIZE - kept) in gets(nginx, 2)  # the second run asked only for the rest


def test_a_stopping_worker_stops_before_copying(rt, location):
    download = claimed(rt, location)
    stopping = threading.Event()
    stopping.set()
    finished, handle = fetch(rt, download, stopping)
    assert finished is False
    assert handle.files.stored_bytes() == 0 and not handle.files.final_path.exists()
    stored = record(download)
    assert (stored.status, stored.downloaded_bytes) == ("downloading", 0)


# ---------------------------------------------------------------- fencing: only the current claim touches the files


class Run(threading.Thread):
    """copier.fetch of `download` in a thread of its own, as a worker thread runs it: its answer or error."""

    def __init__(self, rt, download):
        super().__init__(daemon=True)
        self.rt, self.download = rt, download
        self.answer = self.error = None
        self.over = threading.Event()

    def run(self):
        try:
            self.answer = fetch(self.rt, self.download)[0]
        except BaseException as exc:  # handed to the test
            self.error = exc
        finally:
            self.over.set()

    def result(self):
        assert self.over.wait(60), "the run did not end"
        self.join()
        if self.error is not None:
            raise self.error
        return self.answer


def superseded(rt, download):
    """Pause and resume `download` and claim it again: the claim of its first run is no longer current."""
    user_actions.pause(rt, "alice", download.id)
    user_actions.resume(rt, "alice", download.id)
    current = run_writes.claim(rt, download.id)
    assert current is not None and current.claim_token != download.claim_token
    return current


def test_a_superseded_run_cannot_leave_the_current_run_a_file_of_zeros(rt, monkeypatch, location, original):
    """Issue 13's interleaving. Run A, whose claim is lost, holds a complete part at its final fsync.
    Run B is then either blocked on the part's lock or (unfenced) has read the part as whole and got
    the origin's 416; only then does A go on, and B only once A is over. Without a catalogue SHA-256
    only the size verifies the file: B must still store the origin's bytes, not a hole of zeros."""
    monkeypatch.setattr(stored_files, "PART_LOCK_WAIT_SECONDS", 60)
    run_a = claimed(rt, location)
    files = rt.files.of(run_a)
    leave_part(files, original, validator(location))  # every byte already on disk
    a_syncing, b_on_its_way = threading.Event(), threading.Event()
    fsync, open_range = os.fsync, origins.open_range
    runs_b = []

    def a_holds_its_fsync(fd):
        if not a_syncing.is_set():  # the first fsync is A's
            a_syncing.set()
            assert b_on_its_way.wait(60), "run B never came"
        fsync(fd)

    def sleep_waiting_for_the_lock(seconds):
        b_on_its_way.set()  # only B ever waits for the lock: A holds it
        time.sleep(seconds)

    def open_range_then_wait_for_a(*args, **kwargs):
        answer = open_range(*args, **kwargs)
        if threading.current_thread() in runs_b:
            b_on_its_way.set()
            assert a.over.wait(60), "run A never ended"
        return answer

    monkeypatch.setattr(stored_files.os, "fsync", a_holds_its_fsync)
    monkeypatch.setattr(
        stored_files, "time", SimpleNamespace(monotonic=time.monotonic, sleep=sleep_waiting_for_the_lock)
    )
    monkeypatch.setattr(origins, "open_range", open_range_then_wait_for_a)
    a = Run(rt, run_a)
    a.start()
    wait_until(lambda: a_syncing.is_set() or a.over.is_set(), timeout=60, message="run A at its fsync")
    assert a_syncing.is_set(), a.result()
    run_b = superseded(rt, run_a)
    b = Run(rt, run_b)
    runs_b.append(b)
    b.start()
    assert a.result() is False  # it lost its claim: it placed no file
    assert b.result() is True
    assert run_writes.complete(rt, run_a) is None
    assert run_writes.complete(rt, run_b) is not None
    assert files.final_path.read_bytes() == original
    stored = record(run_b)
    assert (stored.status, stored.sha256) == ("completed", sha256_hex(original))


def test_a_superseded_run_whose_rebase_is_refused_leaves_the_part_alone(rt, nginx, location, original):
    run_a = claimed(rt, location)
    files = rt.files.of(run_a)
    kept = 1_000_000
    # Bytes of a version the origin no longer has: it answers with the whole file, so A must rebase to 0.
    leave_part(files, original[:kept], '"an older version"')
    assert run_writes.record_progress(rt, run_a, kept)
    run_b = superseded(rt, run_a)  # the part is now the current run's
    assert fetch(rt, run_a)[0] is False
    assert files.part_path.read_bytes() == original[:kept]  # not cut back to 0
    assert files.part_version() == '"an older version"'
    stored = record(run_b)
    assert (stored.status, stored.downloaded_bytes, stored.claim_token) == ("downloading", kept, run_b.claim_token)
    assert fetch(rt, run_b)[0] is True  # the owner starts over itself
    assert files.final_path.read_bytes() == original


# ---------------------------------------------------------------- heartbeats through long steps

STALL_SECONDS = 2.0


@pytest.fixture
def stall_watched(rt, configure, monkeypatch):
    """A runtime whose reconciler deems a run dead after STALL_SECONDS silent, the run beating 20 times as often."""
    monkeypatch.setattr(handle, "HEARTBEAT_SECONDS", STALL_SECONDS / 20)
    return configure(STORAGE_FREE_MARGIN_BYTES=0, DOWNLOAD_STALL_SECONDS=STALL_SECONDS)


def sweeps_through(rt, seconds):
    """The reconciler's sweep, run every tenth of STALL_SECONDS for `seconds`: what each did."""
    done, end = [], time.monotonic() + seconds
    wait_until(
        lambda: done.append(recovery.sweep(rt)) or time.monotonic() >= end,
        timeout=seconds + 60,
        interval=STALL_SECONDS / 10,
        message="the sweeps",
    )
    return done


def assert_left_alone(sweeps):
    assert len(sweeps) > 1 and all(not (s["requeued"] or s["failed"]) for s in sweeps), sweeps


def test_a_slow_fsync_beats_and_the_reconciler_leaves_the_run_alone(stall_watched, monkeypatch, location, original):
    rt = stall_watched
    download = claimed(rt, location)
    syncing, synced = threading.Event(), threading.Event()
    fsync = os.fsync

    def slow_fsync(fd):
        syncing.set()
        assert synced.wait(60)
        fsync(fd)

    monkeypatch.setattr(stored_files.os, "fsync", slow_fsync)
    run = Run(rt, download)
    run.start()
    assert syncing.wait(60), "the run never reached its fsync"
    try:
        sweeps = sweeps_through(rt, 1.5 * STALL_SECONDS)  # longer than a silent run survives
    finally:
        synced.set()
    assert run.result() is True
    assert_left_alone(sweeps)
    assert run_writes.complete(rt, download) is not None
    assert rt.files.of(download).final_path.read_bytes() == original
    assert record(download).attempts == 1


def test_beats_write_at_most_every_heartbeat_even_for_a_whole_file(rt, monkeypatch, location):
    download = claimed(rt, location)
    assert run_writes.record_progress(rt, download, download.file_size_bytes)  # a report of them is always due
    writes = []
    record_progress = run_writes.record_progress
    monkeypatch.setattr(run_writes, "record_progress", lambda *args: writes.append(args) or record_progress(*args))
    monkeypatch.setattr(handle, "HEARTBEAT_SECONDS", 3600)
    run = RunHandle(rt, download, threading.Event())
    assert all(run.beat() for _ in range(100))  # a beat per hashed block of a whole part
    assert writes == []  # the handle was just made: no beat is due for an hour


class SlowVolumeSha256:
    """hashlib.sha256 whose every update takes a nap while `slow` is set: hashing a part on a slow volume."""

    slow = threading.Event()
    started = threading.Event()

    def __init__(self, data=b""):
        self._hash = hashlib.sha256(data)

    def update(self, data):
        if self.slow.is_set():
            self.started.set()
            time.sleep(STALL_SECONDS / 100)
        self._hash.update(data)

    def hexdigest(self):
        return self._hash.hexdigest()


def test_hashing_a_resumed_part_beats_and_the_reconciler_leaves_the_run_alone(
    stall_watched, monkeypatch, location, original
):
    rt = stall_watched
    download = claimed(rt, location)
    files = rt.files.of(download)
    leave_part(files, original[:-1], validator(location))  # all but one byte to hash first
    monkeypatch.setattr(stored_files, "HASH_READ_BYTES", 4096)  # 769 blocks: far longer than the sweeps
    monkeypatch.setattr(stored_files, "hashlib", SimpleNamespace(sha256=SlowVolumeSha256))
    SlowVolumeSha256.slow.set()
    SlowVolumeSha256.started.clear()
    run = Run(rt, download)
    run.start()
    try:
        assert SlowVolumeSha256.started.wait(60), "the run never hashed"
        sweeps = sweeps_through(rt, 1.5 * STALL_SECONDS)
    finally:
        SlowVolumeSha256.slow.clear()  # the rest of the part hashes at full speed
    assert run.result() is True
    assert_left_alone(sweeps)
    assert run_writes.complete(rt, download) is not None
    assert files.final_path.read_bytes() == original and download.sha256 == sha256_hex(original)
