"""The reconciler: stalled downloads requeued or failed, orphans queued, safe when run concurrently."""

import threading
from datetime import timedelta

import pytest

from downloads_app.downloads import recovery, run_writes, user_actions
from downloads_app.downloads.models import Download, StorageLedger


@pytest.fixture
def ctx(app_ctx, movie, redis_client, configure):
    configure(DOWNLOAD_STALL_SECONDS=30, DOWNLOAD_RETRY_MAX_BACKOFF_MS=10_000)
    return app_ctx


def age(download_id, seconds):
    """Pretend nothing touched the download for `seconds`."""
    updated_at = Download.get_by_id(download_id).updated_at
    Download.update(updated_at=updated_at - timedelta(seconds=seconds)).where(Download.id == download_id).execute()


def queued_ids(redis_client):
    import dramatiq

    return sorted(dramatiq.Message.decode(raw).args[0] for raw in redis_client.hvals("dramatiq:downloads.msgs"))


def test_a_silent_downloading_run_goes_back_to_pending_and_is_queued(ctx, redis_client):
    download, _ = user_actions.start_download(ctx.extensions["runtime"], "alice", "movie", "480p")
    run = run_writes.claim(ctx.extensions["runtime"], download.id)
    run_writes.record_progress(ctx.extensions["runtime"], run, run.file_size_bytes // 2)
    redis_client.delete("dramatiq:downloads.msgs", "dramatiq:downloads")
    age(download.id, 29)
    assert recovery.sweep(ctx.extensions["runtime"]) == {"requeued": [], "failed": [], "orphans": []}
    age(download.id, 2)
    assert recovery.sweep(ctx.extensions["runtime"]) == {"requeued": [download.id], "failed": [], "orphans": []}
    recovered = Download.get_by_id(download.id)
    assert (recovered.status, recovered.claim_token) == ("pending", None)
    assert recovered.downloaded_bytes == run.file_size_bytes // 2  # resumes from here
    assert recovered.last_error == recovery.STALLED_ERROR
    assert queued_ids(redis_client) == [download.id]
    assert not run_writes.record_progress(
        ctx.extensions["runtime"], run, run.file_size_bytes
    )  # the dead run's claim is void


def test_a_download_that_keeps_killing_its_worker_fails_after_max_attempts(ctx):
    download, _ = user_actions.start_download(ctx.extensions["runtime"], "alice", "movie", "480p")
    for attempt in range(1, ctx.config["DOWNLOAD_MAX_ATTEMPTS"] + 1):
        assert run_writes.claim(ctx.extensions["runtime"], download.id).attempts == attempt
        age(download.id, 31)
        result = recovery.sweep(ctx.extensions["runtime"])
    assert result["failed"] == [download.id]
    failed = Download.get_by_id(download.id)
    assert failed.status == "failed"
    assert failed.error == f"Gave up after 3 attempts: {recovery.STALLED_ERROR}"
    assert StorageLedger.get_by_id("alice").used_bytes == 0


def test_pending_downloads_without_a_message_are_queued_after_the_longest_backoff(ctx, redis_client):
    download, _ = user_actions.start_download(ctx.extensions["runtime"], "alice", "movie", "480p")
    redis_client.flushdb()  # the message never made it, or Redis lost it
    age(download.id, 35)  # older than the stall time, but a retry backoff may still be running
    assert recovery.sweep(ctx.extensions["runtime"])["orphans"] == []
    age(download.id, 10)
    assert recovery.sweep(ctx.extensions["runtime"])["orphans"] == [download.id]
    assert queued_ids(redis_client) == [download.id]
    assert recovery.sweep(ctx.extensions["runtime"])["orphans"] == []  # touched: not queued again at once


def test_concurrent_sweeps_queue_each_download_once(ctx, app, redis_client, titles):
    ids = [
        user_actions.start_download(ctx.extensions["runtime"], "alice", content_id, "480p")[0].id
        for content_id in titles(6)
    ]
    for download_id in ids[:3]:
        run_writes.claim(ctx.extensions["runtime"], download_id)
    for download_id in ids:
        age(download_id, 60)
    redis_client.flushdb()
    results = []

    def sweep():
        with app.app_context():
            results.append(recovery.sweep(ctx.extensions["runtime"]))

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    swept = sorted(i for result in results for i in result["requeued"] + result["orphans"])
    assert swept == sorted(ids)
    assert queued_ids(redis_client) == sorted(ids)


def test_cli_reconcile_runs_one_pass(ctx, app):
    download, _ = user_actions.start_download(ctx.extensions["runtime"], "alice", "movie", "480p")
    run_writes.claim(ctx.extensions["runtime"], download.id)
    age(download.id, 31)
    result = app.test_cli_runner().invoke(args=["downloads", "reconcile"])
    assert result.exit_code == 0
    assert f"requeued: 1 ({download.id})" in result.output and "failed: 0" in result.output
