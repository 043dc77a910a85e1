"""The transfer actor: a thin shell around `downloads_app.transfer.run.run`."""

import dramatiq
from dramatiq.middleware import CurrentMessage
from flask import current_app

from actors import app
from downloads_app.infra.broker import TRANSFER_ACTOR
from downloads_app.transfer import run as transfer_run


@dramatiq.actor(
    actor_name=TRANSFER_ACTOR,
    queue_name=app.config["DOWNLOADS_QUEUE"],
    # The database's attempt counter decides when to give up (DOWNLOAD_MAX_ATTEMPTS);
    # Dramatiq's own retries only need to outlast it.
    max_retries=app.config["DOWNLOAD_MAX_ATTEMPTS"],
    min_backoff=app.config["DOWNLOAD_RETRY_MIN_BACKOFF_MS"],
    max_backoff=app.config["DOWNLOAD_RETRY_MAX_BACKOFF_MS"],
    time_limit=app.config["DOWNLOAD_TIME_LIMIT_SECONDS"] * 1000,
)
def transfer_download(download_id):
    message = CurrentMessage.get_current_message()
    transfer_run.run(current_app.extensions["runtime"], download_id, job_id=message.message_id if message else None)
