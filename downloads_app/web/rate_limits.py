"""Per-user rate limits: fixed windows counted in Redis, every limit of a request in one round trip."""

import functools
import logging
import math
import time

import redis
from flask import current_app, g, request
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from downloads_app.web.auth import request_user

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEY_PREFIX = "downloads:ratelimit"
# After Redis fails a count, count in this process's memory for this long before trying again,
# rather than make every write wait for a connect timeout.
REDIS_RETRY_SECONDS = 5.0

# KEYS: one counter per limit. ARGV: each one's window in seconds. Returns each counter's count
# and milliseconds to the end of its window. A counter's window starts at its first count.
COUNT = """
local answers = {}
for i, key in ipairs(KEYS) do
    local count = redis.call("incr", key)
    local left = redis.call("pttl", key)
    if left < 0 then
        redis.call("expire", key, ARGV[i])
        left = tonumber(ARGV[i]) * 1000
    end
    answers[#answers + 1] = count
    answers[#answers + 1] = left
end
return answers
"""


class RateLimited(TooManyRequests):
    """429: a limit of the request's user is used up until `retry_after` seconds from now."""

    def __init__(self, limit, retry_after):
        super().__init__(description=str(limit))
        self.retry_after = retry_after


@functools.lru_cache(maxsize=64)
def _parse(text):
    """The limits of a setting such as `30 per minute` or `5/second;100/hour`."""
    return tuple(parse_many(text))


def limit_starts(view):
    """Mark a view as a start: RATELIMIT_START applies to it, besides RATELIMIT_WRITES."""
    view.rate_limit_scopes = ("start",)
    return view


class RateLimits:
    """The counters of one process: in Redis, or in memory while Redis fails."""

    def __init__(self, client):
        self.client = client
        self._count_script = client.register_script(COUNT)
        self._memory = FixedWindowRateLimiter(MemoryStorage())
        self._redis_retry_at = 0.0

    def count(self, who, limits):
        """Count one request of `who` against each (scope, limit); [(count, seconds to window end)]."""
        if time.monotonic() >= self._redis_retry_at:
            keys = [f"{KEY_PREFIX}:{scope}:{who}:{limit.amount}/{limit.get_expiry()}" for scope, limit in limits]
            try:
                answers = self._count_script(keys=keys, args=[limit.get_expiry() for _, limit in limits])
            except redis.RedisError as exc:
                self._redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS
                log.warning("Rate limits count in memory for %ss: Redis failed: %s", REDIS_RETRY_SECONDS, exc)
            else:
                return [(answers[i], answers[i + 1] / 1000) for i in range(0, len(answers), 2)]
        counts = []
        for scope, limit in limits:
            allowed = self._memory.hit(limit, who, scope)
            reset_at, remaining = self._memory.get_window_stats(limit, who, scope)
            counts.append((limit.amount - remaining if allowed else limit.amount + 1, max(reset_at - time.time(), 0)))
        return counts


def _scopes():
    """The limits of this request: (scope, parsed limit); none for reads and unlimited routes."""
    config = current_app.config
    if request.method not in WRITE_METHODS or request.blueprint not in current_app.extensions["rate_limited"]:
        return []
    scopes = [("writes", limit) for limit in _parse(config["RATELIMIT_WRITES"])]
    view = current_app.view_functions.get(request.endpoint)
    method = getattr(getattr(view, "view_class", None), request.method.lower(), view)
    if "start" in getattr(method, "rate_limit_scopes", ()):
        scopes += [("start", limit) for limit in _parse(config["RATELIMIT_START"])]
    return scopes


def check_limits():
    """Count the request against its limits; RateLimited (429) if one is used up.

    The answer's X-RateLimit-* headers describe the limit with the least left.
    """
    if not current_app.config["RATELIMIT_ENABLED"] or not (limits := _scopes()):
        return
    user = request_user()
    who = f"user:{user.id}" if user else f"address:{request.remote_addr}"
    counts = current_app.extensions["rate_limits"].count(who, limits)
    (_, limit), (count, left) = min(zip(limits, counts, strict=True), key=lambda pair: pair[0][1].amount - pair[1][0])
    g.rate_limit_headers = {
        "X-RateLimit-Limit": str(limit.amount),
        "X-RateLimit-Remaining": str(max(limit.amount - count, 0)),
        "X-RateLimit-Reset": str(math.ceil(time.time() + left)),
    }
    if count > limit.amount:
        raise RateLimited(limit, retry_after=max(math.ceil(left), 1))


def add_headers(response):
    response.headers.extend(g.pop("rate_limit_headers", {}))
    return response


def init_app(app, blueprints):
    """Limit every write of `blueprints`, counted in RATELIMIT_STORAGE_URI (default: REDIS_URL)."""
    timeout = app.config["REDIS_TIMEOUT_SECONDS"]
    client = redis.Redis.from_url(
        app.config["RATELIMIT_STORAGE_URI"] or app.config["REDIS_URL"],
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    app.extensions["rate_limits"] = RateLimits(client)
    app.extensions["rate_limited"] = frozenset(blp.name for blp in blueprints)
    app.before_request(check_limits)
    app.after_request(add_headers)
