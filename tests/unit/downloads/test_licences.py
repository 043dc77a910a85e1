"""Licences on SQLite and PostgreSQL: granted at completion, shortened by a play, renewed, expired."""

import random
import threading
from collections import Counter
from datetime import date, timedelta

import pytest

from downloads_app.downloads import licences, lifecycle, run_writes, user_actions
from downloads_app.downloads.models import Content, Download, StorageLedger, utcnow
from downloads_app.downloads.refusals import (
    AlreadyHeld,
    DownloadNotFound,
    InvalidTransition,
    LicenceExpired,
    NoStoredFile,
    RenewalsSpent,
)
from downloads_app.infra.event_hub import channel
from downloads_app.infra.metrics import LICENCES_EXPIRED

SIZE_720 = 1000 * 3333 * 125


@pytest.fixture
def rt(app_ctx, movie, redis_client):
    return app_ctx.extensions["runtime"]


def completed(rt, quality="720p", user="alice", content_id="movie"):
    """A download of `content_id` that a worker run claimed and completed, with a file on disk."""
    download, _ = user_actions.start_download(rt, user, content_id, quality)
    run = run_writes.claim(rt, download.id)
    run.sha256 = "0" * 64
    files = rt.files.of(run)
    files.final_path.parent.mkdir(parents=True, exist_ok=True)
    files.final_path.write_bytes(b"offline")
    assert run_writes.complete(rt, run) is not None
    return Download.get_by_id(download.id)


def time_passes(download_id, delta):
    """Move the download's licence times back by `delta`, as if that much time had passed."""
    download = Download.get_by_id(download_id)
    changes = {"license_expires_at": download.license_expires_at - delta}
    if download.played_at is not None:
        changes["played_at"] = download.played_at - delta
    Download.update(**changes).where(Download.id == download_id).execute()


def used_bytes(user="alice"):
    return StorageLedger.get(StorageLedger.user_id == user).used_bytes


def test_a_completion_grants_the_titles_licence_period_or_license_days(rt, configure):
    rt = configure(LICENSE_DAYS=30.0)
    download = completed(rt)
    assert download.license_expires_at - download.completed_at == timedelta(days=30)
    Content.update(license_days=2.5).where(Content.id == "movie").execute()
    other = completed(rt, quality="480p")
    assert other.license_expires_at - other.completed_at == timedelta(days=2.5)
    assert other.played_at is None


def test_the_first_play_starts_the_playback_window_only_when_it_ends_sooner(rt, configure):
    rt = configure(LICENSE_DAYS=30.0, PLAYBACK_WINDOW_HOURS=48.0)
    download = completed(rt)
    before = utcnow()
    played = user_actions.play(rt, "alice", download.id)
    assert played.played_at >= before
    assert played.license_expires_at == played.played_at + timedelta(hours=48)
    # A later play changes nothing.
    again = user_actions.play(rt, "alice", download.id)
    assert (again.played_at, again.license_expires_at) == (played.played_at, played.license_expires_at)
    # A window longer than what the licence has left does not extend it.
    Content.update(playback_window_hours=24.0 * 365).where(Content.id == "movie").execute()
    other = completed(rt, quality="480p")
    assert user_actions.play(rt, "alice", other.id).license_expires_at == other.license_expires_at


def test_play_refuses_a_download_that_is_not_completed_or_whose_licence_ran_out(rt):
    pending, _ = user_actions.start_download(rt, "alice", "movie", "480p")
    with pytest.raises(InvalidTransition):
        user_actions.play(rt, "alice", pending.id)
    download = completed(rt)
    time_passes(download.id, timedelta(days=31))
    with pytest.raises(LicenceExpired):  # past its time, before the expiry job ran
        user_actions.play(rt, "alice", download.id)
    licences.expire_due(rt)
    with pytest.raises(LicenceExpired):
        user_actions.play(rt, "alice", download.id)


