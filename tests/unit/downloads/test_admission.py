"""Admission of starts and resumes against real databases: idempotency keys, held titles, the active cap."""

import itertools
from datetime import datetime, timedelta

import pytest

from downloads_app.downloads import admission, lifecycle
from downloads_app.downloads.models import Download
from downloads_app.downloads.refusals import AlreadyHeld, IdempotencyKeyReused, TooManyActiveDownloads

HELD = sorted(lifecycle.RESERVING)  # pending, downloading, paused, completed
NOT_HELD = [lifecycle.CANCELLED, lifecycle.FAILED]
T0 = datetime(2024, 1, 1, 12, 0, 0)


@pytest.fixture
def rt(app_ctx, movie, titles):
    titles(2)  # title-1, title-2 besides "movie"
    return app_ctx.extensions["runtime"]


_order = itertools.count(1)


def make(status=lifecycle.PENDING, user="alice", content="movie", quality="720p", key=None, minutes=None):
    """A download row in `status`; `minutes` after T0 is its created_at (later ones are newer)."""
    created = T0 + timedelta(minutes=next(_order) if minutes is None else minutes)
    return Download.create(
        user_id=user,
        content=content,
        quality=quality,
        status=status,
        file_size_bytes=1000,
        idempotency_key=key,
        created_at=created,
    )


# ---------------------------------------------------------------- existing_download


def test_nothing_to_return_for_a_new_title(rt):
    make(quality="480p")  # another quality
    make(content="title-1")  # another title
    make(user="bob")  # another user
    assert admission.existing_download("alice", "movie", "720p", None) is None
    assert admission.existing_download("alice", "movie", "720p", "fresh-key") is None


def test_a_repeated_idempotency_key_returns_its_download(rt):
    keyed = make(key="k-1")
    make(status=lifecycle.PENDING, quality="480p", key="k-2")
    assert admission.existing_download("alice", "movie", "720p", "k-1").id == keyed.id


@pytest.mark.parametrize("status", NOT_HELD)
def test_a_repeated_idempotency_key_returns_its_download_even_when_no_longer_held(rt, status):
    keyed = make(status=status, key="k-1")
    assert admission.existing_download("alice", "movie", "720p", "k-1").id == keyed.id


@pytest.mark.parametrize("content, quality", [("movie", "1080p"), ("title-1", "720p"), ("title-1", "1080p")])
def test_an_idempotency_key_reused_for_another_download_is_refused(rt, content, quality):
    make(key="k-1")
    with pytest.raises(IdempotencyKeyReused) as refused:
        admission.existing_download("alice", content, quality, "k-1")
    assert refused.value.reason == "idempotency_key_reused"
    assert refused.value.message == (
        "The Idempotency-Key 'k-1' was used for movie at 720p; use a new key for a different download."
    )


def test_idempotency_keys_belong_to_their_user(rt):
    make(user="bob", key="k-1", quality="1080p")
    # Alice's key k-1 names none of hers: not refused, and nothing of Bob's is returned.
    assert admission.existing_download("alice", "movie", "720p", "k-1") is None


@pytest.mark.parametrize("status", HELD)
def test_a_held_download_of_the_title_and_quality_is_returned(rt, status):
    held = make(status=status)
    assert admission.existing_download("alice", "movie", "720p", None).id == held.id
    assert admission.existing_download("alice", "movie", "720p", "a-new-key").id == held.id


@pytest.mark.parametrize("status", NOT_HELD)
def test_a_cancelled_or_failed_download_is_not_returned(rt, status):
    make(status=status)
    assert admission.existing_download("alice", "movie", "720p", None) is None


def test_the_held_download_is_returned_not_a_newer_one_that_is_no_longer_held(rt):
    held = make(status=lifecycle.COMPLETED, minutes=1)
    make(status=lifecycle.CANCELLED, minutes=2)
    make(status=lifecycle.FAILED, minutes=3)
    assert admission.existing_download("alice", "movie", "720p", None).id == held.id


def test_of_several_held_downloads_the_newest_is_returned(rt):
    make(status=lifecycle.COMPLETED, minutes=1)
    newest = make(status=lifecycle.PAUSED, minutes=3)
    make(status=lifecycle.PENDING, minutes=2)
    assert admission.existing_download("alice", "movie", "720p", None).id == newest.id


# ---------------------------------------------------------------- check_not_held


def test_check_not_held_ignores_the_download_itself_and_downloads_not_held(rt):
    retried = make(status=lifecycle.PENDING)
    make(status=lifecycle.CANCELLED)
    make(status=lifecycle.FAILED)
    make(status=lifecycle.COMPLETED, quality="480p")
    make(status=lifecycle.COMPLETED, content="title-1")
    make(status=lifecycle.COMPLETED, user="bob")
    admission.check_not_held(retried)  # no refusal


@pytest.mark.parametrize("status", HELD)
def test_check_not_held_refuses_when_another_download_holds_the_title(rt, status):
    make(status=status)
    retried = make(status=lifecycle.PENDING)
    with pytest.raises(AlreadyHeld) as refused:
        admission.check_not_held(retried)
    assert refused.value.reason == "already_held"
    assert refused.value.details == {"status": status}
    assert refused.value.message == f"You already have this title at this quality ({status}) in another download."


# ---------------------------------------------------------------- check_active_cap


def test_no_cap_when_max_active_downloads_is_zero(rt, configure):
    rt = configure(MAX_ACTIVE_DOWNLOADS_PER_USER=0)
    for n in range(12):
        make(
            status=lifecycle.PENDING if n % 2 else lifecycle.DOWNLOADING,
            content="movie",
            quality=["480p", "720p", "1080p"][n % 3],
        )
    admission.check_active_cap(rt, "alice")  # no refusal


@pytest.mark.parametrize("cap", [1, 3])
def test_the_cap_counts_pending_and_downloading_downloads(rt, configure, cap):
    rt = configure(MAX_ACTIVE_DOWNLOADS_PER_USER=cap)
    # The check runs after the new download is recorded: `cap` active ones are allowed.
    for n in range(cap):
        make(status=[lifecycle.PENDING, lifecycle.DOWNLOADING][n % 2], quality=f"q{n}")
    for status in (lifecycle.PAUSED, lifecycle.COMPLETED, lifecycle.FAILED, lifecycle.CANCELLED):
        make(status=status, quality="other")  # not active: not counted
    for n in range(cap + 2):
        make(user="bob", quality=f"q{n}")  # another user's: not counted
    admission.check_active_cap(rt, "alice")
    make(status=lifecycle.DOWNLOADING, quality="one-more")
    with pytest.raises(TooManyActiveDownloads) as refused:
        admission.check_active_cap(rt, "alice")
    assert refused.value.reason == "too_many_active_downloads"
    assert refused.value.details == {"max_active_downloads": cap}
    assert refused.value.message == (
        f"You have {cap} downloads pending or downloading, the most allowed at once: "
        "wait for one to finish, or pause or cancel one."
    )
    with pytest.raises(TooManyActiveDownloads):
        admission.check_active_cap(rt, "bob")  # bob has cap + 2 of his own
