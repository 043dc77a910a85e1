"""Live download events: published on Redis pub/sub, fanned out to each process's SSE streams."""

import json
import logging
import queue
import threading
import time
from collections import defaultdict

import redis

from downloads_app.infra.metrics import STREAMS_OPEN

log = logging.getLogger(__name__)

# Pub/sub channels belong to the whole Redis server, not to one of its databases: the channel
# names the database, so services (or test runs) on other databases of one server stay apart.
CHANNEL_PREFIX = "downloads:{db}:events:"
PROGRESS_FIELDS = ("id", "status", "progress", "downloaded_bytes", "file_size_bytes")
DELETED = "deleted"
DELETIONS_PREFIX = "downloads:deleted:"
# A reconnecting stream learns of the deletions of the last hour (longer: it reloads the list).
DELETIONS_KEPT_SECONDS = 3600
# After Redis refuses a publish, skip publishing for this long rather than make every
# progress write and API call wait for a connect timeout.
PUBLISH_BACKOFF_SECONDS = 5.0
# Events a slow stream may fall behind by before its oldest are dropped.
STREAM_BUFFER = 1000
SUBSCRIBE_WAIT_SECONDS = 2.0
LISTEN_POLL_SECONDS = 0.5
# Put in a stream's queue to end it.
END_OF_STREAM = None


def progress_fields(download, status=None):
    """The `/progress` body of `download` (byte counts as decimal strings)."""
    fields = {name: getattr(download, name) for name in PROGRESS_FIELDS}
    fields["downloaded_bytes"] = str(fields["downloaded_bytes"])
    fields["file_size_bytes"] = str(fields["file_size_bytes"])
    if status:
        fields["status"] = status
    return {"success": True, **fields}


def event(kind, download, status=None):
    """An event: `kind` is "progress" or "status"; the id is the time in milliseconds."""
    return {"event": kind, "id": int(time.time() * 1000), "data": progress_fields(download, status)}


def channel_prefix(client):
    """The prefix of the event channels of `client`'s Redis database."""
    return CHANNEL_PREFIX.format(db=client.connection_pool.connection_kwargs.get("db", 0))


def channel(client, user_id):
    """The channel of `user_id`'s events in `client`'s Redis database."""
    return channel_prefix(client) + user_id


def _deletions_key(user_id):
    return DELETIONS_PREFIX + user_id


def deletions_since(client, user_id, since_ms):
    """The deletion events of `user_id` from `since_ms` on (kept DELETIONS_KEPT_SECONDS), oldest first."""
    return [json.loads(raw) for raw in client.zrangebyscore(_deletions_key(user_id), since_ms, "+inf")]


class EventPublisher:
    """Publishes download events on Redis; a refused publish pauses publishing for a while."""

    def __init__(self, client):
        self._client = client
        self._suppressed_until = 0.0

    def publish(self, kind, downloads, status=None):
        """Publish one event per download to its owner's channel; never raises."""
        if time.monotonic() < self._suppressed_until:
            return
        try:
            with self._client.pipeline(transaction=False) as pipe:
                self.add_to(pipe, kind, downloads, status)
                pipe.execute()
        except redis.RedisError as exc:
            self._refused(exc)

    def add_to(self, pipe, kind, downloads, status=None):
        """Add the commands publishing these events to `pipe`, a pipeline of the same Redis."""
        for download in downloads:
            message = json.dumps(event(kind, download, status))
            pipe.publish(channel(self._client, download.user_id), message)
            if status == DELETED:  # kept for streams that reconnect: the rows are gone
                key, at = _deletions_key(download.user_id), int(time.time() * 1000)
                pipe.zadd(key, {message: at})
                pipe.zremrangebyscore(key, "-inf", at - DELETIONS_KEPT_SECONDS * 1000)
                pipe.expire(key, DELETIONS_KEPT_SECONDS)

    def _refused(self, exc):
        """Redis refused a publish: skip publishing for PUBLISH_BACKOFF_SECONDS."""
        self._suppressed_until = time.monotonic() + PUBLISH_BACKOFF_SECONDS
        log.warning("Could not publish download events (live updates pause for %ss): %s", PUBLISH_BACKOFF_SECONDS, exc)


def format_sse(message):
    """One Server-Sent Event: `event:`, `id:` and a single `data:` line of JSON."""
    return f"event: {message['event']}\nid: {message['id']}\ndata: {json.dumps(message['data'])}\n\n"


class EventHub:
    """One Redis subscription per process, fanned out to the streams open in it."""

    def __init__(self, client):
        self._client = client
        self._streams = defaultdict(set)  # user id → queues of that user's open streams
        self._lock = threading.Lock()
        self._listener = None
        self._subscribed = threading.Event()
        self._closed = False

    def open_stream(self, user_id):
        """A queue that receives every event of `user_id` until `close_stream`."""
        stream = queue.Queue(maxsize=STREAM_BUFFER)
        with self._lock:
            self._streams[user_id].add(stream)
            STREAMS_OPEN.set(sum(len(group) for group in self._streams.values()))
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, name="event-hub", daemon=True)
                self._listener.start()
        # The first stream of a process waits for the subscription, so that it misses no
        # event published meanwhile (unless Redis is away: then it goes on without).
        self._subscribed.wait(timeout=SUBSCRIBE_WAIT_SECONDS)
        return stream

    def close_stream(self, user_id, stream):
        with self._lock:
            self._streams[user_id].discard(stream)
            if not self._streams[user_id]:
                del self._streams[user_id]
            STREAMS_OPEN.set(sum(len(group) for group in self._streams.values()))

    def end_streams(self):
        """Ask every open stream to finish (the server is shutting down)."""
        with self._lock:
            streams = [stream for group in self._streams.values() for stream in group]
        log.info("Ending %d event streams: this worker is stopping", len(streams))
        for stream in streams:
            self._offer(stream, END_OF_STREAM)

    def open_count(self):
        with self._lock:
            return sum(len(streams) for streams in self._streams.values())

    def _dispatch(self, user_id, message):
        with self._lock:
            streams = list(self._streams.get(user_id, ()))
        for stream in streams:
            self._offer(stream, message)

    @staticmethod
    def _offer(stream, message):
        try:
            stream.put_nowait(message)
        except queue.Full:  # a stalled client: drop its oldest event, keep the newest
            try:
                stream.get_nowait()
                stream.put_nowait(message)
            except (queue.Empty, queue.Full):
                pass

    def _listen(self):
        backoff = 0.5
        while not self._closed:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                prefix = channel_prefix(self._client)
                pubsub.psubscribe(prefix + "*")
                self._subscribed.set()
                backoff = 0.5
                while not self._closed:  # short waits, so close() needs no cross-thread socket work
                    raw = pubsub.get_message(timeout=LISTEN_POLL_SECONDS)
                    if raw is not None:
                        user_id = raw["channel"].decode()[len(prefix) :]
                        self._dispatch(user_id, json.loads(raw["data"]))
            except (redis.RedisError, ValueError) as exc:
                self._subscribed.clear()
                log.warning("Event hub lost Redis (%s); retrying in %.1fs", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                pubsub.close()

    def close(self):
        """Stop listening and drop the Redis connection."""
        self._closed = True
        if self._listener is not None:
            self._listener.join(timeout=5)
        self._client.close()


def make_hub(settings):
    """The hub of this process; streams block on reads between events: a client without a read timeout."""
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_keepalive=True,
        health_check_interval=30,
    )
    return EventHub(client)