def test_expiry_removes_the_file_releases_the_quota_keeps_the_record_and_publishes(rt, redis_client):
    download = completed(rt)
    keep = completed(rt, quality="480p")
    path = rt.files.of(download).final_path
    assert user_actions.stored_file(rt, download)[0] == path
    assert licences.expire_due(rt) == []  # nothing due yet
    time_passes(download.id, timedelta(days=30, seconds=1))
    counted = LICENCES_EXPIRED._value.get()
    pubsub = redis_client.pubsub()
    pubsub.subscribe(channel(redis_client, "alice"))
    pubsub.get_message(timeout=1)
    [expired] = licences.expire_due(rt)
    assert expired.id == download.id and expired.status == lifecycle.EXPIRED
    assert LICENCES_EXPIRED._value.get() == counted + 1
    assert not path.exists() and rt.files.of(keep).final_path.exists()
    assert used_bytes() == keep.file_size_bytes
    event = pubsub.get_message(timeout=5)
    assert event is not None and b'"expired"' in event["data"] and download.id.encode() in event["data"]
    assert Download.get_by_id(download.id).status == lifecycle.EXPIRED
    with pytest.raises(LicenceExpired):
        user_actions.stored_file(rt, Download.get_by_id(download.id))
    assert licences.expire_due(rt) == []  # each download expires once


def test_a_file_past_its_licence_is_not_served_before_the_expiry_job_runs(rt):
    download = completed(rt)
    time_passes(download.id, timedelta(days=30))
    with pytest.raises(LicenceExpired):
        user_actions.stored_file(rt, Download.get_by_id(download.id))


def test_renewing_a_completed_licence_adds_a_period_from_its_expiry_and_forgets_the_play(rt, configure):
    rt = configure(LICENSE_DAYS=30.0, PLAYBACK_WINDOW_HOURS=48.0)
    download = completed(rt)
    played = user_actions.play(rt, "alice", download.id)
    renewed = user_actions.renew(rt, "alice", download.id)
    assert renewed.status == lifecycle.COMPLETED and renewed.played_at is None
    assert renewed.license_expires_at == played.license_expires_at + timedelta(days=30)
    # Past its expiry (not yet expired by the job): a period from now.
    time_passes(download.id, timedelta(days=40))
    before = utcnow()
    again = user_actions.renew(rt, "alice", download.id)
    assert before + timedelta(days=30) <= again.license_expires_at <= utcnow() + timedelta(days=30)


def test_renewals_are_counted_per_account_and_title_and_refused_with_the_day_they_free_up(rt, configure):
    rt = configure(MAX_RENEWALS_PER_YEAR=2)
    download = completed(rt)
    user_actions.renew(rt, "alice", download.id)
    # Another download of the same title shares the title's renewals.
    other = completed(rt, quality="480p")
    user_actions.renew(rt, "alice", other.id)
    with pytest.raises(RenewalsSpent) as refused:
        user_actions.renew(rt, "alice", download.id)
    assert refused.value.details == {"max_renewals": 2, "frees_up_on": date(utcnow().year + 1, 1, 1).isoformat()}
    # Another account has its own.
    user_actions.renew(rt, "bob", completed(rt, user="bob").id)
    # The title's own cap wins over the setting.
    Content.update(max_renewals=3).where(Content.id == "movie").execute()
    user_actions.renew(rt, "alice", download.id)


def test_a_refused_renewal_counts_nothing(rt, configure):
    rt = configure(MAX_RENEWALS_PER_YEAR=1)
    pending, _ = user_actions.start_download(rt, "alice", "movie", "480p")
    with pytest.raises(InvalidTransition):
        user_actions.renew(rt, "alice", pending.id)
    user_actions.renew(rt, "alice", completed(rt).id)  # the one renewal is still there


def test_renewing_an_expired_download_queues_it_again_and_reserves_its_quota(rt, redis_client):
    download = completed(rt)
    time_passes(download.id, timedelta(days=31))
    licences.expire_due(rt)
    assert used_bytes() == 0
    redis_client.delete("dramatiq:downloads.msgs", "dramatiq:downloads")
    renewed = user_actions.renew(rt, "alice", download.id)
    assert renewed.status == lifecycle.PENDING
    assert (renewed.downloaded_bytes, renewed.progress, renewed.attempts) == (0, 0, 0)
    assert (renewed.license_expires_at, renewed.played_at, renewed.completed_at) == (None, None, None)
    assert used_bytes() == download.file_size_bytes
    assert redis_client.hlen("dramatiq:downloads.msgs") == 1
    run = run_writes.claim(rt, download.id)
    done = run_writes.complete(rt, run)
    assert done.license_expires_at == done.completed_at + timedelta(days=rt.settings.license_days)


