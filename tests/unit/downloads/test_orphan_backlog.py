"""A backlog of pending downloads older than any threshold: a real worker drains it, the queue never grows."""

import logging
from collections import Counter
from datetime import timedelta

import pytest

from downloads_app.downloads import lifecycle
from downloads_app.downloads.models import Download, StorageLedger, new_id, utcnow
from downloads_app.infra.database import database
from support import wait_until

BACKLOG = 1000
USERS = 20
# The worker's two threads may each hold a message whose download has just completed.
SLACK = 2


@pytest.fixture
def backlog(app_ctx, movie, redis_client, configure):
    """BACKLOG pending downloads, untouched for an hour, each with its message queued; no worker yet."""
    rt = configure(
        DOWNLOAD_SIMULATED_SECONDS=0,
        DOWNLOAD_STALL_SECONDS=1,
        DOWNLOAD_RECONCILE_SECONDS=0.1,
        DOWNLOAD_RETRY_MAX_BACKOFF_MS=200,
    )
    long_ago = utcnow() - timedelta(hours=1)
    rows = [
        {
            "id": new_id(),
            "user_id": f"user-{n % USERS}",
            "content": "movie",
            "quality": "480p",
            "status": lifecycle.PENDING,
            "file_size_bytes": 1000,
            "created_at": long_ago,
            "updated_at": long_ago,
        }
        for n in range(BACKLOG)
    ]
    with database.atomic():
        StorageLedger.insert_many(
            [{"user_id": f"user-{n}", "used_bytes": 1000 * BACKLOG // USERS} for n in range(USERS)]
        ).execute()
        for start in range(0, BACKLOG, 200):
            Download.insert_many(rows[start : start + 200]).execute()
    for row in rows:
        rt.queue.enqueue_transfer(row["id"])
    return [row["id"] for row in rows]


def messages(redis_client):
    """Every message the broker holds for the queue: queued, delayed, or fetched and not yet acked."""
    with redis_client.pipeline(transaction=False) as pipe:
        pipe.hlen("dramatiq:downloads.msgs")
        pipe.hlen("dramatiq:downloads.DQ.msgs")
        return sum(pipe.execute())


def unfinished():
    return Download.select().where(Download.status.in_([lifecycle.PENDING, lifecycle.DOWNLOADING])).count()


@pytest.fixture
def service_log(caplog):
    """The service's log records from before the worker starts: its fixture starts it taking messages."""
    caplog.set_level(logging.INFO, logger="downloads_app")
    return caplog


def test_a_worker_drains_an_old_backlog_with_one_message_per_download(service_log, backlog, worker, redis_client):
    samples = []

    def drained():
        left = unfinished()  # first: it only falls while the messages are counted
        samples.append((messages(redis_client), left))
        return left == 0 and messages(redis_client) == 0

    # The reconciler sweeps every 0.1 s meanwhile, each download far older than any threshold.
    wait_until(drained, timeout=300, interval=0.05, message="the backlog drained")

    excess = max(held - left for held, left in samples)
    most = max(held for held, _ in samples)
    ratio = max(held / left for held, left in samples if left)
    print(
        f"\n{BACKLOG} pending: {len(samples)} samples, at most {most} messages, {excess:+d} over the unfinished, "
        f"at most {ratio:.2f} per unfinished download"
    )
    assert excess <= SLACK, f"the broker held {excess} more messages than unfinished downloads"
    records = [*service_log.get_records("setup"), *service_log.get_records("call")]
    completed = Counter(
        record.args[0] for record in records if record.msg.startswith("[Download Worker] Job completed")
    )
    assert sorted(completed) == sorted(backlog) and set(completed.values()) == {1}
    assert {(d.status, d.attempts) for d in Download.select()} == {(lifecycle.COMPLETED, 1)}
