"""The Dramatiq Redis broker and the one message the service sends: transfer this download."""

import logging
import threading
from uuid import uuid4

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis, dq_name

log = logging.getLogger(__name__)

TRANSFER_ACTOR = "transfer_download"

# The download ids of the live messages of some queues: queued, or held (fetched and not yet
# acked) by a consumer whose heartbeat is within the broker's heartbeat timeout. Dramatiq's
# keys: the list `<ns>:<queue>` of queued message ids, the hash `<ns>:<queue>.msgs` of every
# message not yet acked, the sets `<ns>:__acks__.<consumer id>.<queue>` of held ones, and
# the zset `<ns>:__heartbeats__` of consumers' last calls.
# KEYS: namespace. ARGV: now (ms), heartbeat timeout (ms), queue names.
LIVE_DOWNLOAD_IDS = """
local namespace = KEYS[1]
local live_consumers = redis.call("zrangebyscore", namespace .. ":__heartbeats__",
                                  "(" .. (tonumber(ARGV[1]) - tonumber(ARGV[2])), "+inf")
local download_ids = {}
for i = 3, #ARGV do
    local queue = namespace .. ":" .. ARGV[i]
    local live = {}
    for _, message_id in ipairs(redis.call("lrange", queue, 0, -1)) do
        live[message_id] = true
    end
    for _, consumer in ipairs(live_consumers) do
        local held = namespace .. ":__acks__." .. consumer .. "." .. ARGV[i]
        for _, message_id in ipairs(redis.call("smembers", held)) do
            live[message_id] = true
        end
    end
    local messages = redis.call("hgetall", queue .. ".msgs")
    for j = 1, #messages, 2 do
        if live[messages[j]] then
            table.insert(download_ids, cjson.decode(messages[j + 1])["args"][1])
        end
    end
end
return download_ids
"""


class QueueUnavailable(Exception):
    """Redis (the job queue) did not answer."""

    reason = "queue_unavailable"


class _AckWaitingConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, which waits for an ack while it holds all it may prefetch.

    Dramatiq's own sleeps its idle backoff then (up to the poll cap), so a thread that
    finished its message waited up to that long for the next one: with one message per
    thread, most of the worker's time on short jobs.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._settled = threading.Event()

    def ack(self, message):
        try:
            super().ack(message)
        finally:
            self._settled.set()

    def nack(self, message):
        try:
            super().nack(message)
        finally:
            self._settled.set()

    def __next__(self):
        self._settled.clear()
        if not self.message_cache and self.outstanding_message_count >= self.prefetch:
            self._settled.wait(self.timeout / 1000)
            return None  # the worker's consumer thread handles its delayed messages, then asks again
        return super().__next__()


class DownloadsBroker(RedisBroker):
    """Dramatiq's RedisBroker with a cap on idle polling, consumers that fetch as soon as a
    message is acked, and its queue maintenance on demand.

    An idle consumer backs off up to the worker timeout (1 s by default) before it looks
    at Redis again, which is then the latency of the next download's pick-up.
    """

    def __init__(self, *, idle_poll_ms, **kwargs):
        super().__init__(**kwargs)
        self.idle_poll_ms = idle_poll_ms

    @property
    def consumer_class(self):
        return _AckWaitingConsumer

    def consume(self, queue_name, prefetch=1, timeout=5000):
        return super().consume(queue_name, prefetch, min(timeout, self.idle_poll_ms))

    def enqueue_all(self, messages, alongside=None):
        """Enqueue `messages` (none delayed) in one pipelined round trip, with the commands
        `alongside(pipeline)` adds to it; the messages as queued (RedisBroker.enqueue, batched)."""
        queued = [message.copy(options={"redis_message_id": str(uuid4())}) for message in messages]
        for message in queued:
            self.emit_before("enqueue", message, None)
        with self.client.pipeline(transaction=False) as pipe:
            for message in queued:
                self.scripts["dispatch"](
                    keys=[self.namespace],
                    args=[
                        "enqueue",
                        current_millis(),
                        message.queue_name,
                        self.broker_id,
                        self.heartbeat_timeout,
                        self.dead_message_ttl,
                        self._should_do_maintenance("enqueue"),
                        self._max_unpack_size(),
                        message.options["redis_message_id"],
                        message.encode(),
                    ],
                    client=pipe,
                )
            if alongside is not None:
                alongside(pipe)
            pipe.execute()
        for message in queued:
            self.emit_after("enqueue", message, None)
        return queued

    def maintain(self, queue_name, client):
        """Dramatiq's maintenance of `queue_name` now, through `client` (a pipeline may batch it).

        It puts the messages held by consumers silent for `heartbeat_timeout` back on the
        queue and drops expired dead letters. Dramatiq itself runs it on a random 0.1 % of
        its calls. The command, `qsize`, only reads.
        """
        self.scripts["dispatch"](
            keys=[self.namespace],
            args=[
                "qsize",
                current_millis(),
                queue_name,
                self.broker_id,
                self.heartbeat_timeout,
                self.dead_message_ttl,
                1,  # do the maintenance
                self._max_unpack_size(),
            ],
            client=client,
        )


