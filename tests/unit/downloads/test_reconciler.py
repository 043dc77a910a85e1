"""The reconciler: stalled downloads requeued or failed, orphans queued, safe when run concurrently."""
import threading
from datetime import timedelta

import pytest

from downloads_app.downloads import reconciler, service
from downloads_app.downloads.models import Download, StorageLedger


@pytest.fixture
def ctx(app_ctx, movie, redis_client):
    app_ctx.config.update(DOWNLOAD_STALL_SECONDS=30, DOWNLOAD_RETRY_MAX_BACKOFF_MS=10_000)
    return app_ctx


def age(download_id, seconds):
    """Pretend nothing touched the download for `seconds`."""
    updated_at = Download.get_by_id(download_id).updated_at
    Download.update(updated_at=updated_at - timedelta(seconds=seconds)).where(Download.id == download_id).execute()


def queued_ids(redis_client):
    import dramatiq

    return sorted(
        dramatiq.Message.decode(raw).args[0] for raw in redis_client.hvals("dramatiq:downloads.msgs")
    )


def test_a_silent_downloading_run_goes_back_to_pending_and_is_queued(ctx, redis_client):
    download, _ = service.start_download("alice", "movie", "480p")
    run = service.claim(download.id)
    service.record_progress(run, run.file_size_bytes // 2)
    redis_client.delete("dramatiq:downloads.msgs", "dramatiq:downloads")
    age(download.id, 29)
    assert reconciler.sweep() == {"requeued": [], "failed": [], "orphans": []}
    age(download.id, 2)
    assert reconciler.sweep() == {"requeued": [download.id], "failed": [], "orphans": []}
    recovered = Download.get_by_id(download.id)
    assert (recovered.status, recovered.claim_token) == ("pending", None)
    assert recovered.downloaded_bytes == run.file_size_bytes // 2  # resumes from here
    assert recovered.last_error == service.STALLED_ERROR
    assert queued_ids(redis_client) == [download.id]
    assert not service.record_progress(run, run.file_size_bytes)  # the dead run's claim is void


def test_a_download_that_keeps_killing_its_worker_fails_after_max_attempts(ctx):
    download, _ = service.start_download("alice", "movie", "480p")
    for attempt in range(1, ctx.config["DOWNLOAD_MAX_ATTEMPTS"] + 1):
        assert service.claim(download.id).attempts == attempt
        age(download.id, 31)
        result = reconciler.sweep()
    assert result["failed"] == [download.id]
    failed = Download.get_by_id(download.id)
    assert failed.status == "failed"
    assert failed.error == f"Gave up after 3 attempts: {service.STALLED_ERROR}"
    assert StorageLedger.get_by_id("alice").used_bytes == 0


def test_pending_downloads_without_a_message_are_queued_after_the_longest_backoff(ctx, redis_client):
    download, _ = service.start_download("alice", "movie", "480p")
    redis_client.flushdb()  # the message never made it, or Redis lost it
    age(download.id, 35)  # older than the stall time, but a retry backoff may still be running
    assert reconciler.sweep()["orphans"] == []
    age(download.id, 10)
    assert reconciler.sweep()["orphans"] == [download.id]
    assert queued_ids(redis_client) == [download.id]
    assert reconciler.sweep()["orphans"] == []  # touched: not queued again at once


def test_concurrent_sweeps_queue_each_download_once(ctx, app, redis_client, titles):
    ids = [service.start_download("alice", content_id, "480p")[0].id for content_id in titles(6)]
    for download_id in ids[:3]:
        service.claim(download_id)
    for download_id in ids:
        age(download_id, 60)
    redis_client.flushdb()
    results = []

    def sweep():
        with app.app_context():
            results.append(reconciler.sweep())

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    swept = sorted(i for result in results for i in result["requeued"] + result["orphans"])
    assert swept == sorted(ids)
    assert queued_ids(redis_client) == sorted(ids)


def test_cli_reconcile_runs_one_pass(ctx, app):
    download, _ = service.start_download("alice", "movie", "480p")
    service.claim(download.id)
    age(download.id, 31)
    result = app.test_cli_runner().invoke(args=["downloads", "reconcile"])
    assert result.exit_code == 0
    assert f"requeued: 1 ({download.id})" in result.output and "failed: 0" in result.output
