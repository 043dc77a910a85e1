"""The download service's functions against real databases (SQLite and PostgreSQL)."""
import pytest

from downloads_app.downloads import ledger, lifecycle, service
from downloads_app.downloads.refusals import (
    ContentNotFound,
    DownloadNotFound,
    InvalidTransition,
    QualityNotOffered,
    QuotaExceeded,
)
from downloads_app.downloads.models import Download, StorageLedger

SIZE_720 = 1000 * 3333 * 125


@pytest.fixture
def svc(app_ctx, movie, redis_client):
    return service


def ledger_used(user_id):
    return StorageLedger.get(StorageLedger.user_id == user_id).used_bytes


def test_start_reserves_quota_and_queues_the_job(svc, redis_client):
    download, created = svc.start_download("alice", "movie", "720p")
    assert created
    assert download.status == lifecycle.PENDING
    assert download.file_size_bytes == SIZE_720
    assert ledger.storage("alice")["used_bytes"] == SIZE_720
    assert redis_client.hlen("dramatiq:downloads.msgs") == 1
    assert len(download.id) == 32 and download.id != svc.start_download("alice", "movie", "480p")[0].id


def test_start_refuses_unknown_content_and_quality(svc):
    with pytest.raises(ContentNotFound):
        svc.start_download("alice", "nope", "720p")
    with pytest.raises(QualityNotOffered):
        svc.start_download("alice", "movie", "2160p")
    assert Download.select().count() == 0


def test_quota_is_enforced_and_released_exactly(svc, app_ctx, titles):
    app_ctx.config["STORAGE_QUOTA_BYTES"] = 2 * SIZE_720 + 5
    one, two, three = titles(3)
    first, _ = svc.start_download("alice", one, "720p")
    svc.start_download("alice", two, "720p")
    with pytest.raises(QuotaExceeded) as refused:
        svc.start_download("alice", three, "720p")
    assert f"needs {SIZE_720} bytes and 5 are free" in refused.value.message
    assert Download.select().count() == 2
    svc.delete_download("alice", first.id)
    assert ledger.storage("alice") == {"quota_bytes": 2 * SIZE_720 + 5, "used_bytes": SIZE_720, "free_bytes": SIZE_720 + 5}
    assert svc.cleanup("alice") == (1, SIZE_720)
    assert ledger_used("alice") == 0


def test_users_cannot_see_or_touch_each_others_downloads(svc):
    download, _ = svc.start_download("alice", "movie", "480p")
    for action in (svc.get_download, svc.delete_download, svc.pause, svc.cancel):
        with pytest.raises(DownloadNotFound):
            action("bob", download.id)
    assert svc.cleanup("bob") == (0, 0)
    assert svc.get_download("alice", download.id).status == lifecycle.PENDING


def test_list_filters_by_status_and_pages_in_the_database(svc, titles):
    ids = [svc.start_download("alice", content_id, "480p")[0].id for content_id in titles(5)]
    svc.start_download("bob", "movie", "480p")
    svc.cancel("alice", ids[0])
    rows, pagination = svc.list_downloads("alice", status="pending", page=2, page_size=3)
    assert pagination == {"page": 2, "page_size": 3, "total": 4, "pages": 2}
    assert [row.id for row in rows] == [ids[1]]
    rows, pagination = svc.list_downloads("alice")
    assert pagination["total"] == 5 and [row.id for row in rows] == ids[::-1]


def test_worker_side_claim_progress_complete(svc):
    download, _ = svc.start_download("alice", "movie", "720p")
    claimed = svc.claim(download.id)
    assert claimed.status == lifecycle.DOWNLOADING and claimed.attempts == 1 and claimed.started_at
    assert svc.claim(download.id) is None  # a second delivery does not start a second run
    assert svc.record_progress(claimed, SIZE_720 // 2)
    assert not svc.record_progress(claimed, SIZE_720 // 4)  # progress never goes back
    assert svc.get_download("alice", download.id).progress == 50
    done = svc.complete(claimed)
    assert done.status == lifecycle.COMPLETED and done.downloaded_bytes == SIZE_720 and done.completed_at
    assert ledger.storage("alice")["used_bytes"] == SIZE_720


def test_a_stale_claim_cannot_write_after_pause_and_resume(svc):
    download, _ = svc.start_download("alice", "movie", "720p")
    old_run = svc.claim(download.id)
    svc.pause("alice", download.id)
    svc.resume("alice", download.id)
    new_run = svc.claim(download.id)
    assert not svc.record_progress(old_run, 10)
    assert svc.complete(old_run) is None
    assert svc.record_progress(new_run, 10)


def test_deleted_download_stops_the_worker(svc):
    download, _ = svc.start_download("alice", "movie", "720p")
    run = svc.claim(download.id)
    svc.delete_download("alice", download.id)
    assert not svc.record_progress(run, 10)
    assert svc.complete(run) is None
    assert ledger_used("alice") == 0


def test_failures_requeue_until_attempts_are_spent_then_fail_and_release(svc, app_ctx):
    download, _ = svc.start_download("alice", "movie", "720p")
    for attempt in range(1, 4):
        run = svc.claim(download.id)
        assert run.attempts == attempt
        outcome = svc.record_failure(run, "origin timed out")
        expected = lifecycle.FAILED if attempt == app_ctx.config["DOWNLOAD_MAX_ATTEMPTS"] else lifecycle.PENDING
        assert outcome.status == expected
    assert outcome.error == "Gave up after 3 attempts: origin timed out"
    assert ledger_used("alice") == 0
    retried = svc.retry("alice", download.id)
    assert (retried.status, retried.attempts, retried.error) == (lifecycle.PENDING, 0, None)
    assert ledger_used("alice") == SIZE_720


@pytest.mark.parametrize(
    "action, from_status",
    [("resume", "pending"), ("retry", "pending"), ("pause", "completed"), ("cancel", "completed")],
)
def test_actions_that_do_not_fit_the_state_are_refused(svc, action, from_status):
    download, _ = svc.start_download("alice", "movie", "480p")
    if from_status == "completed":
        svc.complete(svc.claim(download.id))
    with pytest.raises(InvalidTransition) as refused:
        getattr(svc, action)("alice", download.id)
    assert refused.value.details == {"status": from_status}


def test_retry_rechecks_the_quota(svc, app_ctx):
    app_ctx.config["STORAGE_QUOTA_BYTES"] = SIZE_720
    first, _ = svc.start_download("alice", "movie", "720p")
    svc.cancel("alice", first.id)
    svc.start_download("alice", "movie", "720p")
    with pytest.raises(QuotaExceeded):
        svc.retry("alice", first.id)
    assert svc.get_download("alice", first.id).status == lifecycle.CANCELLED
    assert ledger_used("alice") == SIZE_720
