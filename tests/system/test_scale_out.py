"""Scale-out: one API host and two worker hosts (network namespaces) sharing one Redis and one PostgreSQL.

The hosts are Linux network namespaces on a bridge of the test's own (tests/support/netns.py);
Redis, PostgreSQL and nginx (the origin of real files) listen on the bridge's address in the
root namespace, and STORAGE_DIR is one directory all hosts see. A worker host is crashed
(every process killed) or cut off (its link down) while it transfers, and the other host
must take its downloads over.
"""

import os
import re
import secrets
import time
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from downloads_app import create_app
from downloads_app.downloads import catalogue
from downloads_app.downloads.lifecycle import RESERVING
from downloads_app.downloads.models import Content
from downloads_app.infra import schema_migrations
from downloads_app.infra.database import database
from downloads_app.web.auth import issue_token
from support import file_sha256, wait_until
from support.client import Client
from support.environment import REQUIRE_POSTGRES, TEST_JWT_SECRET
from support.netns import GATEWAY, NETWORK, Network, require_netns
from support.origins import NGINX, Nginx, require
from support.processes import OwnPostgres, OwnRedis, Service, postgres_bin

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

TITLES = [f"film-{n}" for n in range(1, 7)]
QUALITY = "720p"
SIZE = 4 * 1024 * 1024 + 4099  # 4 MiB and an odd bit
BYTES_PER_SECOND = 1024 * 1024  # per download, so one whole transfer takes TRANSFER_SECONDS
TRANSFER_SECONDS = SIZE / BYTES_PER_SECOND
STALL_SECONDS = 4
THREADS_PER_HOST = 2  # Service starts `dramatiq actors --processes 1 --threads 2`
SETTINGS = {
    "DOWNLOAD_MAX_BYTES_PER_SECOND": BYTES_PER_SECOND,
    "DOWNLOAD_STALL_SECONDS": STALL_SECONDS,
    "DOWNLOAD_RECONCILE_SECONDS": 1,
    "DOWNLOAD_READ_TIMEOUT_SECONDS": 2,  # below DOWNLOAD_STALL_SECONDS
    "DATABASE_TIMEOUT_SECONDS": 2,  # below DOWNLOAD_STALL_SECONDS
    # Retries back off as in production (the tests' environment shortens them): no download
    # here waits out a backoff, so none may be queued again for being old while its message lives.
    "DOWNLOAD_RETRY_MIN_BACKOFF_MS": 1_000,
    "DOWNLOAD_RETRY_MAX_BACKOFF_MS": 60_000,
    "DOWNLOAD_MAX_ATTEMPTS": 10,
    "REDIS_TIMEOUT_SECONDS": 1,
    "RATELIMIT_ENABLED": "false",
    "STORAGE_FREE_MARGIN_BYTES": 0,
}
LOGS = {"w1": "worker-1", "w2": "worker-2"}  # the log of each worker host's worker (start_workers)
# Waits for what the test does not measure (a claim, a poll) are generous: a busy machine is slow.
SLACK_SECONDS = 15


# ---------------------------------------------------------------- the hosts and what they share


@pytest.fixture(scope="module")
def network():
    require_netns()
    with Network(api=11, w1=21, w2=22) as hosts:
        yield hosts


@pytest.fixture(scope="module")
def redis_url(network, tmp_path_factory):
    server = OwnRedis(tmp_path_factory.mktemp("redis"), host=GATEWAY).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def postgres(network):
    if not postgres_bin("initdb"):
        if REQUIRE_POSTGRES:
            pytest.fail("initdb not found and REQUIRE_POSTGRES=1")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    cluster = OwnPostgres(host=GATEWAY, trusted_network=NETWORK).init().start()
    yield cluster
    cluster.remove()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """One file of random bytes per title, and its SHA-256."""
    root = tmp_path_factory.mktemp("media")
    digests = {}
    for content_id in TITLES:
        (root / f"{content_id}.mp4").write_bytes(os.urandom(SIZE))
        digests[content_id] = file_sha256(root / f"{content_id}.mp4")
    return root, digests


