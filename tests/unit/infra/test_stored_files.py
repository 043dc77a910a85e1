"""The files of downloads under STORAGE_DIR: paths, the growing `.part` and its lock, finishing, free space."""

import hashlib
import os
import re
import shutil
import time
from types import SimpleNamespace

import pytest

from downloads_app.infra import stored_files
from downloads_app.infra.stored_files import InsufficientStorage, PartFileBusy, StoredFiles, human_bytes


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def download(user_id="alice", download_id="0123456789abcdef0123456789abcdef"):
    """What StoredFiles.of needs of a download: its id and user id."""
    return SimpleNamespace(id=download_id, user_id=user_id)


@pytest.fixture
def storage(tmp_path):
    return StoredFiles(tmp_path / "storage", free_margin_bytes=0)


def opened(files, offset, version):
    """The `.part`, locked and cut back to `offset` for origin version `version`, as a run resumes it."""
    part = files.open_part()
    assert part.start_at(offset, version)
    return part


def write_part(files, data, version="v1"):
    """A `.part` holding `data` of origin version `version`, as an earlier run leaves it."""
    part = opened(files, 0, version)
    part.write(data)
    part.close()


def finish(files):
    """The `.part` synced and renamed to its final name under its lock, as a run ends."""
    part = files.open_part()
    try:
        part.sync()
        part.publish()
    finally:
        part.close()


# ---------------------------------------------------------------- human_bytes


@pytest.mark.parametrize(
    "count, text",
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (2, "2 bytes"),
        (999, "999 bytes"),
        (1000, "1.0 kB (1,000 bytes)"),
        (1550, "1.6 kB (1,550 bytes)"),
        (416_625_000, "416.6 MB (416,625,000 bytes)"),
        (70_002_000_000, "70.0 GB (70,002,000,000 bytes)"),
        (3 * 10**12, "3.0 TB (3,000,000,000,000 bytes)"),
        (10**18, "1000.0 PB (1,000,000,000,000,000,000 bytes)"),  # PB is the largest unit
    ],
)
def test_human_bytes(count, text):
    assert human_bytes(count) == text


@pytest.mark.parametrize(
    "count, text",
    [
        (999_999, "1.0 MB (999,999 bytes)"),
        (999_960_000, "1.0 GB (999,960,000 bytes)"),
    ],
)
def test_human_bytes_rounds_up_into_the_next_unit(count, text):
    assert human_bytes(count) == text


# ---------------------------------------------------------------- paths


def test_files_live_in_a_hashed_folder_per_user(storage):
    files = storage.of(download("alice", "d1"))
    user_dir = storage.directory / hashlib.sha256(b"alice").hexdigest()[:32]
    assert files.final_path == user_dir / "d1"
    assert files.part_path == user_dir / "d1.part"
    assert files.version_path == user_dir / "d1.version"
    assert storage.of(download("alice", "d2")).final_path.parent == user_dir  # one folder per user
    assert storage.of(download("bob", "d1")).final_path.parent != user_dir


@pytest.mark.parametrize("user_id", ["../../etc", "/etc/passwd", "..", "a/../../b", "évé\x00"])
def test_a_user_id_cannot_lead_out_of_the_storage_directory(storage, user_id):
    files = storage.of(download(user_id, "d1"))
    root = storage.directory.resolve()
    for path in (files.final_path, files.part_path, files.version_path):
        assert path.resolve().parent.parent == root
        assert re.fullmatch(r"[0-9a-f]{32}", path.parent.name)
    write_part(files, b"data")
    finish(files)
    assert [p for p in root.rglob("*") if p.is_file()] == [files.final_path.resolve()]


def test_nothing_stored_yet(storage):
    files = storage.of(download())
    assert files.stored_bytes() == 0 and files.part_version() is None
    files.discard_part()  # nothing to remove: no error
    files.remove()
    assert not storage.directory.exists()  # asking made nothing


# ---------------------------------------------------------------- the .part


def test_a_new_part_records_its_version_and_hashes_what_is_written(storage):
    files = storage.of(download())
    part = opened(files, 0, '"etag-1"')
    try:
        assert files.part_version() == '"etag-1"'  # written before any byte
        chunks = [b"abc", b"", os.urandom(5000)]
        for chunk in chunks:
            part.write(chunk)
    finally:
        part.close()
    data = files.part_path.read_bytes()
    assert data == b"".join(chunks)
    assert part.size == files.stored_bytes() == 5003
    assert part.sha256.hexdigest() == sha256(data)


def test_a_part_without_a_version_has_none(storage):
    files = storage.of(download())
    write_part(files, b"x" * 10, version=None)
    assert files.part_version() is None and files.stored_bytes() == 10