def make_broker(settings):
    """A broker for REDIS_URL whose calls fail fast when Redis is away."""
    timeout = settings.redis_timeout_seconds
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
    )
    return DownloadsBroker(
        client=client,
        idle_poll_ms=settings.worker_idle_poll_ms,
        # A consumer silent this long is dead: the messages it held go back to the queue
        # at the reconciler's next pass. Consumers call Redis every WORKER_IDLE_POLL_MS
        # (the delay queue's consumer polls even while every thread is busy).
        heartbeat_timeout=int(settings.download_stall_seconds * 1000),
    )


class TransferQueue:
    """The downloads queue of one broker: sending transfers, and its keys and dead letters in Redis."""

    def __init__(self, broker, queue_name):
        self.broker = broker
        self.client = broker.client
        self.name = queue_name
        prefix = f"dramatiq:{queue_name}"
        self.live_download_ids_script = self.client.register_script(LIVE_DOWNLOAD_IDS)
        self.keys = {
            "ready": prefix,
            "delayed": f"{prefix}.DQ.msgs",
            "dead": f"{prefix}.XQ",
            "dead_msgs": f"{prefix}.XQ.msgs",
        }

    def _transfer(self, download_id):
        return dramatiq.Message(
            queue_name=self.name, actor_name=TRANSFER_ACTOR, args=(download_id,), kwargs={}, options={}
        )

    def enqueue_transfer(self, download_id, delay_ms=None):
        """Queue the transfer of `download_id` (after `delay_ms`, in the delay queue); the message id,
        or QueueUnavailable if Redis does not answer."""
        try:
            return self.broker.enqueue(self._transfer(download_id), delay=delay_ms).message_id
        except redis.RedisError as exc:
            log.error("Could not queue download %s: %s", download_id, exc)
            raise QueueUnavailable("The download queue is unavailable; try again shortly.") from exc

    def enqueue_transfers(self, download_ids, alongside=None):
        """Queue the transfers of `download_ids` in one round trip, with what `alongside(pipeline)`
        adds to it (e.g. their events); the message ids, or QueueUnavailable if Redis does not answer."""
        try:
            queued = self.broker.enqueue_all([self._transfer(i) for i in download_ids], alongside)
        except redis.RedisError as exc:
            log.error("Could not queue downloads %s: %s", ", ".join(download_ids), exc)
            raise QueueUnavailable("The download queue is unavailable; try again shortly.") from exc
        return [message.message_id for message in queued]

    def depths(self):
        """(ready, delayed, dead-lettered) message counts, in one round trip."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(self.keys["ready"])
            pipe.hlen(self.keys["delayed"])
            pipe.zcard(self.keys["dead"])
            return tuple(pipe.execute())

    def live_download_ids(self):
        """Download ids that have a live message: queued, delayed for a retry, or held by a live worker.

        Messages that dead workers held are first put back on their queue, so they count as
        queued. One round trip. QueueUnavailable if Redis does not answer.
        """
        queues = [self.name, dq_name(self.name)]
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    self.broker.maintain(queue, pipe)
                self.live_download_ids_script(
                    keys=[self.broker.namespace],
                    args=[current_millis(), self.broker.heartbeat_timeout, *queues],
                    client=pipe,
                )
                *_, download_ids = pipe.execute()
        except redis.RedisError as exc:
            raise QueueUnavailable("The download queue is unavailable; try again shortly.") from exc
        return {download_id.decode() for download_id in download_ids}

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
