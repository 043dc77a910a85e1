"""The transfer actor on a real Redis broker with a real two-thread Dramatiq worker."""

import threading

import pytest
from dramatiq.middleware.time_limit import TimeLimit, TimeLimitExceeded

import actors
import actors.transfer_download
from downloads_app.downloads import user_actions
from downloads_app.downloads.models import Download, StorageLedger
from downloads_app.transfer import run as transfer_run
from downloads_app.transfer import simulation
from downloads_app.transfer.run import TransferFailed
from support import wait_until

TIME_LIMIT_ERROR = "TimeLimitExceeded: the run outlasted its time limit (DOWNLOAD_TIME_LIMIT_SECONDS)"


@pytest.fixture
def start(client, auth, movie):
    def start(quality="480p", content_id="movie"):
        response = client.post(
            "/api/downloads/start", json={"content_id": content_id, "quality": quality}, headers=auth()
        )
        return response.json["download"]["id"]

    return start


def record(app, download_id):
    with app.app_context():
        return Download.get_or_none(Download.id == download_id)


def watch(app, download_id, until, timeout=10.0):
    """Sample the record until `until(record)`; return every (status, progress, bytes) seen."""
    seen = []

    def sample():
        row = record(app, download_id)
        state = (row.status, row.progress, row.downloaded_bytes) if row else None
        if not seen or seen[-1] != state:
            seen.append(state)
        return row is not None and until(row)

    wait_until(sample, timeout=timeout, interval=0.005, message=f"download {download_id}")
    return seen


def test_a_download_goes_pending_downloading_completed_with_rising_progress(app, client, auth, worker, movie):
    started = client.post("/api/downloads/start", json={"content_id": "movie", "quality": "480p"}, headers=auth())
    assert started.json["download"]["status"] == "pending"  # the worker may claim it before the first sample
    download_id = started.json["download"]["id"]
    seen = watch(app, download_id, lambda row: row.status == "completed")
    statuses = [status for status, _, _ in seen]
    assert statuses[-1] == "completed" and "downloading" in statuses
    progresses = [progress for _, progress, _ in seen]
    assert progresses == sorted(progresses)
    assert any(0 < progress < 100 for progress in progresses)
    done = record(app, download_id)
    assert done.downloaded_bytes == done.file_size_bytes and done.progress == 100
    assert done.attempts == 1 and done.completed_at >= done.started_at and done.error is None


def test_two_threads_run_two_transfers_at_once(app, worker, start, titles, configure):
    configure(DOWNLOAD_SIMULATED_SECONDS=1.0)
    ids = [start(content_id=content_id) for content_id in titles(3)]

    def downloading():
        with app.app_context():
            return Download.select().where(Download.status == "downloading").count()

    assert wait_until(lambda: downloading() == 2, message="two transfers running")
    assert downloading() <= 2
    wait_until(lambda: all(record(app, i).status == "completed" for i in ids), message="all completed")


def test_pause_keeps_bytes_and_resume_continues_from_them(app, client, auth, worker, start, configure):
    configure(DOWNLOAD_SIMULATED_SECONDS=1.0)
    download_id = start()
    watch(app, download_id, lambda row: row.progress >= 20)
    assert client.post(f"/api/downloads/{download_id}/pause", headers=auth()).status_code == 200
    paused = record(app, download_id)
    assert paused.status == "paused" and 0 < paused.downloaded_bytes < paused.file_size_bytes
    client.post(f"/api/downloads/{download_id}/resume", headers=auth())
    seen = watch(app, download_id, lambda row: row.status == "completed")
    assert all(nbytes >= paused.downloaded_bytes for _, _, nbytes in seen)
    assert record(app, download_id).attempts == 2


def test_deleting_a_running_download_stops_the_worker_cleanly(app, client, auth, worker, start, configure):
    configure(DOWNLOAD_SIMULATED_SECONDS=0.5)
    download_id = start()
    watch(app, download_id, lambda row: row.status == "downloading")
    assert client.delete(f"/api/downloads/{download_id}", headers=auth()).status_code == 200
    other = start()
    watch(app, other, lambda row: row.status == "completed")
    assert record(app, download_id) is None
    with app.app_context():
        assert StorageLedger.get(StorageLedger.user_id == "alice").used_bytes == record(app, other).file_size_bytes


