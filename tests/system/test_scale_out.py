"""Scale-out: one API host and two worker hosts (network namespaces) sharing one Redis and one PostgreSQL.

The hosts are Linux network namespaces on a bridge of the test's own (tests/support/netns.py);
Redis, PostgreSQL and nginx (the origin of real files) listen on the bridge's address in the
root namespace, and STORAGE_DIR is one directory all hosts see. A worker host is crashed
(every process killed) or cut off (its link down) while it transfers, and the other host
must take its downloads over.
"""

import hashlib
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
from support import wait_until
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
    "DOWNLOAD_RETRY_MIN_BACKOFF_MS": 100,
    "DOWNLOAD_RETRY_MAX_BACKOFF_MS": 500,
    "DOWNLOAD_MAX_ATTEMPTS": 10,
    "REDIS_TIMEOUT_SECONDS": 1,
    "RATELIMIT_ENABLED": "false",
    "STORAGE_FREE_MARGIN_BYTES": 0,
}
# Waits for what the test does not measure (a claim, a poll) are generous: a busy machine is slow.
SLACK_SECONDS = 15


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


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
def cluster(network, postgres, redis_url, template_url, tmp_path):
    """This test's own database, the API on the api host and one worker on each worker host."""
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
        service.start(worker_hosts=(network["w1"], network["w2"]))  # worker-1 on w1, worker-2 on w2
        yield service, Client(service, tokens["alice"])
    finally:
        for host in ("w1", "w2"):
            network[host].restore()
        service.stop()
        for host in network.hosts.values():  # nothing of this test may outlive it
            host.kill_all()


# ---------------------------------------------------------------- what the hosts did


def runs(service, log_name):
    """{download id: [(attempt, from byte), ...]} of the runs a worker's log says it started."""
    started = {}
    pattern = r"Download (\S+) started \(attempt (\d+), from byte (\d+) "
    for download_id, attempt, from_byte in re.findall(pattern, service.log(log_name)):
        started.setdefault(download_id, []).append((int(attempt), int(from_byte)))
    return started


def completions(service, download_id):
    return service.worker_logs().count(f"[Download Worker] Job completed: {download_id} ")


def running_on(service, log_name, downloads):
    """The downloads `log_name`'s worker holds: downloading, and its log started their latest attempt."""
    started = runs(service, log_name)
    return {
        i: d
        for i, d in downloads.items()
        if d["status"] == "downloading" and any(attempt == d["attempts"] for attempt, _ in started.get(i, []))
    }


