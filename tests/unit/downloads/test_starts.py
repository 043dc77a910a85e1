"""Starts in batches: a batch of plain new starts is one transaction; any other start is answered
exactly as it would be alone (real databases, real Redis)."""

import pytest
import redis

from downloads_app.downloads import devices, ledger, starts, user_actions
from downloads_app.downloads.models import Content, Download, StorageLedger
from downloads_app.downloads.refusals import (
    ContentNotFound,
    DeviceRequired,
    IdempotencyKeyReused,
    QualityNotOffered,
    QuotaExceeded,
    TooManyActiveDownloads,
    YearlyDownloadsSpent,
)
from downloads_app.infra.broker import QueueUnavailable

SIZE_720 = 1000 * 3333 * 125
SIZE_480 = 1000 * 1556 * 125  # the default bitrates × the movie's 1000 s


@pytest.fixture
def rt(app_ctx, movie, redis_client):
    return app_ctx.extensions["runtime"]


@pytest.fixture
def one_at_a_time(monkeypatch):
    """The starts that were recorded alone, not with their batch."""
    alone = []
    record_one = starts._record_one

    def spy(rt, plan):
        alone.append(plan.start)
        return record_one(rt, plan)

    monkeypatch.setattr(starts, "_record_one", spy)
    return alone


def ask(user, content_id="movie", quality="720p", key=None, device=None):
    return starts.StartRequest(user, content_id, quality, key, device)


def used(user_id):
    row = StorageLedger.get_or_none(StorageLedger.user_id == user_id)
    return row.used_bytes if row else 0


def test_plain_new_starts_are_recorded_together_and_queued(rt, redis_client, titles, one_at_a_time):
    one, two = titles(2)
    batch = [ask("alice", one), ask("bob", one), ask("alice", two, "480p"), ask("carol", "movie", key="k1")]
    outcomes = starts.start_batch(rt, batch)
    assert one_at_a_time == []
    assert all(created for _, created in outcomes)
    assert [(d.user_id, d.content_id, d.quality, d.idempotency_key) for d, _ in outcomes] == [
        ("alice", one, "720p", None),
        ("bob", one, "720p", None),
        ("alice", two, "480p", None),
        ("carol", "movie", "720p", "k1"),
    ]
    stored = {d.id: d for d in Download.select()}
    assert sorted(stored) == sorted(d.id for d, _ in outcomes)
    assert {d.status for d in stored.values()} == {"pending"}
    assert (used("alice"), used("bob"), used("carol")) == (SIZE_720 + SIZE_480, SIZE_720, SIZE_720)
    assert redis_client.hlen("dramatiq:downloads.msgs") == 4


def test_a_start_that_is_not_plain_makes_the_batch_go_one_at_a_time_with_the_same_answers(rt, titles, one_at_a_time):
    one, two = titles(2)
    held, _ = user_actions.start_download(rt, "alice", one, "720p")
    keyed, _ = user_actions.start_download(rt, "dave", two, "720p", "key")
    one_at_a_time.clear()  # a start alone is always recorded alone
    batch = [
        ask("alice", one),  # held: that download comes back
        ask("bob", one),
        ask("bob", one),  # the same start twice in one batch: the second returns the first
        ask("dave", one, "720p", "key"),  # the key was for another title
        ask("erin", "nope"),
        ask("erin", "movie", "4k"),
    ]
    outcomes = starts.start_batch(rt, batch)
    assert len(one_at_a_time) == 4  # the refused titles and qualities never reach the database
    assert outcomes[0] == (held, False)
    bob, created = outcomes[1]
    assert created and outcomes[2] == (bob, False)
    assert isinstance(outcomes[3], IdempotencyKeyReused)
    assert isinstance(outcomes[4], ContentNotFound) and isinstance(outcomes[5], QualityNotOffered)
    assert Download.select().count() == 3  # held, keyed, bob's
    assert (used("alice"), used("bob"), used("dave"), used("erin")) == (SIZE_720, SIZE_720, SIZE_720, 0)
    assert keyed.id != bob.id


def test_a_start_over_quota_is_refused_alone_and_the_others_of_its_batch_go_through(rt, titles, configure):
    rt = configure(STORAGE_QUOTA_BYTES=SIZE_720 + SIZE_480)
    one, two = titles(2)
    outcomes = starts.start_batch(
        rt, [ask("alice", one), ask("alice", two), ask("bob", one), ask("alice", two, "480p")]
    )
    assert outcomes[0][1] and outcomes[2][1] and outcomes[3][1]
    assert isinstance(outcomes[1], QuotaExceeded)
    assert (used("alice"), used("bob")) == (SIZE_720 + SIZE_480, SIZE_720)
    assert ledger.storage(rt.settings, "alice")["free_bytes"] == 0


def test_the_active_cap_holds_for_starts_of_one_batch(rt, titles, configure):
    rt = configure(MAX_ACTIVE_DOWNLOADS_PER_USER=2)
    a, b, c = titles(3)
    outcomes = starts.start_batch(rt, [ask("alice", a), ask("alice", b), ask("alice", c), ask("bob", a)])
    assert [isinstance(o, TooManyActiveDownloads) for o in outcomes] == [False, False, True, False]
    assert Download.select().where(Download.user_id == "alice").count() == 2
    assert used("alice") == 2 * SIZE_720


def test_when_redis_refuses_the_batch_nothing_of_it_stays(rt, titles, monkeypatch):
    one, two = titles(2)

    def refuse(*args, **kwargs):
        raise redis.ConnectionError("Redis away")

    monkeypatch.setattr(rt.queue.broker.client, "pipeline", refuse)
    outcomes = starts.start_batch(rt, [ask("alice", one), ask("bob", two)])
    assert all(isinstance(outcome, QueueUnavailable) for outcome in outcomes)
    assert Download.select().count() == 0
    assert (used("alice"), used("bob")) == (0, 0)


def test_a_batch_with_a_user_who_has_devices_goes_one_at_a_time_and_refuses_the_start_naming_none(
    rt, titles, one_at_a_time
):
    one, two = titles(2)
    phone = devices.register(rt, "alice", "Phone", "ios")
    outcomes = starts.start_batch(rt, [ask("alice", one), ask("bob", one), ask("alice", two, device=phone.id)])
    assert len(one_at_a_time) == 3
    assert isinstance(outcomes[0], DeviceRequired)
    assert outcomes[1][1] and outcomes[2][1] and outcomes[2][0].device_id == phone.id
    assert (used("alice"), used("bob")) == (SIZE_720, SIZE_720)


def test_starts_of_a_title_with_a_yearly_cap_go_one_at_a_time_and_take_no_more_than_the_cap(rt, one_at_a_time):
    Content.update(max_downloads_per_year=2).where(Content.id == "movie").execute()
    outcomes = starts.start_batch(rt, [ask("alice", quality=q) for q in ("480p", "720p", "1080p")] + [ask("bob")])
    assert len(one_at_a_time) == 4
    assert outcomes[0][1] and outcomes[1][1] and outcomes[3][1]
    assert isinstance(outcomes[2], YearlyDownloadsSpent)
    assert used("alice") == SIZE_480 + SIZE_720
