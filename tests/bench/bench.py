"""`make bench`: each figure of the service beside a baseline measured in the same run, as a ratio."""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import urlparse

import psycopg2
import redis
import requests

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PY_BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from downloads_app import create_app  # noqa: E402
from downloads_app.downloads.models import Content, Download, utcnow  # noqa: E402
from downloads_app.infra import schema_migrations  # noqa: E402
from downloads_app.infra.database import database  # noqa: E402
from downloads_app.infra.embedded_redis import start_redis_server  # noqa: E402
from downloads_app.web.auth import issue_token  # noqa: E402
from support import free_port, wait_until  # noqa: E402

SECRET = "bench-" + secrets.token_hex(32)
WRK_SECONDS = 8
CONNECTIONS = 50
LIST_CONNECTIONS = 4
WORKER_JOBS = 2000
PICKUP_SAMPLES = 40
# Titles bench-0 … bench-N, each in 480p and 720p: every start of a run is a new download (a
# repeat of a held title and quality would just return it).
START_TITLES = 50_000
WRK_THREADS = 2
# The limiter runs, as in production, but never refuses: the figures are the service's.
NO_LIMIT = "1000000000 per minute"
SSE_STREAMS = 5000
TRANSFER_BYTES = 200 * 1024 * 1024 + 4321  # 200 MB and a bit
TRANSFER_RUNS = 5
MB = 1_000_000


