"""The storage ledger against real databases (SQLite and PostgreSQL): reserving, settling, reporting."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from downloads_app.downloads import ledger
from downloads_app.downloads.models import StorageLedger
from downloads_app.downloads.refusals import QuotaExceeded
from downloads_app.infra.database import database

QUOTA = 1_000_000_000
SIZE_720 = 1000 * 3333 * 125  # 416,625,000 bytes


@pytest.fixture
def rt(app_ctx, configure):
    return configure(STORAGE_QUOTA_BYTES=QUOTA)


def row(user_id):
    return StorageLedger.get_or_none(StorageLedger.user_id == user_id)


def used(user_id):
    return row(user_id).used_bytes


def test_a_first_reservation_that_fits_the_default_quota_makes_the_row(rt):
    assert row("alice") is None
    ledger.reserve(rt, "alice", SIZE_720)
    assert (used("alice"), row("alice").quota_bytes) == (SIZE_720, None)


def test_a_first_reservation_of_exactly_the_quota_fits(rt):
    ledger.reserve(rt, "alice", QUOTA)
    assert used("alice") == QUOTA
    assert ledger.storage(rt.settings, "alice")["free_bytes"] == 0


def test_a_first_reservation_larger_than_the_quota_is_refused_and_reserves_nothing(rt):
    with pytest.raises(QuotaExceeded) as refused:
        ledger.reserve(rt, "alice", QUOTA + 1)
    assert refused.value.details == {"needed_bytes": str(QUOTA + 1), "free_bytes": str(QUOTA)}
    assert refused.value.message == (
        "Not enough storage: this download needs 1.0 GB (1,000,000,001 bytes) "
        "and 1.0 GB (1,000,000,000 bytes) are free."
    )
    assert ledger.storage(rt.settings, "alice") == {"quota_bytes": QUOTA, "used_bytes": 0, "free_bytes": QUOTA}


def test_later_reservations_fit_only_while_the_sum_stays_within_the_quota(rt):
    ledger.reserve(rt, "alice", SIZE_720)
    ledger.reserve(rt, "alice", SIZE_720)
    free = QUOTA - 2 * SIZE_720  # 166,750,000
    with pytest.raises(QuotaExceeded) as refused:
        ledger.reserve(rt, "alice", SIZE_720)
    assert refused.value.reason == "quota_exceeded"
    assert refused.value.details == {"needed_bytes": "416625000", "free_bytes": "166750000"}
    assert refused.value.message == (
        "Not enough storage: this download needs 416.6 MB (416,625,000 bytes) "
        "and 166.8 MB (166,750,000 bytes) are free."
    )
    assert used("alice") == 2 * SIZE_720  # the refusal changed nothing
    ledger.reserve(rt, "alice", free)  # exactly what is left still fits
    assert used("alice") == QUOTA
    with pytest.raises(QuotaExceeded) as refused:
        ledger.reserve(rt, "alice", 1)
    assert refused.value.details == {"needed_bytes": "1", "free_bytes": "0"}
    assert "needs 1 byte and 0 bytes are free" in refused.value.message


def test_each_user_has_a_quota_of_their_own(rt):
    ledger.reserve(rt, "alice", QUOTA)
    ledger.reserve(rt, "bob", QUOTA)
    assert (used("alice"), used("bob")) == (QUOTA, QUOTA)


@pytest.mark.parametrize("own_quota", [QUOTA // 2, 3 * QUOTA])
def test_a_users_own_quota_overrides_the_default(rt, own_quota):
    ledger.reserve(rt, "alice", 0)  # the row exists
    StorageLedger.update(quota_bytes=own_quota).where(StorageLedger.user_id == "alice").execute()
    ledger.reserve(rt, "alice", own_quota - 10)
    with pytest.raises(QuotaExceeded) as refused:
        ledger.reserve(rt, "alice", 11)
    assert refused.value.details == {"needed_bytes": "11", "free_bytes": "10"}
    ledger.reserve(rt, "alice", 10)
    assert used("alice") == own_quota
    assert ledger.storage(rt.settings, "alice") == {"quota_bytes": own_quota, "used_bytes": own_quota, "free_bytes": 0}
    assert ledger.storage(rt.settings, "bob")["quota_bytes"] == QUOTA  # others keep the default


def test_a_reservation_inside_a_rolled_back_transaction_leaves_nothing(rt):
    ledger.reserve(rt, "alice", 100)
    with pytest.raises(RuntimeError), database.atomic():
        ledger.reserve(rt, "alice", 200)
        assert used("alice") == 300  # visible inside the transaction
        raise RuntimeError("the download change failed")
    assert used("alice") == 100


def test_settle_reserves_and_releases_for_several_users(rt):
    ledger.reserve(rt, "alice", 500)
    ledger.reserve(rt, "bob", 700)
    ledger.settle(rt, {"alice": -200, "bob": 300, "carol": 50, "dave": 0})
    assert (used("alice"), used("bob"), used("carol")) == (300, 1000, 50)
    assert row("dave") is None  # nothing to apply: no row made
    ledger.settle(rt, {"alice": -300, "bob": -1000, "carol": -50})
    assert (used("alice"), used("bob"), used("carol")) == (0, 0, 0)


def test_settle_refuses_a_reservation_that_no_longer_fits(rt):
    ledger.reserve(rt, "alice", QUOTA - 5)
    with pytest.raises(QuotaExceeded) as refused, database.atomic():
        ledger.settle(rt, {"bob": -1, "alice": 6})
    assert refused.value.details == {"needed_bytes": "6", "free_bytes": "5"}
    assert used("alice") == QUOTA - 5


def test_a_release_for_a_user_without_a_row_changes_nothing(rt):
    ledger.settle(rt, {"nobody": -100})
    assert row("nobody") is None


def test_storage_of_a_user_without_reservations(rt):
    assert ledger.storage(rt.settings, "nobody") == {"quota_bytes": QUOTA, "used_bytes": 0, "free_bytes": QUOTA}


def test_storage_reports_free_as_zero_when_more_is_used_than_the_quota(rt, configure):
    ledger.reserve(rt, "alice", 800_000_000)
    rt = configure(STORAGE_QUOTA_BYTES=500_000_000)  # the operator lowered the quota
    assert ledger.storage(rt.settings, "alice") == {
        "quota_bytes": 500_000_000,
        "used_bytes": 800_000_000,
        "free_bytes": 0,
    }
    with pytest.raises(QuotaExceeded) as refused:
        ledger.reserve(rt, "alice", 1)
    assert refused.value.details["free_bytes"] == "0"
    StorageLedger.update(quota_bytes=100).where(StorageLedger.user_id == "alice").execute()
    assert ledger.storage(rt.settings, "alice")["free_bytes"] == 0


def test_lock_changes_no_bytes_and_gives_a_user_without_a_row_an_empty_one(rt):
    ledger.reserve(rt, "alice", 123)
    before = ledger.storage(rt.settings, "nobody")
    with database.atomic():
        ledger.lock("alice")
        ledger.lock("nobody")  # a first device registration locks a user with no download yet
    assert used("alice") == 123
    assert (row("nobody").used_bytes, row("nobody").quota_bytes) == (0, None)
    assert ledger.storage(rt.settings, "nobody") == before


@pytest.mark.parametrize("first_row_exists", [False, True])
def test_concurrent_reservations_never_exceed_the_quota(app, app_ctx, configure, first_row_exists):
    """Threads, each with its own app context, connection and transaction, reserve at once."""
    size, fitting, threads = 1_000, 7, 16
    rt = configure(STORAGE_QUOTA_BYTES=fitting * size)
    if first_row_exists:
        ledger.reserve(rt, "alice", 0)
    database.close()  # this thread's connection back to the pool, nothing held
    start = threading.Barrier(threads)

    def reserve():
        with app.app_context():
            start.wait(timeout=30)
            try:
                with database.atomic():
                    ledger.reserve(rt, "alice", size)
                return "reserved"
            except QuotaExceeded:
                return "refused"
            finally:
                database.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        outcomes = [future.result(timeout=60) for future in [pool.submit(reserve) for _ in range(threads)]]
    # A refusal means the ledger was full: with equal sizes, exactly `fitting` reservations succeed.
    assert outcomes.count("reserved") == fitting and outcomes.count("refused") == threads - fitting
    assert used("alice") == fitting * size
    assert ledger.storage(rt.settings, "alice")["free_bytes"] == 0


def test_concurrent_reservations_and_releases_keep_the_ledger_exact(app, app_ctx, configure):
    """Reservations of several sizes racing releases: the ledger is the sum of what went through."""
    rt = configure(STORAGE_QUOTA_BYTES=50_000)
    ledger.reserve(rt, "alice", 20_000)
    database.close()
    sizes = [3_000, 5_000, 7_000, 11_000] * 4
    releases = [-1_000] * 8
    start = threading.Barrier(len(sizes) + len(releases))

    def apply(nbytes):
        with app.app_context():
            start.wait(timeout=30)
            try:
                with database.atomic():
                    ledger.settle(rt, {"alice": nbytes})
                    return nbytes
            except QuotaExceeded:
                return 0
            finally:
                database.close()

    with ThreadPoolExecutor(max_workers=len(sizes) + len(releases)) as pool:
        applied = [f.result(timeout=60) for f in [pool.submit(apply, n) for n in sizes + releases]]
    assert applied[len(sizes) :] == releases  # releases always go through
    assert any(applied[: len(sizes)]) and not all(applied[: len(sizes)])  # some reservations fit, some not
    assert used("alice") == 20_000 + sum(applied)
    assert used("alice") <= 50_000