def w1_transferring_two(service, client):
    """Predicate: both of w1's threads transfer, each past a fifth of its file (then: those downloads)."""

    def reached():
        on_w1 = running_on(service, "worker-1", client.downloads())
        under_way = [d for d in on_w1.values() if int(d["downloaded_bytes"]) >= SIZE // 5]
        return len(under_way) == THREADS_PER_HOST and on_w1

    return reached


def assert_stored_byte_exact(service, client, ids, media):
    """Every download completed once, its file on disk is the origin's, and the ledger adds up."""
    _, digests = media
    final = client.downloads()
    storage = service.env["STORAGE_DIR"]
    verified = 0
    for download_id in ids:
        download = final[download_id]
        assert download["status"] == "completed", download
        assert completions(service, download_id) == 1, download_id
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


def test_more_downloads_than_one_hosts_threads_keep_both_hosts_busy_before_any_waits(cluster):
    service, client = cluster
    ids = [client.start(QUALITY, content_id) for content_id in TITLES[: 2 * THREADS_PER_HOST + 1]]

    def all_threads_busy_or_one_done():
        downloads = client.downloads()
        statuses = [d["status"] for d in downloads.values()]
        return ("completed" in statuses or statuses.count("downloading") == 2 * THREADS_PER_HOST) and downloads

    # Until the first completes, every download either runs or waits for a thread.
    seen = wait_until(all_threads_busy_or_one_done, timeout=TRANSFER_SECONDS + SLACK_SECONDS, interval=0.05)
    statuses = sorted(d["status"] for d in seen.values())
    per_host = [len(running_on(service, name, seen)) for name in ("worker-1", "worker-2")]
    assert statuses == ["downloading"] * (2 * THREADS_PER_HOST) + ["pending"], (statuses, "running per host", per_host)
    assert per_host == [THREADS_PER_HOST, THREADS_PER_HOST], per_host
    print(f"\n{len(ids)} downloads on 2 hosts × {THREADS_PER_HOST} threads: running per host {per_host}, 1 waiting")


def test_a_killed_worker_hosts_downloads_complete_on_the_other_host(cluster, network, media):
    service, client = cluster
    ids = [client.start(QUALITY, content_id) for content_id in TITLES[: 2 * THREADS_PER_HOST]]

    on_w1 = wait_until(
        w1_transferring_two(service, client),
        timeout=TRANSFER_SECONDS + SLACK_SECONDS,
        interval=0.05,
        message="w1 transferring two downloads past a fifth",
    )
    network["w1"].kill_all()
    killed_at = time.monotonic()
    at_kill = {i: int(d["downloaded_bytes"]) for i, d in client.downloads().items() if i in on_w1}
    client.wait_all(ids, "completed", timeout=STALL_SECONDS + 5 + TRANSFER_SECONDS + SLACK_SECONDS)
    recovery_seconds = time.monotonic() - killed_at

    taken_over = runs(service, "worker-2")
    for download_id, nbytes in at_kill.items():
        (attempt, from_byte) = taken_over[download_id][-1]
        assert attempt >= 2 and from_byte >= nbytes > 0, (download_id, taken_over[download_id], nbytes)
    verified = assert_stored_byte_exact(service, client, ids, media)
    print(
        f"\nw1 killed with {len(at_kill)} transfers running: all {len(ids)} completed once on w2, "
        f"{recovery_seconds:.1f}s from the kill to the last completion "
        f"(bound {STALL_SECONDS + 5 + TRANSFER_SECONDS:.1f}s); {verified} bytes verified"
    )
    assert recovery_seconds < STALL_SECONDS + 5 + TRANSFER_SECONDS


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

    on_w1 = wait_until(
        w1_transferring_two(service, client),
        timeout=TRANSFER_SECONDS + SLACK_SECONDS,
        interval=0.05,
        message="w1 transferring two downloads past a fifth",
    )
    network["w1"].cut()
    cut_at = time.monotonic()
    w1_log_at_cut = len(service.log("worker-1"))
    w1_claims = claims(service, on_w1)
    waiting = [i for i, d in client.downloads().items() if d["status"] == "pending"]

    def w2_completed_them():
        """Every download w1 was transferring or that waited is complete, by w2, while w1 is cut off."""
        completed_by_w2 = service.log("worker-2").count
        return all(completed_by_w2(f"Job completed: {i} ") == 1 for i in [*on_w1, *waiting])

    # w2 runs its own first; w1's are found stalled after STALL_SECONDS (one reconcile pass later)
    # and resumed on w2 once w1's runs, failing to reach the database within
    # DATABASE_TIMEOUT_SECONDS, let go of their `.part`; at worst three transfers on each of w2's threads.
    wait_until(
        w2_completed_them,
        timeout=STALL_SECONDS + 5 + 3 * TRANSFER_SECONDS + SLACK_SECONDS,
        interval=0.05,
        message="w2 completing every download w1 held or that waited, with w1 cut off",
    )
    takeover_seconds = time.monotonic() - cut_at
    assert takeover_seconds > STALL_SECONDS  # the link stayed down longer than the stall time
    cut_off_log = service.log("worker-1")[w1_log_at_cut:]
    for download_id in on_w1:  # w1's runs ended on their unanswered database call, not by finishing
        assert f"Failed to process message transfer_download('{download_id}')" in cut_off_log, download_id
    network["w1"].restore()
    client.wait_all(ids, "completed", timeout=2 * TRANSFER_SECONDS + SLACK_SECONDS)

    late = service.run_on(
        network["w1"], ["-c", LATE_WRITES, *(f"{i}:{token}:{nbytes}" for i, (token, nbytes) in w1_claims.items())]
    )
    assert late.returncode == 0, late.stderr
    assert sorted(late.stdout.split("\n")[:-1]) == sorted(f"{i} progress False completion False" for i in on_w1)
    assert "Job completed" not in service.log("worker-1")[w1_log_at_cut:]
    for download_id in on_w1:
        assert runs(service, "worker-2")[download_id][-1][0] >= 2  # a later attempt, w2's
    verified = assert_stored_byte_exact(service, client, ids, media)  # and the late writes changed nothing
    print(
        f"\nw1 cut off with {len(on_w1)} transfers running and {len(waiting)} waiting: w2 completed all of them "
        f"{takeover_seconds:.1f}s after the cut (the link restored then; all {len(ids)} completed once); "
        f"w1's runs failed on their unanswered database calls; its late progress and completion writes with "
        f"the claims of before the cut, made from w1 after the restore, refused: {late.stdout.split()}; "
        f"{verified} bytes verified"
    )
