"""Baseline for the worker benchmark: a no-op actor on the same broker and worker settings."""

import dramatiq

from downloads_app import create_app

broker = create_app().extensions["broker"]
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench-noop", max_retries=0)
def noop(download_id):
    """Does nothing with the same argument the transfer actor gets."""
