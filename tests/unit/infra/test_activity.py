"""The activity history in a real Redis: per-minute counts, the queue's depth, kept for two hours."""

import itertools
import time

import pytest
import redis

from downloads_app.infra import activity


@pytest.fixture
def client(redis_client):
    return redis_client


def test_a_tally_is_written_into_this_minute_and_read_back_as_the_last_hour(client):
    tally = activity.Tally()
    tally.add("started", 2)
    tally.add("transferred_bytes", 1_000_000)
    tally.add("completed")
    tally.flush(client, queue_depth=7)
    tally.add("started")
    tally.flush(client)
    minutes = activity.last_minutes(client)
    assert len(minutes) == 60
    # Sums over the hour: the flushes may fall either side of a minute's end.
    totals = {name: sum(m[name] for m in minutes) for name in activity.COUNTS}
    assert totals == {"started": 3, "completed": 1, "failed": 0, "transferred_bytes": 1_000_000}
    assert [m["queue_depth"] for m in minutes if m["queue_depth"] is not None] == [7]
    starts = [m["minute"].timestamp() for m in minutes]
    assert 0 <= time.time() - starts[-1] < 120 and starts[-1] % 60 == 0
    assert [b - a for a, b in itertools.pairwise(starts)] == [60] * 59
    assert all(m["started"] == 0 and m["queue_depth"] is None for m in minutes[:-2])
    [key] = client.keys(f"{activity.KEY_PREFIX}*")
    assert 0 < client.ttl(key) <= activity.KEPT_SECONDS


def test_counts_added_to_a_pipeline_go_in_its_round_trip(client):
    with client.pipeline(transaction=False) as pipe:
        activity.add_to(pipe, "started", 5)
        pipe.execute()
    assert sum(m["started"] for m in activity.last_minutes(client, minutes=2)) == 5


def test_a_flush_that_redis_refuses_keeps_the_counts_for_the_next(client, unused_tcp_port):
    tally = activity.Tally()
    tally.add("failed", 3)
    gone = redis.Redis(port=unused_tcp_port, socket_connect_timeout=0.5)
    with pytest.raises(redis.RedisError):
        tally.flush(gone)
    tally.flush(client)
    assert sum(m["failed"] for m in activity.last_minutes(client, minutes=2)) == 3
