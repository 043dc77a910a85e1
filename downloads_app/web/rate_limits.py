"""Per-user rate limits (flask-limiter, counted in Redis so they hold across processes and hosts)."""

import math
import time

from flask import current_app
from flask_limiter import HeaderNames, Limiter
from flask_limiter.util import get_remote_address

from downloads_app.web.auth import request_user

WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]


def rate_limit_key():
    """The signed-in user, or the client's address for requests without a valid token."""
    user = request_user()
    return f"user:{user.id}" if user else f"address:{get_remote_address()}"


limiter = Limiter(
    key_func=rate_limit_key,
    key_prefix="downloads:ratelimit",
    headers_enabled=True,
    # flask-limiter would put its window's reset into every response's Retry-After, a 503's
    # too; the 429 handler sets Retry-After itself (see `retry_after_seconds`).
    header_name_mapping={HeaderNames.RETRY_AFTER: "X-RateLimit-Retry-After"},
    swallow_errors=True,  # Redis down: count in this process's memory meanwhile
    in_memory_fallback_enabled=True,
)

# Starts of downloads (RATELIMIT_START), each user on their own; starts count as writes too.
limit_starts = limiter.limit(lambda: current_app.config["RATELIMIT_START"], scope="start", override_defaults=False)
# Every write of a user, all routes together (RATELIMIT_WRITES); reads are not limited.
limit_writes = limiter.shared_limit(
    lambda: current_app.config["RATELIMIT_WRITES"], scope="writes", methods=WRITE_METHODS
)


def init_app(app, blueprints):
    """Count in RATELIMIT_STORAGE_URI (default: REDIS_URL); every write of `blueprints` is limited."""
    app.config["RATELIMIT_STORAGE_URI"] = app.config["RATELIMIT_STORAGE_URI"] or app.config["REDIS_URL"]
    app.config.setdefault(
        "RATELIMIT_STORAGE_OPTIONS",
        {
            "socket_timeout": app.config["REDIS_TIMEOUT_SECONDS"],
            "socket_connect_timeout": app.config["REDIS_TIMEOUT_SECONDS"],
        },
    )
    for blp in blueprints:
        limit_writes(blp)
    limiter.init_app(app)


def retry_after_seconds():
    """Seconds until the limit this request broke lets the caller in again."""
    limit = limiter.current_limit
    return max(math.ceil(limit.reset_at - time.time()), 1) if limit else 60
