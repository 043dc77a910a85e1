"""The Dramatiq Redis broker and the one message the API sends: transfer this download."""
import logging

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from flask import current_app

from downloads_app.downloads.refusals import QueueUnavailable

log = logging.getLogger(__name__)

TRANSFER_ACTOR = "transfer_download"


class DownloadsBroker(RedisBroker):
    """Dramatiq's RedisBroker with a cap on how long an idle worker sleeps between polls.

    An idle consumer backs off up to the worker timeout (1 s by default) before it looks
    at Redis again, which is then the latency of the next download's pick-up.
    """

    def __init__(self, *, idle_poll_ms, **kwargs):
        super().__init__(**kwargs)
        self.idle_poll_ms = idle_poll_ms

    def consume(self, queue_name, prefetch=1, timeout=5000):
        return super().consume(queue_name, prefetch, min(timeout, self.idle_poll_ms))


def make_broker(config):
    """A broker for `REDIS_URL` whose calls fail fast when Redis is away."""
    timeout = config["REDIS_TIMEOUT_SECONDS"]
    client = redis.Redis.from_url(
        config["REDIS_URL"],
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
    )
    return DownloadsBroker(client=client, idle_poll_ms=config["WORKER_IDLE_POLL_MS"])


def queue_keys():
    """Redis keys of the downloads queue in Dramatiq's Redis broker."""
    queue = f"dramatiq:{current_app.config['DOWNLOADS_QUEUE']}"
    return {"ready": queue, "delayed": f"{queue}.DQ.msgs", "dead": f"{queue}.XQ", "dead_msgs": f"{queue}.XQ.msgs"}


def dead_lettered_ids():
    """Download ids of the messages Dramatiq gave up on (dead-letter queue)."""
    raws = current_app.extensions["broker"].client.hvals(queue_keys()["dead_msgs"])
    return sorted({dramatiq.Message.decode(raw).args[0] for raw in raws})


def discard_dead_letters(download_id):
    """Remove the dead-lettered messages of `download_id`; returns how many."""
    client, keys = current_app.extensions["broker"].client, queue_keys()
    ids = [
        message_id
        for message_id, raw in client.hgetall(keys["dead_msgs"]).items()
        if dramatiq.Message.decode(raw).args[0] == download_id
    ]
    if ids:
        client.zrem(keys["dead"], *ids)
        client.hdel(keys["dead_msgs"], *ids)
    return len(ids)


def init_app(app):
    app.extensions["broker"] = make_broker(app.config)


def enqueue_transfer(download_id):
    """Queue the transfer of `download_id` and return the message id; QueueUnavailable if Redis does not answer."""
    message = dramatiq.Message(
        queue_name=current_app.config["DOWNLOADS_QUEUE"],
        actor_name=TRANSFER_ACTOR,
        args=(download_id,),
        kwargs={},
        options={},
    )
    try:
        return current_app.extensions["broker"].enqueue(message).message_id
    except redis.RedisError as exc:
        log.error("Could not queue download %s: %s", download_id, exc)
        raise QueueUnavailable("The download queue is unavailable; try again shortly.") from exc
