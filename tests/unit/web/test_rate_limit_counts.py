"""Rate limits: every limit of a request counted in one Redis round trip, in memory while Redis fails."""

import time

import redis


def start(client, auth, content_id, user="alice"):
    return client.post("/api/downloads/start", json={"content_id": content_id, "quality": "720p"}, headers=auth(user))


def test_a_start_counts_once_against_the_writes_budget(client, auth, titles, configure):
    configure(RATELIMIT_WRITES="3 per minute")
    ids = titles(4)
    assert [start(client, auth, content_id).status_code for content_id in ids] == [202, 202, 202, 429]


def test_every_limit_of_a_setting_holds_and_the_headers_show_the_tightest(client, auth, titles, configure):
    configure(RATELIMIT_START="2 per minute;5 per hour", RATELIMIT_WRITES="100 per minute")
    ids = titles(3)
    first = start(client, auth, ids[0])
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == ("2", "1")
    assert start(client, auth, ids[1]).headers["X-RateLimit-Remaining"] == "0"
    refused = start(client, auth, ids[2])
    assert refused.status_code == 429 and "2 per 1 minute" in refused.json["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_one_round_trip_to_redis_counts_every_limit_of_a_start(app, client, auth, movie, monkeypatch):
    calls = []
    limits = app.extensions["rate_limits"]
    counted = limits._count_script

    def spy(keys, args):
        calls.append(keys)
        return counted(keys=keys, args=args)

    monkeypatch.setattr(limits, "_count_script", spy)
    assert start(client, auth, "movie").status_code == 202
    assert len(calls) == 1 and sorted(key.split(":")[2] for key in calls[0]) == ["start", "writes"]


def test_while_redis_fails_each_process_counts_in_memory_and_tries_redis_again_later(
    app, client, auth, configure, monkeypatch
):
    configure(RATELIMIT_WRITES="2 per minute")
    limits = app.extensions["rate_limits"]

    def refuse(keys, args):
        raise redis.ConnectionError("Redis away")

    monkeypatch.setattr(limits, "_count_script", refuse)
    # A write that needs no Redis itself (a start would need the queue): a session.
    answers = [client.post("/api/session", headers=auth()).status_code for _ in range(3)]
    assert answers == [200, 200, 429]  # counted in this process's memory
    assert limits._redis_retry_at > time.monotonic()  # Redis is not asked again meanwhile
    monkeypatch.undo()
    limits._redis_retry_at = 0  # the time to try Redis again has come
    assert client.post("/api/session", headers=auth()).status_code == 200  # counted in Redis
