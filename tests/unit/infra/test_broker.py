"""The transfer queue's view of live messages: queued, delayed, held by live workers, and dead workers' put back."""

import threading
import time

import dramatiq
import pytest
import redis

import actors
from downloads_app.infra.broker import DownloadsBroker, QueueUnavailable, TransferQueue

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


def next_message(consumer):
    while (message := next(consumer)) is None:
        pass
    return message


def test_a_consumer_holding_all_it_may_fetches_the_next_message_as_soon_as_one_is_acked(queue):
    # With one message per thread, a worker's consumer is full whenever its threads are busy.
    # Dramatiq's own consumer then sleeps its idle backoff, however long it has grown (here a
    # minute), before it fetches again; this one waits for the ack.
    broker = DownloadsBroker(client=actors.broker.client, idle_poll_ms=60_000)
    queue.enqueue_transfer("first")
    queue.enqueue_transfer("second")
    consumer = broker.consume("downloads", prefetch=1, timeout=60_000)
    held = next_message(consumer)
    consumer.misses = 20  # Dramatiq's backoff counter after a long busy spell
    received = []
    fetching = threading.Thread(target=lambda: received.append(next_message(consumer)), daemon=True)
    fetching.start()
    consumer.ack(held)
    fetching.join(timeout=30)
    assert not fetching.is_alive(), "the consumer slept its backoff instead of fetching after the ack"
    assert {held.args[0], received[0].args[0]} == {"first", "second"}
    consumer.ack(received[0])
    consumer.close()


def test_a_full_consumer_still_comes_back_within_its_timeout(queue):
    # The worker's consumer thread handles its delay queue between calls: a full consumer
    # that sees no ack returns None after its (capped) timeout.
    broker = DownloadsBroker(client=actors.broker.client, idle_poll_ms=50)
    queue.enqueue_transfer("only")
    consumer = broker.consume("downloads", prefetch=1, timeout=60_000)
    held = next_message(consumer)
    assert next(consumer) is None
    consumer.ack(held)
    consumer.close()
