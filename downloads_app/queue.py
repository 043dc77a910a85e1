"""The Dramatiq Redis broker and the one message the API sends: transfer this download."""
import logging

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from flask import current_app

from downloads_app.errors import QueueUnavailable

log = logging.getLogger(__name__)

TRANSFER_ACTOR = "transfer_download"


def make_broker(config):
    """A RedisBroker for `REDIS_URL` whose calls fail fast when Redis is away."""
    timeout = config["REDIS_TIMEOUT_SECONDS"]
    client = redis.Redis.from_url(
        config["REDIS_URL"],
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
    )
    return RedisBroker(client=client)


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