def test_a_transient_error_is_retried_and_completes(app, worker, start, monkeypatch):
    failures = []
    simulated = simulation.simulate

    def flaky(handle, seconds):
        if not failures:
            handle.report(handle.file_size_bytes // 2)
            failures.append(handle.download_id)
            raise ConnectionError("origin reset the connection")
        assert handle.downloaded_bytes == handle.file_size_bytes // 2  # resumes from the offset
        return simulated(handle, seconds)

    monkeypatch.setattr(simulation, "simulate", flaky)
    download_id = start()
    watch(app, download_id, lambda row: row.status == "completed")
    done = record(app, download_id)
    assert len(failures) == 1 and done.attempts == 2 and done.error is None
    assert done.last_error == "ConnectionError: origin reset the connection"


def test_a_download_that_keeps_failing_ends_failed_with_its_error(app, client, auth, worker, start, monkeypatch):
    def broken(handle, seconds):
        raise TimeoutError("origin did not answer")

    monkeypatch.setattr(simulation, "simulate", broken)
    download_id = start()
    watch(app, download_id, lambda row: row.status == "failed")
    failed = record(app, download_id)
    assert failed.attempts == 3
    assert failed.error == "Gave up after 3 attempts: TimeoutError: origin did not answer"
    assert client.get("/api/storage", headers=auth()).json["used_bytes"] == "0"


def test_fast_transfers_write_progress_at_most_every_interval(app, worker, start, configure):
    configure(DOWNLOAD_SIMULATED_SECONDS=0.3, DOWNLOAD_PROGRESS_INTERVAL_MS=10_000)
    download_id = start()
    seen = watch(app, download_id, lambda row: row.status == "completed")
    # ten steps in 0.3 s, one write allowed per 10 s: the claim, then only the last bytes
    assert {progress for _, progress, _ in seen} == {0, 100}


def test_an_idle_worker_looks_at_redis_at_least_every_idle_poll(app):
    consumer = app.extensions["broker"].consume("downloads", prefetch=1, timeout=10_000)
    try:
        assert consumer.timeout == app.config["WORKER_IDLE_POLL_MS"] == 100
    finally:
        consumer.close()


def test_a_run_stopping_with_the_worker_as_its_download_is_cancelled_leaves_no_files(app, start, monkeypatch):
    download_id = start()
    rt = app.extensions["runtime"]

    def cancelled_as_the_worker_stops(handle, seconds):
        user_actions.cancel(rt, "alice", handle.download_id)
        handle.files.part_path.parent.mkdir(parents=True, exist_ok=True)
        handle.files.part_path.write_bytes(b"written as the cancel removed the files")
        transfer_run.worker_stopping.set()
        return False

    monkeypatch.setattr(simulation, "simulate", cancelled_as_the_worker_stops)
    try:
        with app.app_context():
            transfer_run.run(rt, download_id)
            download = Download.get_by_id(download_id)
            assert download.status == "cancelled"
            assert not rt.files.of(download).part_path.exists()
    finally:
        transfer_run.worker_stopping.clear()


def halfway_then_out_of_time(handle, seconds):
    handle.report(handle.file_size_bytes // 2)
    raise TimeLimitExceeded()  # what Dramatiq's TimeLimit raises in the worker thread


@pytest.mark.parametrize("max_attempts, status", [(3, "pending"), (1, "failed")])
def test_a_time_limit_in_a_run_records_the_failed_attempt_at_once(
    app_ctx, configure, start, monkeypatch, max_attempts, status
):
    rt = configure(DOWNLOAD_MAX_ATTEMPTS=max_attempts)
    monkeypatch.setattr(simulation, "simulate", halfway_then_out_of_time)
    download_id = start()
    if status == "pending":
        with pytest.raises(TransferFailed) as failed:  # Dramatiq retries it with backoff
            transfer_run.run(rt, download_id)
        assert isinstance(failed.value.__cause__, TimeLimitExceeded)
    else:
        assert transfer_run.run(rt, download_id) is None  # nothing left to retry
    stored = record(app_ctx, download_id)
    assert (stored.status, stored.attempts, stored.claim_token) == (status, 1, None)
    assert stored.downloaded_bytes == stored.file_size_bytes // 2  # kept for the next attempt
    assert stored.last_error == TIME_LIMIT_ERROR
    if status == "failed":
        assert stored.error == f"Gave up after 1 attempts: {TIME_LIMIT_ERROR}"
        assert StorageLedger.get(StorageLedger.user_id == "alice").used_bytes == 0


@pytest.fixture
def time_limits():
    """Dramatiq's TimeLimit enforcing limits in this process, as `dramatiq actors` starts it at process boot."""
    [limits] = [m for m in actors.broker.middleware if isinstance(m, TimeLimit)]
    if not limits.manager.is_alive():
        limits.manager.start()  # a daemon thread; it stays for the rest of the test session
    return limits


def test_a_real_worker_s_time_limit_fails_the_attempts_without_waiting_for_the_stall_detector(
    app, worker, time_limits, start, monkeypatch
):
    released = threading.Event()

    def endless(handle, seconds):
        while not released.wait(0.01):  # a step that does not end: only the time limit stops it
            pass
        return False

    monkeypatch.setattr(simulation, "simulate", endless)
    monkeypatch.setitem(actors.transfer_download.transfer_download.options, "time_limit", 100)  # ms
    assert app.config["DOWNLOAD_STALL_SECONDS"] >= 30  # the stall detector cannot be what ends them
    download_id = start()
    try:
        # Each attempt ends within the TimeLimit's check interval (1 s) after its 0.1 s limit.
        watch(app, download_id, lambda row: row.status == "failed", timeout=30)
    finally:
        released.set()  # a run the limit missed ends, so the worker can stop
    failed = record(app, download_id)
    assert failed.attempts == 3 and failed.error == f"Gave up after 3 attempts: {TIME_LIMIT_ERROR}"


def test_a_message_taken_as_the_worker_stops_is_left_to_another_worker_without_an_attempt(app_ctx, start):
    rt = app_ctx.extensions["runtime"]
    download_id = start()
    rt.queue.client.delete(rt.queue.keys["ready"], f"{rt.queue.keys['ready']}.msgs")  # the start's message taken
    transfer_run.worker_stopping.set()
    try:
        transfer_run.run(rt, download_id)
    finally:
        transfer_run.worker_stopping.clear()
    stored = record(app_ctx, download_id)
    assert (stored.status, stored.attempts) == ("pending", 0)  # not claimed: no attempt spent
    delayed = rt.queue.client.hvals(rt.queue.keys["delayed"])
    assert len(delayed) == 1 and download_id.encode() in delayed[0]  # queued again, after a delay
