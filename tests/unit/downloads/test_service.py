"""The download service's functions against real databases (SQLite and PostgreSQL)."""

import pytest

from downloads_app.downloads import ledger, lifecycle, run_writes, user_actions
from downloads_app.downloads.models import Download, StorageLedger
from downloads_app.downloads.refusals import (
    ContentNotFound,
    DownloadNotFound,
    InvalidTransition,
    QualityNotOffered,
    QuotaExceeded,
)

SIZE_720 = 1000 * 3333 * 125


@pytest.fixture
def rt(app_ctx, movie, redis_client):
    return app_ctx.extensions["runtime"]


def ledger_used(user_id):
    return StorageLedger.get(StorageLedger.user_id == user_id).used_bytes


def test_start_reserves_quota_and_queues_the_job(rt, redis_client):
    download, created = user_actions.start_download(rt, "alice", "movie", "720p")
    assert created
    assert download.status == lifecycle.PENDING
    assert download.file_size_bytes == SIZE_720
    assert ledger.storage(rt.settings, "alice")["used_bytes"] == SIZE_720
    assert redis_client.hlen("dramatiq:downloads.msgs") == 1
    assert len(download.id) == 32 and download.id != user_actions.start_download(rt, "alice", "movie", "480p")[0].id


def test_start_refuses_unknown_content_and_quality(rt):
    with pytest.raises(ContentNotFound):
        user_actions.start_download(rt, "alice", "nope", "720p")
    with pytest.raises(QualityNotOffered):
        user_actions.start_download(rt, "alice", "movie", "2160p")
    assert Download.select().count() == 0


def test_quota_is_enforced_and_released_exactly(rt, app_ctx, titles, configure):
    rt = configure(STORAGE_QUOTA_BYTES=2 * SIZE_720 + 5)
    one, two, three = titles(3)
    first, _ = user_actions.start_download(rt, "alice", one, "720p")
    user_actions.start_download(rt, "alice", two, "720p")
    with pytest.raises(QuotaExceeded) as refused:
        user_actions.start_download(rt, "alice", three, "720p")
    assert f"needs 416.6 MB ({SIZE_720:,} bytes) and 5 bytes are free" in refused.value.message
    assert Download.select().count() == 2
    user_actions.delete_download(rt, "alice", first.id)
    assert ledger.storage(rt.settings, "alice") == {
        "quota_bytes": 2 * SIZE_720 + 5,
        "used_bytes": SIZE_720,
        "free_bytes": SIZE_720 + 5,
    }
    assert user_actions.cleanup(rt, "alice") == (1, SIZE_720)
    assert ledger_used("alice") == 0


def test_users_cannot_see_or_touch_each_others_downloads(rt):
    download, _ = user_actions.start_download(rt, "alice", "movie", "480p")
    for action in (user_actions.delete_download, user_actions.pause, user_actions.cancel):
        with pytest.raises(DownloadNotFound):
            action(rt, "bob", download.id)
    with pytest.raises(DownloadNotFound):
        user_actions.get_download("bob", download.id)
    assert user_actions.cleanup(rt, "bob") == (0, 0)
    assert user_actions.get_download("alice", download.id).status == lifecycle.PENDING


def test_list_filters_by_status_and_pages_in_the_database(rt, titles):
    ids = [user_actions.start_download(rt, "alice", content_id, "480p")[0].id for content_id in titles(5)]
    user_actions.start_download(rt, "bob", "movie", "480p")
    user_actions.cancel(rt, "alice", ids[0])
    rows, pagination = user_actions.list_downloads("alice", status="pending", page=2, page_size=3)
    assert pagination == {"page": 2, "page_size": 3, "total": 4, "pages": 2}
    assert [row.id for row in rows] == [ids[1]]
    rows, pagination = user_actions.list_downloads("alice")
    assert pagination["total"] == 5 and [row.id for row in rows] == ids[::-1]