@pytest.fixture(scope="module")
def origin(network, media):
    require(NGINX, "nginx is not installed (Debian: apt-get install nginx-light)")
    with Nginx(media[0], host=GATEWAY) as server:
        yield server


@pytest.fixture(scope="module")
def template_url(postgres, redis_url, origin):
    """A migrated database with the titles and their sources at the origin, copied for each test."""
    with closing(psycopg2.connect(postgres.url)) as admin:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute('CREATE DATABASE "scale_out"')
    url = postgres.url.rsplit("/", 1)[0] + "/scale_out"
    app = create_app({"TESTING": True, "DATABASE_URL": url, "REDIS_URL": redis_url, "JWT_SECRET": TEST_JWT_SECRET})
    try:
        with app.app_context():
            schema_migrations.upgrade()
            for content_id in TITLES:
                Content.create(id=content_id, title=content_id, duration_seconds=600, qualities=QUALITY)
                # No SHA-256 given: the worker verifies nothing, so the test's own check sees any bad byte.
                catalogue.set_source(
                    app.extensions["runtime"].settings, content_id, QUALITY, f"{origin.url}/{content_id}.mp4"
                )
            app.config["tokens"] = {"alice": issue_token("alice")}
    finally:
        database.close_all()  # a template must have no connections
        app.extensions["broker"].client.close()
    return url, app.config["tokens"]


@pytest.fixture
def api(network, postgres, redis_url, template_url, tmp_path):
    """This test's own database and the API on the api host; (the service, alice's client)."""
    template, tokens = template_url
    name = f"t_{secrets.token_hex(4)}"
    with closing(psycopg2.connect(postgres.url)) as admin:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}" TEMPLATE "scale_out"')
    service = Service(
        template.rsplit("/", 1)[0] + f"/{name}",
        redis_url,
        tmp_path,
        api_host=network["api"],
        STORAGE_DIR=tmp_path / "storage",
        **SETTINGS,
    )
    try:
        service.start(worker_hosts=())
        yield service, Client(service, tokens["alice"])
    finally:
        for host in LOGS:
            network[host].restore()
        service.stop()
        for host in network.hosts.values():  # nothing of this test may outlive it
            host.kill_all()


def start_workers(service, network):
    """One worker on each worker host, booting side by side: worker-1 on w1, worker-2 on w2."""
    names = [service.start_worker(network[host], wait=False) for host in LOGS]
    for name in names:
        service.wait_worker_ready(name)


@pytest.fixture
def cluster(api, network):
    """The API and one worker on each worker host."""
    start_workers(api[0], network)
    return api


# ---------------------------------------------------------------- what the hosts did


def runs(service, log_name):
    """{download id: [(attempt, from byte), ...]} of the runs a worker's log says it started."""
    started = {}
    pattern = r"Download (\S+) started \(attempt (\d+), from byte (\d+) "
    for download_id, attempt, from_byte in re.findall(pattern, service.log(log_name)):
        started.setdefault(download_id, []).append((int(attempt), int(from_byte)))
    return started


def running_on(service, log_name, downloads):
    """The downloads `log_name`'s worker holds: downloading, and its log started their latest attempt."""
    started = runs(service, log_name)
    return {
        i: d
        for i, d in downloads.items()
        if d["status"] == "downloading" and any(attempt == d["attempts"] for attempt, _ in started.get(i, []))
    }


