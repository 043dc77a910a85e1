"""The Dramatiq Redis broker and the one message the service sends: transfer this download."""

import logging

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

log = logging.getLogger(__name__)

TRANSFER_ACTOR = "transfer_download"


class QueueUnavailable(Exception):
    """Redis (the job queue) did not answer."""

    reason = "queue_unavailable"


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


def make_broker(settings):
    """A broker for REDIS_URL whose calls fail fast when Redis is away."""
    timeout = settings.redis_timeout_seconds
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
    )
    return DownloadsBroker(client=client, idle_poll_ms=settings.worker_idle_poll_ms)


class TransferQueue:
    """The downloads queue of one broker: sending transfers, and its keys and dead letters in Redis."""

    def __init__(self, broker, queue_name):
        self.broker = broker
        self.client = broker.client
        self.name = queue_name
        prefix = f"dramatiq:{queue_name}"
        self.keys = {
            "ready": prefix,
            "delayed": f"{prefix}.DQ.msgs",
            "dead": f"{prefix}.XQ",
            "dead_msgs": f"{prefix}.XQ.msgs",
        }

    def enqueue_transfer(self, download_id):
        """Queue the transfer of `download_id`; the message id, or QueueUnavailable if Redis does not answer."""
        message = dramatiq.Message(
            queue_name=self.name,
            actor_name=TRANSFER_ACTOR,
            args=(download_id,),
            kwargs={},
            options={},
        )
        try:
            return self.broker.enqueue(message).message_id
        except redis.RedisError as exc:
            log.error("Could not queue download %s: %s", download_id, exc)
            raise QueueUnavailable("The download queue is unavailable; try again shortly.") from exc

    def depths(self):
        """(ready, delayed, dead-lettered) message counts, in one round trip."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(self.keys["ready"])
            pipe.hlen(self.keys["delayed"])
            pipe.zcard(self.keys["dead"])
            return tuple(pipe.execute())

    def dead_lettered_ids(self):
        """Download ids of the messages Dramatiq gave up on (dead-letter queue)."""
        raws = self.client.hvals(self.keys["dead_msgs"])
        return sorted({dramatiq.Message.decode(raw).args[0] for raw in raws})

    def discard_dead_letters(self, download_id):
        """Remove the dead-lettered messages of `download_id`; returns how many."""
        ids = [
            message_id
            for message_id, raw in self.client.hgetall(self.keys["dead_msgs"]).items()
            if dramatiq.Message.decode(raw).args[0] == download_id
        ]
        if ids:
            self.client.zrem(self.keys["dead"], *ids)
            self.client.hdel(self.keys["dead_msgs"], *ids)
        return len(ids)