def test_worker_side_claim_progress_complete(rt):
    download, _ = user_actions.start_download(rt, "alice", "movie", "720p")
    claimed = run_writes.claim(rt, download.id)
    assert claimed.status == lifecycle.DOWNLOADING and claimed.attempts == 1 and claimed.started_at
    assert run_writes.claim(rt, download.id) is None  # a second delivery does not start a second run
    assert run_writes.record_progress(rt, claimed, SIZE_720 // 2)
    assert not run_writes.record_progress(rt, claimed, SIZE_720 // 4)  # progress never goes back
    assert user_actions.get_download("alice", download.id).progress == 50
    done = run_writes.complete(rt, claimed)
    assert done.status == lifecycle.COMPLETED and done.downloaded_bytes == SIZE_720 and done.completed_at
    assert ledger.storage(rt.settings, "alice")["used_bytes"] == SIZE_720


def test_a_stale_claim_cannot_write_after_pause_and_resume(rt):
    download, _ = user_actions.start_download(rt, "alice", "movie", "720p")
    old_run = run_writes.claim(rt, download.id)
    user_actions.pause(rt, "alice", download.id)
    user_actions.resume(rt, "alice", download.id)
    new_run = run_writes.claim(rt, download.id)
    assert not run_writes.record_progress(rt, old_run, 10)
    assert run_writes.complete(rt, old_run) is None
    assert run_writes.record_progress(rt, new_run, 10)


def test_deleted_download_stops_the_worker(rt):
    download, _ = user_actions.start_download(rt, "alice", "movie", "720p")
    run = run_writes.claim(rt, download.id)
    user_actions.delete_download(rt, "alice", download.id)
    assert not run_writes.record_progress(rt, run, 10)
    assert run_writes.complete(rt, run) is None
    assert ledger_used("alice") == 0


def test_failures_requeue_until_attempts_are_spent_then_fail_and_release(rt, app_ctx):
    download, _ = user_actions.start_download(rt, "alice", "movie", "720p")
    for attempt in range(1, 4):
        run = run_writes.claim(rt, download.id)
        assert run.attempts == attempt
        outcome = run_writes.record_failure(rt, run, "origin timed out")
        expected = lifecycle.FAILED if attempt == app_ctx.config["DOWNLOAD_MAX_ATTEMPTS"] else lifecycle.PENDING
        assert outcome.status == expected
    assert outcome.error == "Gave up after 3 attempts: origin timed out"
    assert ledger_used("alice") == 0
    retried = user_actions.retry(rt, "alice", download.id)
    assert (retried.status, retried.attempts, retried.error) == (lifecycle.PENDING, 0, None)
    assert ledger_used("alice") == SIZE_720


@pytest.mark.parametrize(
    "action, from_status",
    [("resume", "pending"), ("retry", "pending"), ("pause", "completed"), ("cancel", "completed")],
)
def test_actions_that_do_not_fit_the_state_are_refused(rt, action, from_status):
    download, _ = user_actions.start_download(rt, "alice", "movie", "480p")
    if from_status == "completed":
        run_writes.complete(rt, run_writes.claim(rt, download.id))
    with pytest.raises(InvalidTransition) as refused:
        getattr(user_actions, action)(rt, "alice", download.id)
    assert refused.value.details == {"status": from_status}


@pytest.mark.parametrize("ending", ["cancel", "fail"])
def test_retry_starts_from_zero_bytes_as_the_files_are_gone(rt, app_ctx, ending):
    download, _ = user_actions.start_download(rt, "alice", "movie", "720p")
    run = run_writes.claim(rt, download.id)
    run_writes.record_progress(rt, run, SIZE_720 // 2)
    if ending == "cancel":
        user_actions.cancel(rt, "alice", download.id)
    else:
        run_writes.record_failure(rt, run, "the origin is gone", permanent=True)
    retried = user_actions.retry(rt, "alice", download.id)
    assert (retried.status, retried.downloaded_bytes, retried.progress) == (lifecycle.PENDING, 0, 0)
    assert Download.get_by_id(download.id).downloaded_bytes == 0


def test_retry_rechecks_the_quota(rt, app_ctx, configure):
    rt = configure(STORAGE_QUOTA_BYTES=SIZE_720)
    first, _ = user_actions.start_download(rt, "alice", "movie", "720p")
    user_actions.cancel(rt, "alice", first.id)
    user_actions.start_download(rt, "alice", "movie", "720p")
    with pytest.raises(QuotaExceeded):
        user_actions.retry(rt, "alice", first.id)
    assert user_actions.get_download("alice", first.id).status == lifecycle.CANCELLED
    assert ledger_used("alice") == SIZE_720
