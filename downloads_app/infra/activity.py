"""The last hour of activity, kept in Redis by the service itself (no Prometheus server needed):
per minute, the downloads started, the transfer runs completed and failed, the bytes moved, and
the queue's depth."""

import threading
import time
from collections import Counter
from datetime import UTC, datetime

import redis

KEY_PREFIX = "downloads:activity:"  # + the minute (Unix time // 60): one hash per minute
KEPT_SECONDS = 2 * 3600
COUNTS = ("started", "completed", "failed", "transferred_bytes")
QUEUE_DEPTH = "queue_depth"  # ready and delayed messages, as the latest sample of the minute saw them


def _key(minute):
    return f"{KEY_PREFIX}{minute}"


def _this_minute():
    return int(time.time() // 60)


def add_to(pipe, field, amount):
    """Add the commands counting `amount` of `field` this minute to `pipe` (a Redis pipeline)."""
    key = _key(_this_minute())
    pipe.hincrby(key, field, amount)
    pipe.expire(key, KEPT_SECONDS)


class Tally:
    """What this process counted since it last wrote to Redis: the worker's hot paths count here
    (no Redis round trip), and its reconciler writes the sums every pass."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = Counter()

    def add(self, field, amount=1):
        with self._lock:
            self._counts[field] += amount

    def flush(self, client, queue_depth=None):
        """Write the counts (and the queue's depth) into this minute, in one round trip; on a
        Redis error the counts are kept for the next flush, and the error raised."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        try:
            with client.pipeline(transaction=False) as pipe:
                for field, amount in counts.items():
                    if amount:
                        add_to(pipe, field, amount)
                if queue_depth is not None:
                    key = _key(_this_minute())
                    pipe.hset(key, QUEUE_DEPTH, queue_depth)
                    pipe.expire(key, KEPT_SECONDS)
                pipe.execute()
        except redis.RedisError:
            with self._lock:
                self._counts.update(counts)
            raise


TALLY = Tally()  # one per process, like the Prometheus counters


def last_minutes(client, minutes=60):
    """The last `minutes` minutes, oldest first, this one last: each {minute (its start, UTC), the
    COUNTS, queue_depth (None: no sample that minute)}."""
    now = _this_minute()
    span = range(now - minutes + 1, now + 1)
    with client.pipeline(transaction=False) as pipe:
        for minute in span:
            pipe.hgetall(_key(minute))
        found = pipe.execute()
    history = []
    for minute, fields in zip(span, found, strict=True):
        values = {key.decode(): int(value) for key, value in fields.items()}
        entry = {"minute": datetime.fromtimestamp(minute * 60, UTC)}
        entry.update({name: values.get(name, 0) for name in COUNTS})
        entry[QUEUE_DEPTH] = values.get(QUEUE_DEPTH)
        history.append(entry)
    return history
