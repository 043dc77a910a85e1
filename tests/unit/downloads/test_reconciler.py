"""The reconciler: stalled downloads requeued or failed, orphans queued, safe when run concurrently."""

import threading
import time
from datetime import timedelta

import dramatiq
import pytest

import actors
from downloads_app.downloads import recovery, run_writes, user_actions
from downloads_app.downloads.models import Download, StorageLedger
from support import wait_until


@pytest.fixture
def ctx(app_ctx, movie, redis_client, configure):
    configure(DOWNLOAD_STALL_SECONDS=30, DOWNLOAD_RECONCILE_SECONDS=5, DOWNLOAD_RETRY_MAX_BACKOFF_MS=10_000)
    return app_ctx


def age(download_id, seconds):
    """Pretend nothing touched the download for `seconds`."""
    updated_at = Download.get_by_id(download_id).updated_at
    Download.update(updated_at=updated_at - timedelta(seconds=seconds)).where(Download.id == download_id).execute()


def queued_ids(redis_client):
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


def test_a_pending_download_without_a_message_is_queued_once_after_a_reconcile_period(ctx, redis_client):
    download, _ = user_actions.start_download(ctx.extensions["runtime"], "alice", "movie", "480p")
    redis_client.flushdb()  # the message never made it, or Redis lost it
    age(download.id, 4)  # the API may still be about to queue a download this young
    assert recovery.sweep(ctx.extensions["runtime"])["orphans"] == []
    age(download.id, 2)
    assert recovery.sweep(ctx.extensions["runtime"])["orphans"] == [download.id]
    assert queued_ids(redis_client) == [download.id]
    age(download.id, 3600)
    assert recovery.sweep(ctx.extensions["runtime"])["orphans"] == []  # its message waits: none added
    assert queued_ids(redis_client) == [download.id]


def test_a_pending_download_is_not_queued_again_while_its_message_waits_however_old(ctx, redis_client, titles):
    waiting, retrying = (
        user_actions.start_download(ctx.extensions["runtime"], "alice", content_id, "480p")[0].id
        for content_id in titles(2)
    )
    for message_id, raw in redis_client.hgetall("dramatiq:downloads.msgs").items():
        message = dramatiq.Message.decode(raw)
        if message.args[0] == retrying:  # a retry waiting out its backoff on the delay queue
            redis_client.lrem("dramatiq:downloads", 0, message_id)
            redis_client.hdel("dramatiq:downloads.msgs", message_id)
            actors.broker.enqueue(message, delay=60_000)
    for download_id in (waiting, retrying):
        age(download_id, 3600)
    for _ in range(3):
        assert recovery.sweep(ctx.extensions["runtime"])["orphans"] == []
    assert queued_ids(redis_client) == [waiting]
    assert redis_client.hlen("dramatiq:downloads.DQ.msgs") == 1


def hold(redis_client, consumer, last_heard_seconds_ago):
    """Let `consumer` fetch every queued message, its last call to Redis that long ago."""
    while message_id := redis_client.lpop("dramatiq:downloads"):
        redis_client.sadd(f"dramatiq:__acks__.{consumer}.downloads", message_id)
    redis_client.zadd("dramatiq:__heartbeats__", {consumer: (time.time() - last_heard_seconds_ago) * 1000})


def test_a_message_held_by_a_live_worker_is_live(ctx, redis_client):
    download, _ = user_actions.start_download(ctx.extensions["runtime"], "alice", "movie", "480p")
    hold(redis_client, "busy-worker", last_heard_seconds_ago=29)
    age(download.id, 3600)
    assert recovery.sweep(ctx.extensions["runtime"])["orphans"] == []
    assert redis_client.llen("dramatiq:downloads") == 0  # still held, not duplicated
    assert queued_ids(redis_client) == [download.id]


def test_a_dead_workers_held_messages_go_back_on_the_queue_at_the_next_pass(ctx, redis_client, titles):
    ids = [
        user_actions.start_download(ctx.extensions["runtime"], "alice", content_id, "480p")[0].id
        for content_id in titles(2)
    ]
    run = run_writes.claim(ctx.extensions["runtime"], ids[0])  # running when its worker died
    hold(redis_client, "dead-worker", last_heard_seconds_ago=31)  # DOWNLOAD_STALL_SECONDS is 30
    age(ids[0], 31)
    assert recovery.sweep(ctx.extensions["runtime"]) == {"requeued": [ids[0]], "failed": [], "orphans": []}
    assert redis_client.llen("dramatiq:downloads") == 2  # the two held messages, and no new one
    assert queued_ids(redis_client) == sorted(ids)
    assert not redis_client.exists("dramatiq:__acks__.dead-worker.downloads")
    assert not run_writes.record_progress(ctx.extensions["runtime"], run, run.file_size_bytes)


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


def test_a_busy_worker_stays_alive_to_the_broker_so_its_running_messages_stay_live(
    ctx, configure, worker, monkeypatch, titles, redis_client
):
    rt = configure(DOWNLOAD_SIMULATED_SECONDS=3, DOWNLOAD_STALL_SECONDS=30, DOWNLOAD_RECONCILE_SECONDS=5)
    # Its two threads busy, the worker fetches nothing from the queue; its delay-queue
    # consumer still calls Redis, which is its heartbeat.
    monkeypatch.setattr(rt.queue.broker, "heartbeat_timeout", 1000)
    ids = sorted(user_actions.start_download(rt, "alice", content_id, "480p")[0].id for content_id in titles(2))

    def both_well_under_way():
        downloads = Download.select().where(Download.id.in_(ids))
        return all(d.status == "downloading" and d.progress >= 70 for d in downloads)  # 2.1 s in

    wait_until(both_well_under_way, timeout=30, interval=0.05, message="both transfers 70 % done")
    assert sorted(rt.queue.live_download_ids()) == ids
    assert recovery.sweep(rt) == {"requeued": [], "failed": [], "orphans": []}
    assert redis_client.llen("dramatiq:downloads") == 0  # held by their worker, not put back as a dead one's
