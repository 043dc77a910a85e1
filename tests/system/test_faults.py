"""Crashes and outages with real processes: a killed or stopped worker, Redis and PostgreSQL restarts."""

import time
from datetime import datetime

import pytest
import redis
import requests

from downloads_app import create_app
from downloads_app.downloads.models import Content
from downloads_app.infra import schema_migrations
from downloads_app.infra.database import database
from downloads_app.web.auth import issue_token
from support import wait_until
from support.client import Client
from support.environment import PROCESS_REDIS_URL, REQUIRE_POSTGRES, TEST_JWT_SECRET
from support.processes import OwnPostgres, OwnRedis, Service, postgres_bin

pytestmark = pytest.mark.faults

STALL_SECONDS = 3
FAST_RECOVERY = {
    "DOWNLOAD_SIMULATED_SECONDS": 4,
    "DOWNLOAD_STALL_SECONDS": STALL_SECONDS,
    "DOWNLOAD_RECONCILE_SECONDS": 0.5,
    "DOWNLOAD_RETRY_MIN_BACKOFF_MS": 100,
    "DOWNLOAD_RETRY_MAX_BACKOFF_MS": 500,
    "DOWNLOAD_MAX_ATTEMPTS": 5,
    "REDIS_TIMEOUT_SECONDS": 1,
}


@pytest.fixture
def service(database_url, movie, tmp_path):
    service = Service(database_url, PROCESS_REDIS_URL, tmp_path, **FAST_RECOVERY).start()
    yield service
    service.stop()


def completions(log, download_id):
    return log.count(f"[Download Worker] Job completed: {download_id}")


def test_sigkilled_worker_its_downloads_complete_once_resuming_from_their_bytes(service, token, titles):
    client = Client(service, token("alice"))
    ids = [client.start(content_id=content_id) for content_id in titles(4)]

    def two_under_way():
        running = [d for d in client.downloads().values() if d["status"] == "downloading" and d["progress"] >= 20]
        return running if len(running) == 2 else None

    in_flight = wait_until(two_under_way, timeout=15, interval=0.05, message="two transfers under way")
    service.kill_worker()
    killed_at = time.monotonic()
    service.worker.wait(timeout=10)
    at_kill = {d["id"]: int(d["downloaded_bytes"]) for d in in_flight}
    service.start_worker()
    final = client.wait_all(ids, "completed", timeout=STALL_SECONDS + 25)
    recovery_seconds = time.monotonic() - killed_at

    logs = service.logs_with_completions(ids)
    assert len(final) == 4
    for download_id in ids:
        assert completions(logs, download_id) == 1, download_id
        assert final[download_id]["downloaded_bytes"] == final[download_id]["file_size_bytes"]
    new_worker = service.log("worker-2")
    for download_id, nbytes in at_kill.items():
        resumed_from = int(new_worker.split(f"Download {download_id} started (attempt 2, from byte ")[1].split(" ")[0])
        assert resumed_from >= nbytes > 0
        assert final[download_id]["attempts"] == 2
    print(
        f"\nSIGKILL with {len(at_kill)} transfers running and {len(ids) - len(at_kill)} queued: "
        f"all {len(ids)} completed once, {recovery_seconds:.1f}s from kill to the last completion"
    )
    assert recovery_seconds < STALL_SECONDS + 4 + 8  # stall detection, then at most one 4 s transfer


def logged_at(log, text):
    """When the log line holding `text` was written (epoch seconds), from its `[%Y-%m-%d %H:%M:%S,%f]` stamp."""
    line = next(line for line in log.splitlines() if text in line)
    return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()


@pytest.mark.parametrize("prefetch", [None, 4], ids=["one-per-thread", "operator-prefetch-4"])
def test_a_killed_workers_running_and_prefetched_downloads_run_again_once_within_the_stall_time(
    database_url, movie, titles, token, tmp_path, prefetch
):
    transfer = 2
    # A long backoff: a pending download's age says nothing of whether its message is lost.
    settings = {**FAST_RECOVERY, "DOWNLOAD_SIMULATED_SECONDS": transfer, "DOWNLOAD_RETRY_MAX_BACKOFF_MS": 60_000}
    if prefetch:
        settings["dramatiq_queue_prefetch"] = prefetch
    service = Service(database_url, PROCESS_REDIS_URL, tmp_path, **settings).start()
    try:
        client = Client(service, token("alice"))
        ids = [client.start(content_id=content_id) for content_id in titles(6)]

        def two_under_way_four_waiting():
            current = client.downloads().values()
            running = [d["id"] for d in current if d["status"] == "downloading" and d["progress"] >= 20]
            waiting = [d["id"] for d in current if d["status"] == "pending"]
            return (running, waiting) if (len(running), len(waiting)) == (2, 4) else None

        running, waiting = wait_until(two_under_way_four_waiting, timeout=15, interval=0.05, message="two under way")
        with redis.Redis.from_url(PROCESS_REDIS_URL) as broker:
            # One message per thread: the four that cannot start stay on the queue for any worker.
            assert broker.llen("dramatiq:downloads") == 6 - (prefetch or 2)
        service.kill_worker()
        killed_at = time.time()
        service.worker.wait(timeout=10)
        service.start_worker()
        booted = time.time() - killed_at
        client.wait_all(ids, "completed", timeout=60)

        logs, new_worker = service.logs_with_completions(ids), service.log("worker-2")
        assert {i: completions(logs, i) for i in ids} == dict.fromkeys(ids, 1)
        took = {i: logged_at(new_worker, f"Job completed: {i}") - killed_at for i in ids}
        print(
            f"\nprefetch {prefetch or 'one per thread'}: new worker ready {booted:.1f}s after the kill; "
            f"kill to completion: running {max(took[i] for i in running):.1f}s, "
            f"prefetched or queued {max(took[i] for i in waiting):.1f}s"
        )
        # Requeued within the stall time (+ a reconcile pass); the new worker's two threads then run
        # the six in three rounds, the stalled two resuming from their bytes.
        assert max(took.values()) < booted + STALL_SECONDS + 3 * transfer + 5
    finally:
        service.stop()