def a_host_transferring_two(service, client):
    """Wait until one worker host's threads both transfer, each past a fifth of its file.

    Returns (that host, the other, {id: download} of its transfers)."""

    def reached():
        downloads = client.downloads()
        for host, other in (("w1", "w2"), ("w2", "w1")):
            running = running_on(service, LOGS[host], downloads)
            under_way = [d for d in running.values() if int(d["downloaded_bytes"]) >= SIZE // 5]
            if len(under_way) == THREADS_PER_HOST:
                return host, other, running
        return None

    return wait_until(
        reached, timeout=TRANSFER_SECONDS + SLACK_SECONDS, interval=0.05, message="a host transferring two"
    )


def assert_stored_byte_exact(service, client, ids, media):
    """Every download completed once, its file on disk is the origin's, and the ledger adds up."""
    _, digests = media
    final = client.downloads()
    storage = service.env["STORAGE_DIR"]
    logs = service.logs_with_completions(ids)
    verified = 0
    for download_id in ids:
        download = final[download_id]
        assert download["status"] == "completed", download
        assert logs.count(f"[Download Worker] Job completed: {download_id} ") == 1, download_id
        assert int(download["downloaded_bytes"]) == int(download["file_size_bytes"]) == SIZE
        paths = [p for p in _files(storage) if p.name == download_id]
        assert len(paths) == 1, paths
        assert paths[0].stat().st_size == SIZE
        assert file_sha256(paths[0]) == digests[download["content_id"]] == download["sha256"], download_id
        verified += SIZE
    assert not [p for p in _files(storage) if p.suffix == ".part"]
    ledger = client.http.get(f"{client.api}/storage", timeout=10).json()
    reserving = sum(int(d["file_size_bytes"]) for d in final.values() if d["status"] in RESERVING)
    assert int(ledger["used_bytes"]) == reserving == SIZE * len(ids)
    return verified


def _files(storage):
    return [p for p in Path(storage).rglob("*") if p.is_file()]


# ---------------------------------------------------------------- the scenarios


def test_more_downloads_than_one_hosts_threads_keep_both_hosts_busy_before_any_waits(api, network):
    service, client = api
    # All queued before the workers boot: the first to fetch may take no more than it can run.
    ids = [client.start(QUALITY, content_id) for content_id in TITLES[: 2 * THREADS_PER_HOST + 1]]
    start_workers(service, network)

    def all_threads_busy_or_one_done():
        downloads = client.downloads()
        statuses = [d["status"] for d in downloads.values()]
        # A worker logs a run's start just after its claim: wait for the logs to name every claimed one.
        logged = sum(len(running_on(service, name, downloads)) for name in LOGS.values())
        all_busy = statuses.count("downloading") == logged == 2 * THREADS_PER_HOST
        return ("completed" in statuses or all_busy) and downloads

    # Until the first completes, every download either runs or waits for a thread.
    seen = wait_until(all_threads_busy_or_one_done, timeout=TRANSFER_SECONDS + SLACK_SECONDS, interval=0.05)
    statuses = sorted(d["status"] for d in seen.values())
    per_host = [len(running_on(service, name, seen)) for name in LOGS.values()]
    assert statuses == ["downloading"] * (2 * THREADS_PER_HOST) + ["pending"], (statuses, "running per host", per_host)
    assert per_host == [THREADS_PER_HOST, THREADS_PER_HOST], per_host
    print(f"\n{len(ids)} downloads on 2 hosts × {THREADS_PER_HOST} threads: running per host {per_host}, 1 waiting")


def test_a_killed_worker_hosts_downloads_complete_on_the_other_host(cluster, network, media):
    service, client = cluster
    ids = [client.start(QUALITY, content_id) for content_id in TITLES[: 2 * THREADS_PER_HOST]]

    killed, survivor, running = a_host_transferring_two(service, client)
    network[killed].kill_all()
    killed_at = time.monotonic()
    at_kill = {i: int(d["downloaded_bytes"]) for i, d in client.downloads().items() if i in running}
    bound = STALL_SECONDS + 5 + TRANSFER_SECONDS
    client.wait_all(ids, "completed", timeout=bound + SLACK_SECONDS)
    recovery_seconds = time.monotonic() - killed_at

    taken_over = runs(service, LOGS[survivor])
    for download_id, nbytes in at_kill.items():
        (attempt, from_byte) = taken_over[download_id][-1]
        assert attempt >= 2 and from_byte >= nbytes > 0, (download_id, taken_over[download_id], nbytes)
    verified = assert_stored_byte_exact(service, client, ids, media)
    print(
        f"\n{killed} killed with {len(at_kill)} transfers running: all {len(ids)} completed once, on {survivor}, "
        f"{recovery_seconds:.1f}s from the kill to the last completion (bound {bound:.1f}s); {verified} bytes verified"
    )
    assert recovery_seconds < bound


def claims(service, ids):
    """{download id: (claim token, downloaded bytes)} as the database has them now."""
    with closing(psycopg2.connect(service.env["DATABASE_URL"])) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT id, claim_token, downloaded_bytes FROM downloads WHERE id = ANY(%s)", (list(ids),))
        return {download_id: (token, nbytes) for download_id, token, nbytes in cursor.fetchall()}


# Run on the cut-off host once its link is back: the writes its runs would make next, with their
# claims of before the cut (argv: id:claim:bytes ...), through the worker's own code and settings.
LATE_WRITES = """
import sys
from downloads_app import create_app
from downloads_app.downloads import run_writes
from downloads_app.downloads.models import Download
app = create_app()
with app.app_context():
    rt = app.extensions["runtime"]
    for download_id, claim_token, nbytes in (argument.split(":") for argument in sys.argv[1:]):
        run = Download.get_by_id(download_id)
        run.claim_token, run.status, run.downloaded_bytes = claim_token, "downloading", int(nbytes)
        progress = run_writes.record_progress(rt, run, int(nbytes) + 1)
        completion = run_writes.complete(rt, run)
        print(download_id, "progress", bool(progress), "completion", completion is not None)
"""


def test_a_cut_off_worker_hosts_downloads_move_to_the_other_host_and_its_late_writes_are_refused(
    cluster, network, media
):
    service, client = cluster
    ids = [client.start(QUALITY, content_id) for content_id in TITLES]

    cut_off, survivor, running = a_host_transferring_two(service, client)
    network[cut_off].cut()
    cut_at = time.monotonic()
    log_at_cut = len(service.log(LOGS[cut_off]))
    old_claims = claims(service, running)
    waiting = [i for i, d in client.downloads().items() if d["status"] == "pending"]

    def survivor_completed_them():
        """Every download the cut-off host was transferring, or that waited, is complete, by the survivor."""
        completed_by_survivor = service.log(LOGS[survivor]).count
        return all(completed_by_survivor(f"Job completed: {i} ") == 1 for i in [*running, *waiting])

    # The survivor runs its own first; the cut-off host's are found stalled after STALL_SECONDS
    # (one reconcile pass later) and resumed once its runs, failing to reach the database within
    # DATABASE_TIMEOUT_SECONDS, let go of their `.part`; at worst three transfers per thread.
    wait_until(
        survivor_completed_them,
        timeout=STALL_SECONDS + 5 + 3 * TRANSFER_SECONDS + SLACK_SECONDS,
        interval=0.05,
        message=f"{survivor} completing every download {cut_off} was transferring or that waited",
    )
    takeover_seconds = time.monotonic() - cut_at
    assert takeover_seconds > STALL_SECONDS  # the link stayed down longer than the stall time
    cut_off_log = service.log(LOGS[cut_off])[log_at_cut:]
    for download_id in running:  # its runs ended on their unanswered database call, not by finishing
        assert f"Failed to process message transfer_download('{download_id}')" in cut_off_log, download_id
    network[cut_off].restore()
    client.wait_all(ids, "completed", timeout=2 * TRANSFER_SECONDS + SLACK_SECONDS)

    late = service.run_on(
        network[cut_off], ["-c", LATE_WRITES, *(f"{i}:{token}:{nbytes}" for i, (token, nbytes) in old_claims.items())]
    )
    assert late.returncode == 0, late.stderr
    assert sorted(late.stdout.split("\n")[:-1]) == sorted(f"{i} progress False completion False" for i in running)
    assert "Job completed" not in service.log(LOGS[cut_off])[log_at_cut:]
    for download_id in running:
        assert runs(service, LOGS[survivor])[download_id][-1][0] >= 2  # a later attempt, the survivor's
    verified = assert_stored_byte_exact(service, client, ids, media)  # and the late writes changed nothing
    print(
        f"\n{cut_off} cut off with {len(running)} transfers running and {len(waiting)} waiting: {survivor} "
        f"completed all of them {takeover_seconds:.1f}s after the cut (the link restored then; all {len(ids)} "
        f"completed once); {cut_off}'s runs failed on their unanswered database calls; its late progress and "
        f"completion writes with the claims of before the cut, made from {cut_off} after the restore, refused: "
        f"{late.stdout.split()}; {verified} bytes verified"
    )