@pytest.mark.parametrize("kept", [0, 1, 7, 64, 99, 100])
def test_open_part_appends_from_the_offset_and_hashes_the_kept_bytes_too(storage, monkeypatch, kept):
    monkeypatch.setattr(stored_files, "HASH_READ_BYTES", 7)  # the kept bytes are hashed in several blocks
    files = storage.of(download())
    earlier = os.urandom(100)
    write_part(files, earlier, version="v1")
    new = os.urandom(321)
    part = opened(files, kept, "v2")
    try:
        assert part.size == kept
        part.write(new)
    finally:
        part.close()
    expected = earlier[:kept] + new  # a longer part is cut back to the offset
    assert files.part_path.read_bytes() == expected
    assert part.size == files.stored_bytes() == len(expected)
    assert part.sha256.hexdigest() == sha256(expected)
    assert files.part_version() == "v2"


def test_a_part_larger_than_a_hash_block_is_hashed_whole(storage):
    files = storage.of(download())
    earlier = os.urandom(2 * stored_files.HASH_READ_BYTES + 12345)
    write_part(files, earlier)
    part = opened(files, len(earlier), "v1")
    part.write(b"tail")
    part.close()
    assert part.sha256.hexdigest() == sha256(earlier + b"tail")


def test_a_second_open_part_waits_for_the_lock_then_gives_up(storage, monkeypatch):
    monkeypatch.setattr(stored_files, "PART_LOCK_WAIT_SECONDS", 0.3)
    files = storage.of(download())
    first = opened(files, 0, "v1")
    try:
        first.write(b"first run's bytes")
        began = time.monotonic()
        with pytest.raises(PartFileBusy, match=f"another run still writes {files.part_path.name}"):
            opened(files, 0, "v2")
        assert time.monotonic() - began >= 0.3  # it waited for the first run to let go
        # The refused run changed nothing: not the bytes, not the version.
        assert files.part_path.read_bytes() == b"first run's bytes"
        assert files.part_version() == "v1"
        first.write(b"!")
    finally:
        first.close()
    assert files.part_path.read_bytes() == b"first run's bytes!"
    again = opened(files, 5, "v3")  # once the first run let go, the lock is free
    again.close()
    assert files.part_path.read_bytes() == b"first" and files.part_version() == "v3"


def test_a_second_open_part_gets_the_lock_when_the_first_run_lets_go_within_the_wait(storage, monkeypatch):
    monkeypatch.setattr(stored_files, "PART_LOCK_WAIT_SECONDS", 30)
    files = storage.of(download())
    first = opened(files, 0, "v1")
    first.write(b"0123456789")
    naps = []

    def sleep_then_let_go(seconds):
        # The earlier run stops while the second waits: release its lock at the second's first nap
        # (deterministic, no timing), then nap for real.
        naps.append(seconds)
        if not first.file.closed:
            first.close()
        time.sleep(seconds)

    monkeypatch.setattr(stored_files, "time", SimpleNamespace(monotonic=time.monotonic, sleep=sleep_then_let_go))
    second = opened(files, 4, "v1")
    try:
        second.write(b"xy")
    finally:
        second.close()
    assert len(naps) == 1  # it found the lock taken once, waited, then had it
    assert files.part_path.read_bytes() == b"0123xy"
    assert second.sha256.hexdigest() == sha256(b"0123xy")


def test_the_size_of_a_part_is_read_under_its_lock(storage, monkeypatch):
    monkeypatch.setattr(stored_files, "PART_LOCK_WAIT_SECONDS", 30)
    files = storage.of(download())
    first = opened(files, 0, "v1")
    first.write(b"0123")

    def sleep_then_grow(seconds):
        # The first run writes more while the second waits for the lock, then lets go.
        if not first.file.closed:
            first.write(b"4567")
            first.close()
        time.sleep(seconds)

    monkeypatch.setattr(stored_files, "time", SimpleNamespace(monotonic=time.monotonic, sleep=sleep_then_grow))
    second = files.open_part()
    second.close()
    assert second.size == 8  # what was there once it held the lock, not before


@pytest.mark.parametrize("first_run_ends", ["publish", "discard"])
def test_a_run_that_waited_while_the_part_went_away_locks_a_new_part(storage, monkeypatch, first_run_ends):
    monkeypatch.setattr(stored_files, "PART_LOCK_WAIT_SECONDS", 30)
    files = storage.of(download())
    first = opened(files, 0, "v1")
    first.write(b"the finished file")

    def sleep_then_end_the_first_run(seconds):
        # The first run renames (or discards) the part it holds while the second waits for it.
        if not first.file.closed:
            if first_run_ends == "publish":
                first.sync()
                first.publish()
            else:
                first.discard()
            first.close()
        time.sleep(seconds)

    monkeypatch.setattr(
        stored_files, "time", SimpleNamespace(monotonic=time.monotonic, sleep=sleep_then_end_the_first_run)
    )
    second = files.open_part()
    try:
        assert second.size == 0  # a new part: not the file it waited on
        assert second.start_at(0, "v2")
        second.write(b"x")
    finally:
        second.close()
    assert files.part_path.read_bytes() == b"x" and files.part_version() == "v2"
    if first_run_ends == "publish":
        assert files.final_path.read_bytes() == b"the finished file"  # untouched by the second run
    else:
        assert not files.final_path.exists()