class Run:
    """One benchmark run against one database, with its own Redis, gunicorn and worker."""

    def __init__(self, backend, workdir):
        self.backend, self.workdir = backend, workdir
        self.redis_port = free_port()
        self.redis = start_redis_server(self.redis_port, workdir / "redis", appendonly=False)
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.database_url, self.pg_name = self._database()
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "dramatiq_prom_db")},
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "JWT_SECRET": SECRET,
            "STORAGE_QUOTA_BYTES": str(10**18),
            "GUNICORN_ACCESS_LOG": "/dev/null",
            "GUNICORN_LOG_LEVEL": "warning",
            "DOWNLOAD_SIMULATED_SECONDS": "0",
            "PYTHONUNBUFFERED": "1",
            "STORAGE_DIR": str(workdir / "storage"),
            "dramatiq_prom_port": str(free_port()),
            "dramatiq_prom_db": str(workdir / "worker-metrics"),
            "RATELIMIT_START": NO_LIMIT,
            "RATELIMIT_WRITES": NO_LIMIT,
        }
        self.app = create_app({"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url, "JWT_SECRET": SECRET})
        with self.app.app_context():
            schema_migrations.upgrade()
            Content.create(id="bench-title", title="Bench", duration_seconds=600, qualities="480p,720p")
            with database.atomic():
                titles = [
                    {
                        "id": f"bench-{n}",
                        "title": f"Bench {n}",
                        "duration_seconds": 600,
                        "qualities": "480p,720p",
                        "created_at": utcnow(),
                    }
                    for n in range(START_TITLES)
                ]
                for batch in range(0, START_TITLES, 1000):
                    Content.insert_many(titles[batch : batch + 1000]).execute()
            self.token = issue_token("bench-user", ttl_seconds=3600)
            self.lister_token = issue_token("lister", ttl_seconds=3600)
        self.processes = []

    def _database(self):
        if self.backend == "sqlite":
            return f"sqlite:///{self.workdir / 'bench.sqlite3'}", None
        admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
        name = f"downloads_bench_{secrets.token_hex(4)}"
        with closing(psycopg2.connect(admin_url)) as admin:
            admin.autocommit = True
            admin.cursor().execute(f'CREATE DATABASE "{name}"')
        return urlparse(admin_url)._replace(path=f"/{name}").geturl(), (admin_url, name)

    def spawn(self, name, command, **env):
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (closed once the child has it)
        process = subprocess.Popen(
            command, cwd=ROOT, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        process.log_path = self.workdir / f"{name}.log"
        self.processes.append(process)
        return process

    def gunicorn(self, workers=2, connections=1000):
        port = free_port()
        process = self.spawn(
            f"api-{port}",
            [str(PY_BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
            WEB_CONCURRENCY=str(workers),
            WORKER_CONNECTIONS=str(connections),
        )
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/readyz"), 30, message="gunicorn")
        return process, f"http://127.0.0.1:{port}"

    def worker(self, module="actors", path=None):
        command = [str(PY_BIN / "dramatiq"), module, "--processes", "1", "--threads", "2"]
        if path:
            command += ["--path", str(path)]
        process = self.spawn(f"worker-{module}", command)
        wait_until(lambda: "Worker process is ready" in process.log_path.read_text(), 30, message="the worker")
        return process

    @staticmethod
    def stop(process):
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def close(self):
        for process in self.processes:
            if process.poll() is None:
                self.stop(process)
        if hasattr(database.obj, "close_all"):
            database.close_all()
        self.redis.terminate()
        self.redis.wait()
        if self.pg_name:
            admin_url, name = self.pg_name
            with closing(psycopg2.connect(admin_url)) as admin:
                admin.autocommit = True
                admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _answers(url):
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def wrk(url, token, script="get.lua", connections=CONNECTIONS, delay_ms=0, seconds=WRK_SECONDS):
    """Requests per second, p50 and p99 in ms, and non-2xx answers of one wrk run."""
    env = {**os.environ, "BENCH_TOKEN": token, "BENCH_DELAY_MS": str(delay_ms), "BENCH_THREADS": str(WRK_THREADS)}
    out = subprocess.run(
        ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(HERE / script), url],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout

    def millis(label):
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": millis("50%"),
        "p99_ms": millis("99%"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def seed_downloads(run, total, user_share=0.01):
    """Fill the table to `total` rows; `lister` owns `user_share` of them, half completed."""
    now = utcnow().strftime("%Y-%m-%d %H:%M:%S")
    every = int(1 / user_share)
    with run.app.app_context(), database.connection_context():
        have = Download.select().count()
        start, end = have, total
        if end <= start:
            return
        if run.backend == "sqlite":
            series = f"WITH RECURSIVE n(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM n WHERE i < {end - 1}) "
            source, number = "n", "i"
            hex_id = "lower(hex(randomblob(16)))"
            created = f"datetime('{now}', '-' || i || ' seconds')"
            mod = lambda a, b: f"({a} % {b})"  # noqa: E731
        else:
            series, source, number = "", f"generate_series({start}, {end - 1}) AS g(i)", "i"
            hex_id = "md5(random()::text || i::text)"
            created = f"TIMESTAMP '{now}' - make_interval(secs => i)"
            mod = lambda a, b: f"mod({a}, {b})"  # noqa: E731  (psycopg2 reads % as a placeholder)
        database.execute_sql(
            f"""{series}INSERT INTO downloads (id, user_id, content_id, quality, status, progress, file_size_bytes,
                downloaded_bytes, attempts, created_at, updated_at)
            SELECT {hex_id},
                   CASE WHEN {mod(number, every)} = 0 THEN 'lister' ELSE 'user-' || {mod(number, 5000)} END,
                   'bench-title', '480p',
                   CASE WHEN {mod(number, 2)} = 0 THEN 'completed' ELSE 'cancelled' END,
                   100, 1000, 1000, 1, {created}, {created}
            FROM {source}"""
        )
        if run.backend == "postgres":  # as autovacuum would have: statistics and the visibility map
            database.execute_sql("VACUUM ANALYZE downloads")


def bench_lists(run, base):
    """p99 of the first page at a load that does not saturate the server (4 connections):
    at 50 the p99 measures queueing in gunicorn, not the query."""
    seed_downloads(run, 1_000)
    url = f"{base}/api/downloads?status=completed&page=1"
    small = wrk(url, run.lister_token, connections=LIST_CONNECTIONS)
    started = time.monotonic()
    seed_downloads(run, 1_000_000)
    print(f"  seeded 1,000,000 rows in {time.monotonic() - started:.0f}s", flush=True)
    large = wrk(url, run.lister_token, connections=LIST_CONNECTIONS)
    return small, large


def bench_api(run, base):
    noop = wrk(f"{base}/healthz", run.token)
    start = wrk(f"{base}/api/downloads/start", run.token, script="start.lua")
    # Half the peak rate: each of the 50 connections waits so that together they send half.
    half_rate = start["rps"] / 2
    delay = max(CONNECTIONS / half_rate * 1000 - start["p50_ms"], 0)
    # Another user: the paced run's titles must not be ones the peak run already started.
    with run.app.app_context():
        paced_token = issue_token("bench-paced", ttl_seconds=3600)
    paced = wrk(f"{base}/api/downloads/start", paced_token, script="start.lua", delay_ms=int(delay))
    some_id = requests.get(
        f"{base}/api/downloads?page_size=1", headers={"Authorization": f"Bearer {run.token}"}, timeout=5
    ).json()["downloads"][0]["id"]
    progress = wrk(f"{base}/api/downloads/{some_id}/progress", run.token)
    return noop, start, paced, progress


def drain_seconds(run, enqueue, done):
    started = time.monotonic()
    enqueue()
    wait_until(done, 300, message="the queue to drain")
    return time.monotonic() - started


def bench_worker(run):
    import dramatiq

    client = redis.Redis.from_url(run.redis_url)
    broker = run.app.extensions["broker"]

    noop_worker = run.worker("noop_actor", path=HERE)

    def enqueue_noops():
        for n in range(WORKER_JOBS):
            broker.enqueue(
                dramatiq.Message(queue_name="bench-noop", actor_name="noop", args=(str(n),), kwargs={}, options={})
            )

    noop_seconds = drain_seconds(run, enqueue_noops, lambda: client.hlen("dramatiq:bench-noop.msgs") == 0)
    run.stop(noop_worker)

    with run.app.app_context(), database.connection_context():
        Download.delete().execute()
        ids = []
        for _ in range(WORKER_JOBS):
            download = Download.create(
                user_id="worker-bench",
                content="bench-title",
                quality="480p",
                status="pending",
                file_size_bytes=10_000_000,
            )
            ids.append(download.id)
    transfer_worker = run.worker()

    def enqueue_downloads():
        queue = run.app.extensions["runtime"].queue
        for download_id in ids:
            queue.enqueue_transfer(download_id)

    def all_completed():
        with run.app.app_context(), database.connection_context():
            return Download.select().where(Download.status == "completed").count() == WORKER_JOBS

    transfer_seconds = drain_seconds(run, enqueue_downloads, all_completed)
    return WORKER_JOBS / noop_seconds, WORKER_JOBS / transfer_seconds, transfer_worker


def bench_pickup(run, base):
    """Seconds from POST /start returning to `started_at`, one download at a time, idle worker."""
    import random

    with run.app.app_context():
        headers = {"Authorization": f"Bearer {issue_token('bench-pickup', ttl_seconds=3600)}"}
    samples = []
    for n in range(PICKUP_SAMPLES):
        time.sleep(random.uniform(0.3, 1.0))  # let the worker go idle between downloads
        answer = requests.post(
            f"{base}/api/downloads/start",
            json={"content_id": f"bench-{n}", "quality": "480p"},
            headers=headers,
            timeout=5,
        )
        returned = time.time()
        samples.append((answer.json()["download"]["id"], returned))
    wait_until(lambda: all(_status(run, i) == "completed" for i, _ in samples), 60, message="pick-ups")
    with run.app.app_context(), database.connection_context():
        started = {d.id: d.started_at for d in Download.select().where(Download.id.in_([i for i, _ in samples]))}

    delays = sorted(max(started[i].replace(tzinfo=datetime.UTC).timestamp() - t, 0) * 1000 for i, t in samples)
    return delays[len(delays) // 2], delays[int(len(delays) * 0.99) - 1 if len(delays) >= 100 else -1]


def _status(run, download_id):
    with run.app.app_context(), database.connection_context():
        return Download.get_by_id(download_id).status


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def bench_sse(run):
    api, base = run.gunicorn(workers=1, connections=SSE_STREAMS + 100)
    worker_pid = int(subprocess.run(["pgrep", "-P", str(api.pid)], capture_output=True, text=True).stdout.split()[0])
    download_id = requests.post(
        f"{base}/api/downloads/start",
        json={"content_id": "bench-title", "quality": "480p"},
        headers={"Authorization": f"Bearer {run.token}"},
        timeout=5,
    ).json()["download"]["id"]
    before = rss_mb(worker_pid)
    client = subprocess.Popen(
        [sys.executable, str(HERE / "sse_client.py"), str(SSE_STREAMS), base.rsplit(":", 1)[1], run.token, download_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    connected = json.loads(client.stdout.readline())
    held = rss_mb(worker_pid)
    client.stdin.write("go\n")
    client.stdin.flush()
    delivered = json.loads(client.stdout.readline())
    client.wait(timeout=30)
    run.stop(api)
    return {
        "streams": connected["streams"],
        "received": delivered["received"],
        "slowest_s": delivered["slowest_seconds"],
        "rss_before_mb": before,
        "rss_held_mb": held,
    }


def nginx_origin():
    """tests/origins.Nginx (imported here: it needs boto3, a test dependency)."""
    from origins import NGINX, Nginx

    if not NGINX:
        raise SystemExit("the transfer figure needs nginx: apt-get install nginx-light")
    return Nginx


def curl_seconds(url, output):
    """curl's own time_total for the whole file from `url` into `output`."""
    seconds, size = subprocess.run(
        ["curl", "-sS", "--fail", "-o", str(output), "-w", "%{time_total} %{size_download}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if int(float(size)) != TRANSFER_BYTES:
        raise SystemExit(f"bench: curl fetched {size} bytes, not {TRANSFER_BYTES}")
    return float(seconds)


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def bench_transfer(run, base):
    """A real transfer of a 200 MB file from a local nginx (no rate limit), `POST /start` → `completed`
    as polled on `/progress` every 10 ms, beside curl fetching the same file from the same nginx."""
    media = run.workdir / "media"
    media.mkdir()
    digest = hashlib.sha256()
    with open(media / "movie.mp4", "wb") as file:
        left = TRANSFER_BYTES
        while left:
            block = os.urandom(min(left, 1024 * 1024))
            file.write(block)
            digest.update(block)
            left -= len(block)
    with run.app.app_context():
        Content.create(id="bench-file", title="Bench file", duration_seconds=600, qualities="720p")
        admin = {"Authorization": f"Bearer {issue_token('bench-admin', admin=True, ttl_seconds=3600)}"}
        user = requests.Session()
        user.headers["Authorization"] = f"Bearer {issue_token('transfer-user', ttl_seconds=3600)}"
    copy = Path(run.env["STORAGE_DIR"]).parent / "curl-copy.mp4"  # beside STORAGE_DIR: the same disk
    with nginx_origin()(media) as nginx:
        url = f"{nginx.url}/movie.mp4"
        to_disk, to_null = [], []
        for _ in range(TRANSFER_RUNS):
            to_disk.append(curl_seconds(url, copy))
            copy.unlink()
            to_null.append(curl_seconds(url, "/dev/null"))
        saved = requests.put(
            f"{base}/api/contents/bench-file/sources/720p",
            headers=admin,
            timeout=30,
            json={"location": url, "sha256": digest.hexdigest()},
        )
        if saved.status_code != 200:
            raise SystemExit(f"bench: the source was refused: {saved.text}")
        service = []
        for _ in range(TRANSFER_RUNS):
            began = time.monotonic()
            started = user.post(
                f"{base}/api/downloads/start", json={"content_id": "bench-file", "quality": "720p"}, timeout=10
            )
            download_id = started.json()["download"]["id"]

            def completed(download_id=download_id):
                status = user.get(f"{base}/api/downloads/{download_id}/progress", timeout=10).json()["status"]
                if status == "failed":
                    failed = user.get(f"{base}/api/downloads/{download_id}", timeout=10).text
                    raise SystemExit(f"bench: the transfer failed: {failed}")
                return status == "completed"

            wait_until(completed, 300, message="the transfer", interval=0.01)
            service.append(time.monotonic() - began)
            done = user.get(f"{base}/api/downloads/{download_id}", timeout=10).json()["download"]
            if done["sha256"] != digest.hexdigest() or done["attempts"] != 1:
                raise SystemExit(f"bench: a transfer did not go through in one verified attempt: {done}")
            user.delete(f"{base}/api/downloads/{download_id}", timeout=10).raise_for_status()
    (media / "movie.mp4").unlink()
    rate = lambda seconds: TRANSFER_BYTES / seconds / MB  # noqa: E731
    return {
        "bytes": TRANSFER_BYTES,
        "runs": TRANSFER_RUNS,
        "service_mb_s": rate(median(service)),
        "curl_disk_mb_s": rate(median(to_disk)),
        "curl_null_mb_s": rate(median(to_null)),
        "service_s": service,
        "curl_disk_s": to_disk,
        "curl_null_s": to_null,
    }


@contextmanager
def bench_run(backend):
    """A Run in a scratch directory, closed and removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=f"downloads-bench-{backend}-"))
    run = Run(backend, workdir)
    try:
        yield run
    finally:
        run.close()
        shutil.rmtree(workdir, ignore_errors=True)


def measure_transfer(backend):
    """`--only transfer`: the transfer figure alone, on its own gunicorn and worker."""
    with bench_run(backend) as run:
        print(f"[{backend}] transfer", flush=True)
        _, base = run.gunicorn()
        run.worker()
        transfer = bench_transfer(run, base)
    return {"backend": backend, "transfer": transfer}


def measure(backend):
    with bench_run(backend) as run:
        print(f"[{backend}] lists", flush=True)
        api, base = run.gunicorn()
        small, large = bench_lists(run, base)
        print(f"[{backend}] API", flush=True)
        noop, start, paced, progress = bench_api(run, base)
        print(f"[{backend}] worker", flush=True)
        noop_rate, transfer_rate, transfer_worker = bench_worker(run)
        print(f"[{backend}] pick-up", flush=True)
        pickup_p50, pickup_p99 = bench_pickup(run, base)
        print(f"[{backend}] transfer", flush=True)
        transfer = bench_transfer(run, base)
        run.stop(transfer_worker)  # the SSE figure pauses a download that must stay pending
        run.stop(api)
        print(f"[{backend}] SSE", flush=True)
        sse = bench_sse(run)
    return {
        "backend": backend,
        "noop": noop,
        "start": start,
        "paced": paced,
        "progress": progress,
        "noop_actor_per_s": noop_rate,
        "downloads_per_s": transfer_rate,
        "pickup_p50_ms": pickup_p50,
        "pickup_p99_ms": pickup_p99,
        "list_1k": small,
        "list_1m": large,
        "sse": sse,
        "transfer": transfer,
    }


def table(r):
    ratio = lambda a, b: f"{a / b:.2f}" if b else "n/a"  # noqa: E731
    sse = r["sse"]
    rows = [
        (
            "`POST /api/downloads/start` req/s (50 conn.)",
            f"{r['start']['rps']:.0f} (p99 {r['start']['p99_ms']:.0f} ms)",
            f"{r['noop']['rps']:.0f} (no-op `/healthz`)",
            ratio(r["start"]["rps"], r["noop"]["rps"]),
            "≥ 0.5",
        ),
        (
            "`POST /start` p99 at half the peak rate",
            f"{r['paced']['p99_ms']:.1f} ms at {r['paced']['rps']:.0f} req/s",
            "—",
            "—",
            "≤ 50 ms",
        ),
        (
            "`GET /api/downloads/{id}/progress` req/s",
            f"{r['progress']['rps']:.0f}",
            f"{r['noop']['rps']:.0f} (no-op `/healthz`)",
            ratio(r["progress"]["rps"], r["noop"]["rps"]),
            "≥ 0.7",
        ),
        (
            "downloads completed/s (`DOWNLOAD_SIMULATED_SECONDS=0`, 1 process × 2 threads)",
            f"{r['downloads_per_s']:.0f}",
            f"{r['noop_actor_per_s']:.0f} (no-op actor msgs/s)",
            ratio(r["downloads_per_s"], r["noop_actor_per_s"]),
            "≥ 0.6",
        ),
        (
            "`POST /start` returned → `downloading`, idle worker",
            f"p50 {r['pickup_p50_ms']:.0f} ms, p99 {r['pickup_p99_ms']:.0f} ms",
            "—",
            "—",
            "p50 ≤ 100 ms, p99 ≤ 300 ms",
        ),
        (
            "`GET /api/downloads?status=completed` page 1, p99 (4 conn.)",
            f"{r['list_1m']['p99_ms']:.1f} ms at {r['list_1m']['rps']:.0f} req/s (1,000,000 rows)",
            f"{r['list_1k']['p99_ms']:.1f} ms at {r['list_1k']['rps']:.0f} req/s (1,000 rows)",
            ratio(r["list_1m"]["p99_ms"], r["list_1k"]["p99_ms"]),
            "≤ 1.5",
        ),
        (
            "SSE streams on one gevent worker, one event to all",
            f"{sse['received']}/{sse['streams']} within {sse['slowest_s']} s",
            "—",
            "—",
            "≥ 5,000 within 1 s",
        ),
        (
            "… that worker's memory",
            f"{sse['rss_held_mb']:.0f} MB RSS holding them",
            f"{sse['rss_before_mb']:.0f} MB idle",
            ratio(sse["rss_held_mb"], sse["rss_before_mb"]),
            "reported",
        ),
    ]
    errors = sum(r[k]["errors"] for k in ("noop", "start", "paced", "progress", "list_1k", "list_1m"))
    lines = ["| figure | measured | baseline, same run | ratio | target |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines.append(f"\nNon-2xx answers during the wrk runs: {errors}.")
    return "\n".join(lines)


def transfer_table(r):
    t = r["transfer"]
    size = f"{t['bytes'] / MB:.0f} MB"
    service = (
        f"{t['service_mb_s']:.0f} MB/s ({size} in {median(t['service_s']):.2f} s; "
        f"runs {min(t['service_s']):.2f}–{max(t['service_s']):.2f} s)"
    )
    rows = [
        (
            f"real transfer from a local nginx, `POST /start` → `completed` on `/progress`, median of {t['runs']}",
            service,
            f"{t['curl_disk_mb_s']:.0f} MB/s (`curl -o` a file on the disk of `STORAGE_DIR`)",
            f"{t['service_mb_s'] / t['curl_disk_mb_s']:.2f}",
            "reported",
        ),
        (
            "… the same",
            service,
            f"{t['curl_null_mb_s']:.0f} MB/s (`curl -o /dev/null`)",
            f"{t['service_mb_s'] / t['curl_null_mb_s']:.2f}",
            "reported",
        ),
    ]
    lines = ["| figure | measured | baseline, same run | ratio | target |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def transfer_versions():
    nginx = subprocess.run([sys.modules["origins"].NGINX, "-v"], capture_output=True, text=True).stderr
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split()[:2]
    return f"{' '.join(curl)}, {nginx.strip().split(': ', 1)[-1]}"


def write_block(path, name, text):
    """Put `text` between the `<!-- name:start -->` and `<!-- name:end -->` markers of `path` (appended if absent)."""
    template = path.read_text() if path.exists() else ""
    marker_start, marker_end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{marker_start}\n{text}\n{marker_end}"
    if marker_start in template:
        template = re.sub(f"{marker_start}.*{marker_end}", lambda _: block, template, flags=re.DOTALL)
    else:
        template += "\n" + block + "\n"
    path.write_text(template)


def machine():
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(
        next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    )
    versions = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=json"], capture_output=True, text=True
    ).stdout
    wanted = {"gunicorn", "gevent", "dramatiq", "peewee", "flask", "flask-smorest", "redis", "psycopg2-binary"}
    packages = ", ".join(f"{p['name']} {p['version']}" for p in json.loads(versions) if p["name"].lower() in wanted)
    redis_version = (
        subprocess.run(["redis-cli", "--version"], capture_output=True, text=True).stdout.strip()
        if shutil.which("redis-cli")
        else "embedded"
    )
    pg = (
        subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
        if shutil.which("psql")
        else "n/a"
    )
    return (
        f"{os.cpu_count()} × {cpu}, {memory / 1024 / 1024:.0f} GiB RAM, {platform.platform()}, "
        f"Python {platform.python_version()}; {packages}; {redis_version}; {pg}; wrk 4.1.0"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", action="append", choices=["sqlite", "postgres"], help="repeatable; default both")
    parser.add_argument("--write", type=Path, help="write the results to this Markdown file")
    parser.add_argument(
        "--only", choices=["transfer"], help="measure only this part (it has its own table and markers)"
    )
    args = parser.parse_args()
    backends = args.db or ["postgres", "sqlite"]
    results = [(measure_transfer if args.only == "transfer" else measure)(backend) for backend in backends]
    command = "python tests/bench/bench.py --only transfer" if args.only else "make bench"
    transfer = [
        f"Measured {datetime.date.today().isoformat()} by `{command}`, on the machine above; "
        f"{transfer_versions()}; 1 MB = 10^6 bytes.",
        "",
    ]
    for result in results:
        transfer += [f"### {result['backend']}", "", transfer_table(result), ""]
    blocks = {"bench-transfer": "\n".join(transfer)}
    if not args.only:
        report = [f"Machine: {machine()}", ""]
        for result in results:
            report += [f"### {result['backend']}", "", table(result), ""]
        blocks = {"bench": "\n".join(report), **blocks}
    print("\n\n".join(blocks.values()))
    (ROOT / "var").mkdir(exist_ok=True)
    (ROOT / "var" / f"bench{'-' + args.only if args.only else ''}.json").write_text(json.dumps(results, indent=1))
    if args.write:
        for name, text in blocks.items():
            write_block(args.write, name, text)


if __name__ == "__main__":
    main()
