"""The transfer queue's view of live messages: queued, delayed, held by live workers, and dead workers' put back."""

import time

import dramatiq
import pytest
import redis

import actors
from downloads_app.infra.broker import QueueUnavailable, TransferQueue

DELAY_QUEUE = "dramatiq:downloads.DQ"


@pytest.fixture
def queue(redis_client):
    return TransferQueue(actors.broker, "downloads")


def hold(redis_client, key, consumer, last_heard_seconds_ago):
    """Let `consumer` fetch every message of list `key`, its last call to Redis that long ago."""
    while message_id := redis_client.lpop(key):
        redis_client.sadd(f"dramatiq:__acks__.{consumer}.{key.removeprefix('dramatiq:')}", message_id)
    redis_client.zadd("dramatiq:__heartbeats__", {consumer: (time.time() - last_heard_seconds_ago) * 1000})


def delay(queue, download_id):
    """A retry of `download_id` waiting out its backoff on the delay queue (call it first: it empties the queue)."""
    queue.enqueue_transfer(download_id)
    (raw,) = queue.client.hvals("dramatiq:downloads.msgs")
    queue.client.delete("dramatiq:downloads", "dramatiq:downloads.msgs")
    actors.broker.enqueue(dramatiq.Message.decode(raw), delay=60_000)


def test_queued_and_delayed_messages_are_live_and_nothing_else(queue):
    delay(queue, "delayed")
    queue.enqueue_transfer("queued")
    assert queue.live_download_ids() == {"queued", "delayed"}


def test_a_delayed_message_held_by_a_live_worker_is_live_and_a_dead_ones_goes_back_to_the_delay_queue(
    queue, redis_client
):
    delay(queue, "retrying")
    hold(redis_client, DELAY_QUEUE, "live-worker", last_heard_seconds_ago=0)
    assert queue.live_download_ids() == {"retrying"}
    assert redis_client.llen(DELAY_QUEUE) == 0
    redis_client.zadd("dramatiq:__heartbeats__", {"live-worker": (time.time() - 3600) * 1000})
    assert queue.live_download_ids() == {"retrying"}
    assert redis_client.llen(DELAY_QUEUE) == 1  # back for another worker to wait out its eta
    assert not redis_client.exists("dramatiq:__acks__.live-worker.downloads.DQ")


def test_a_message_left_in_the_hash_but_neither_queued_nor_held_is_not_live(queue, redis_client):
    queue.enqueue_transfer("stranded")
    redis_client.delete("dramatiq:downloads")  # e.g. Redis lost the list but not the hash
    assert queue.live_download_ids() == set()


def test_redis_away_is_queue_unavailable(queue, monkeypatch):
    def refuse(*args, **kwargs):
        raise redis.ConnectionError("refused")

    monkeypatch.setattr(queue.client, "pipeline", refuse)
    with pytest.raises(QueueUnavailable):
        queue.live_download_ids()