def test_sigterm_hands_running_downloads_back_and_a_new_worker_finishes_them(service, token, titles):
    client = Client(service, token("alice"))
    ids = [client.start(content_id=content_id) for content_id in titles(2)]
    wait_until(
        lambda: all(d["status"] == "downloading" and d["progress"] >= 20 for d in client.downloads().values()),
        timeout=15,
        interval=0.05,
        message="both transfers under way",
    )
    service.terminate_worker()
    assert service.worker.wait(timeout=15) == 0
    stopped = client.downloads()
    assert {d["status"] for d in stopped.values()} == {"pending"}  # none left downloading
    assert all(int(d["downloaded_bytes"]) > 0 for d in stopped.values())
    assert service.log("worker-1").count("at shutdown, from byte") == 2
    service.start_worker()
    client.wait_all(ids, "completed", timeout=15)
    for download_id in ids:
        assert (
            f"Download {download_id} started (attempt 2, from byte {stopped[download_id]['downloaded_bytes']} "
            in service.log("worker-2")
        )


def test_redis_restart_that_lost_every_message_loses_no_accepted_download(database_url, movie, titles, token, tmp_path):
    own_redis = OwnRedis(tmp_path / "redis").start()
    service = None
    try:  # a service that fails to start must not leak the Redis started for it
        service = Service(
            database_url, own_redis.url, tmp_path, **{**FAST_RECOVERY, "DOWNLOAD_SIMULATED_SECONDS": 2}
        ).start()
        client = Client(service, token("alice"))
        *started, refused_title, later_title = titles(6)
        ids = [client.start(content_id=content_id) for content_id in started]
        wait_until(lambda: any(d["progress"] >= 20 for d in client.downloads().values()), timeout=15, interval=0.05)
        own_redis.stop()
        refused = client.http.post(
            f"{client.api}/downloads/start", json={"content_id": refused_title, "quality": "480p"}, timeout=10
        )
        assert refused.status_code == 503 and refused.json()["success"] is False
        assert set(client.downloads()) == set(ids)  # reads still served from the database
        own_redis.start()  # empty: no persistence
        ids.append(client.start(content_id=later_title))
        client.wait_all(ids, "completed", timeout=30)
        logs = service.logs_with_completions(ids)
        assert {i: completions(logs, i) for i in ids} == dict.fromkeys(ids, 1)
    finally:
        if service is not None:
            service.stop()
        own_redis.stop()


@pytest.fixture
def own_postgres():
    if not postgres_bin("initdb"):
        if REQUIRE_POSTGRES:
            pytest.fail("initdb not found and REQUIRE_POSTGRES=1")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    cluster = OwnPostgres().init().start()
    yield cluster
    cluster.remove()


@pytest.mark.postgres
def test_postgres_restart_answers_503_meanwhile_and_every_download_completes(own_postgres, tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": own_postgres.url,
            "REDIS_URL": PROCESS_REDIS_URL,
            "JWT_SECRET": TEST_JWT_SECRET,
        }
    )
    with app.app_context():
        schema_migrations.upgrade()
        for content_id in ("movie", "movie-2", "movie-3"):
            Content.create(id=content_id, title=content_id, duration_seconds=1000, qualities="480p,720p")
        token = issue_token("alice")
    database.close_all()
    app.extensions["broker"].client.close()
    with redis.Redis.from_url(PROCESS_REDIS_URL) as client:
        client.flushdb()
    service = Service(
        own_postgres.url, PROCESS_REDIS_URL, tmp_path, **{**FAST_RECOVERY, "DOWNLOAD_SIMULATED_SECONDS": 2}
    ).start()
    try:
        client = Client(service, token)
        ids = [client.start(content_id=content_id) for content_id in ("movie", "movie-2", "movie-3")]
        wait_until(lambda: any(d["progress"] >= 20 for d in client.downloads().values()), timeout=15, interval=0.05)
        own_postgres.stop()
        for _ in range(3):  # pooled connections die one by one: every request answers 503
            response = client.http.get(f"{client.api}/downloads", timeout=10)
            assert response.status_code == 503
            assert response.json() == {"success": False, "message": "The database is unavailable; try again shortly."}
        assert requests.get(f"{service.base}/readyz", timeout=10).status_code == 503
        own_postgres.start()
        client.wait_all(ids, "completed", timeout=40)
        logs = service.logs_with_completions(ids)
        assert {i: completions(logs, i) for i in ids} == dict.fromkeys(ids, 1)
    finally:
        service.stop()
