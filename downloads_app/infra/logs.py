"""Log lines as readable text or JSON, carrying the download, user and job ids when known."""

import json
import logging
from datetime import UTC, datetime

CONTEXT = ("download_id", "user_id", "job_id")
TEXT_FORMAT = "[%(asctime)s] [PID %(process)d] [%(threadName)s] [%(name)s] [%(levelname)s] %(message)s"


def context(download=None, job_id=None):
    """`extra=` for a log call about `download` (and the queue message `job_id`)."""
    extra = {"job_id": job_id}
    if download is not None:
        extra.update(download_id=download.id, user_id=download.user_id)
    return {key: value for key, value in extra.items() if value}


class TextFormatter(logging.Formatter):
    """Dramatiq's layout, then `download_id=… user_id=… job_id=…` when the record has them."""

    def __init__(self):
        super().__init__(TEXT_FORMAT)

    def format(self, record):
        line = super().format(record)
        ids = " ".join(f"{key}={getattr(record, key)}" for key in CONTEXT if getattr(record, key, None))
        return f"{line} ({ids})" if ids else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key in CONTEXT:
            if getattr(record, key, None):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def formatter(log_format):
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(log_format):
    """Give the root logger's handlers (one on stderr if none) the chosen format, at INFO."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(formatter(log_format))
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