def test_an_expired_download_is_not_renewed_while_the_title_is_held_again(rt):
    download = completed(rt)
    time_passes(download.id, timedelta(days=31))
    licences.expire_due(rt)
    user_actions.start_download(rt, "alice", "movie", "720p")  # downloaded again meanwhile
    with pytest.raises(AlreadyHeld):
        user_actions.renew(rt, "alice", download.id)
    assert Download.get_by_id(download.id).status == lifecycle.EXPIRED


def test_a_stored_file_of_a_simulated_download_is_still_refused_as_before(rt):
    download, _ = user_actions.start_download(rt, "alice", "movie", "480p")
    run = run_writes.claim(rt, download.id)
    run_writes.complete(rt, run)
    with pytest.raises(NoStoredFile):
        user_actions.stored_file(rt, Download.get_by_id(download.id))


# ---------------------------------------------------------------- races

# Deletes are rare so that most of the loop races the expiry on live licences.
RACING = {"renew": 4, "play": 3, "delete": 0.3}
# Each thread fires at least MIN_ACTIONS, then goes on until the expiry job expired this many
# (the race was real, whatever the machine's speed), and at most MAX_ACTIONS.
EXPIRED_ENOUGH = 20
MIN_ACTIONS, MAX_ACTIONS = 100, 2000


def test_expiry_racing_renewals_plays_and_deletes_keeps_the_ledger_exact_and_no_stray_file(app, rt, titles, configure):
    rt = configure(MAX_RENEWALS_PER_YEAR=100_000, LICENSE_DAYS=30.0)
    ids = [completed(rt, content_id=c, quality=q).id for c in ("movie", *titles(3)) for q in ("480p", "720p", "1080p")]
    for download_id in ids:
        time_passes(download_id, timedelta(days=30, seconds=1))  # all due
    outcomes = []
    stop = threading.Event()

    def expire():
        with app.app_context():
            while not stop.is_set():
                for download in licences.expire_due(rt):
                    outcomes.append(("expire", download.id))
                # What a renewal queued again, a worker's run completes: its new licence is due at once.
                for download in list(Download.select().where(Download.status == lifecycle.PENDING)):
                    run = run_writes.claim(rt, download.id)
                    if run is not None:
                        run.sha256 = "0" * 64
                        rt.files.of(run).final_path.write_bytes(b"again")
                        if run_writes.complete(rt, run) is None:
                            run_writes.discard_files_if_gone(rt, run)
                # Renewed and completed again, they are due at once: one statement, no read that a
                # delete of the other threads could make stale.
                Download.update(license_expires_at=utcnow() - timedelta(seconds=1)).where(
                    Download.status == lifecycle.COMPLETED, Download.license_expires_at > utcnow()
                ).execute()

    def act(seed):
        rng = random.Random(seed)
        with app.app_context():
            for fired in range(MAX_ACTIONS):
                if fired >= MIN_ACTIONS and sum(kind == "expire" for kind, _ in outcomes) >= EXPIRED_ENOUGH:
                    return
                download_id = rng.choice(ids)
                action = rng.choices(list(RACING), weights=list(RACING.values()))[0]
                try:
                    if action == "delete":
                        user_actions.delete_download(rt, "alice", download_id)
                    else:
                        getattr(user_actions, action)(rt, "alice", download_id)
                    outcomes.append((action, download_id))
                except (InvalidTransition, LicenceExpired, DownloadNotFound):
                    pass

    expirer = threading.Thread(target=expire)
    actors = [threading.Thread(target=act, args=(seed,)) for seed in (1, 2)]
    expirer.start()
    for thread in actors:
        thread.start()
    for thread in actors:
        thread.join()
    stop.set()
    expirer.join()

    kinds = Counter(kind for kind, _ in outcomes)
    print(f"\nExpiry raced renewals, plays and deletes: {dict(kinds)}")
    assert kinds["expire"] >= EXPIRED_ENOUGH and kinds["renew"] and kinds["delete"], kinds  # the race was real
    rows = list(Download.select())
    reserving = sum(d.file_size_bytes for d in rows if d.status in lifecycle.RESERVING)
    assert used_bytes() == reserving
    for download in rows:
        assert download.status in (lifecycle.COMPLETED, lifecycle.EXPIRED, lifecycle.PENDING), download.status
        if download.status == lifecycle.EXPIRED:
            assert not rt.files.of(download).final_path.exists(), download.id
    gone = set(ids) - {d.id for d in rows}
    for download_id in gone:
        assert not any(p.name.startswith(download_id) for p in rt.files.directory.rglob("*")), download_id