def test_start_at_never_makes_a_part_longer(storage):
    files = storage.of(download())
    write_part(files, b"01234", version="v1")
    part = files.open_part()
    try:
        with pytest.raises(ValueError, match=r"at byte 6: it has 5"):
            part.start_at(6, "v2")  # a truncate would fill the gap with zeros
    finally:
        part.close()
    assert files.part_path.read_bytes() == b"01234" and files.part_version() == "v1"


def test_start_at_asks_to_keep_going_between_hash_blocks_and_stops_when_told(storage, monkeypatch):
    monkeypatch.setattr(stored_files, "HASH_READ_BYTES", 10)
    files = storage.of(download())
    data = os.urandom(100)
    write_part(files, data)
    asked = []

    def keep_going(limit):
        asked.append(len(asked))
        return len(asked) <= limit

    part = files.open_part()
    try:
        assert part.start_at(100, "v1", lambda: keep_going(limit=100)) is True
        assert len(asked) == 10  # once before each block of the kept bytes
        assert part.sha256.hexdigest() == sha256(data)
        asked.clear()
        assert part.start_at(100, "v1", lambda: keep_going(limit=3)) is False  # the fourth answer: stop
        assert len(asked) == 4
    finally:
        part.close()
    assert files.part_path.read_bytes() == data  # stopping keeps the bytes


# ---------------------------------------------------------------- finish, discard, remove


def test_finish_renames_the_part_and_forgets_its_version(storage):
    files = storage.of(download())
    data = os.urandom(4096)
    write_part(files, data)
    inode = files.part_path.stat().st_ino
    finish(files)
    assert files.final_path.read_bytes() == data
    assert files.final_path.stat().st_ino == inode  # renamed in place, not copied
    assert not files.part_path.exists() and not files.version_path.exists()
    assert files.stored_bytes() == 0 and files.part_version() is None


def test_finish_replaces_an_earlier_final_file(storage):
    files = storage.of(download())
    write_part(files, b"old")
    finish(files)
    write_part(files, b"new and longer")
    finish(files)
    assert files.final_path.read_bytes() == b"new and longer"


def test_discard_part_keeps_the_final_file_and_remove_deletes_everything(storage):
    files = storage.of(download())
    write_part(files, b"finished")
    finish(files)
    write_part(files, b"next")
    files.discard_part()
    assert not files.part_path.exists() and not files.version_path.exists()
    assert files.final_path.read_bytes() == b"finished"
    write_part(files, b"again")
    files.remove()
    assert not files.final_path.exists() and not files.part_path.exists() and not files.version_path.exists()
    files.remove()  # twice: nothing left, no error


def test_the_files_of_one_download_are_not_touched_by_another(storage):
    mine, other = storage.of(download("alice", "a")), storage.of(download("alice", "b"))
    write_part(mine, b"mine")
    write_part(other, b"other")
    other.remove()
    assert mine.part_path.read_bytes() == b"mine" and mine.part_version() == "v1"


# ---------------------------------------------------------------- free space


def test_check_free_space_passes_when_the_space_and_margin_fit(tmp_path):
    storage = StoredFiles(tmp_path / "new" / "storage", free_margin_bytes=1000)
    storage.check_free_space(1)
    assert storage.directory.is_dir()  # made on the way
    storage.of(download()).check_free_space(1000)


def test_check_free_space_refuses_when_the_margin_exceeds_the_free_space(tmp_path):
    storage = StoredFiles(tmp_path, free_margin_bytes=10**18)  # more than any disk has free
    with pytest.raises(InsufficientStorage) as refused:
        storage.check_free_space(416_625_000)
    message = str(refused.value)
    assert message.startswith(
        "The service's storage is full: 416.6 MB (416,625,000 bytes) are needed plus a margin of "
        "1000.0 PB (1,000,000,000,000,000,000 bytes), and "
    ), message
    free = re.search(r"and (.+) are free\. Try again later\.$", message)[1]
    human = re.fullmatch(r"\d+\.\d (?:kB|MB|GB|TB|PB) \(([\d,]+) bytes\)", free)
    assert human, free
    reported = int(human[1].replace(",", ""))
    assert abs(reported - shutil.disk_usage(tmp_path).free) < 5 * 10**9  # the disk's free space, give or take
    assert refused.value.reason == "insufficient_storage"


def test_a_download_larger_than_the_free_space_is_refused_without_a_margin(tmp_path):
    files = StoredFiles(tmp_path, free_margin_bytes=0).of(download())
    with pytest.raises(
        InsufficientStorage,
        match=r"1000\.0 PB \(1,000,000,000,000,000,000 bytes\) are needed "
        r"plus a margin of 0 bytes",
    ):
        files.check_free_space(10**18)
