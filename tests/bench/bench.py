"""`make bench`: each figure of the service beside a baseline measured in the same run, as a ratio."""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, closing, contextmanager
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
# The drain rate is timed from the first poll at which this share of the backlog is done: the
# worker's boot and first messages do not count.
STEADY_SHARE = 0.05
POLL_SECONDS = 0.02
PICKUP_SAMPLES = 40
# Titles bench-0 … bench-N, each in 480p and 720p: every start of a run is a new download (a
# repeat of a held title and quality would just return it).
START_TITLES = 50_000
QUALITIES = ("480p", "720p")
# Starts rotate through this many users (of each wrk run's own prefix), as start.lua does.
USERS = 200
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
        self.database_url, self.pg_name = (
            (f"sqlite:///{workdir / 'bench.sqlite3'}", None)
            if backend == "sqlite"
            else create_database("downloads_bench")
        )
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

    def spawn(self, name, command, cwd=ROOT, **env):
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (closed once the child has it)
        process = subprocess.Popen(
            command, cwd=cwd, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
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
        wait_ready(process, lambda: _answers(f"http://127.0.0.1:{port}/readyz"), "gunicorn")
        return process, f"http://127.0.0.1:{port}"

    def worker(self, module="actors", path=None):
        command = [str(PY_BIN / "dramatiq"), module, "--processes", "1", "--threads", "2"]
        if path:
            command += ["--path", str(path)]
        process = self.spawn(f"worker-{module}", command)
        wait_ready(process, lambda: "Worker process is ready" in log_text(process), f"the worker ({module})")
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
            drop_database(*self.pg_name)


def create_database(prefix):
    """A fresh PostgreSQL database in the bench's cluster: its URL, and what drop_database needs."""
    admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"{prefix}_{secrets.token_hex(4)}"
    with closing(psycopg2.connect(admin_url)) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
    return urlparse(admin_url)._replace(path=f"/{name}").geturl(), (admin_url, name)


def drop_database(admin_url, name):
    with closing(psycopg2.connect(admin_url)) as admin:
        admin.autocommit = True
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def log_text(process):
    return process.log_path.read_text(errors="replace")


def wait_ready(process, ready, what, timeout=30):
    """Wait until `ready()`; if the child exits or is not ready in time, stop with the end of its log."""

    def up():
        if process.poll() is not None:
            raise SystemExit(f"bench: {what} exited with {process.returncode}; the end of its log:\n{tail(process)}")
        return ready()

    try:
        wait_until(up, timeout, message=what)
    except AssertionError as exc:
        raise SystemExit(f"bench: {exc}; the end of its log:\n{tail(process)}") from None


def tail(process, lines=30):
    return "\n".join(log_text(process).splitlines()[-lines:])


def _answers(url):
    try:
        return requests.get(url, timeout=1).status_code == 200
    except (requests.ConnectionError, requests.Timeout):  # not listening yet, or booting its workers
        return False


def wrk(
    url,
    token="",
    script="get.lua",
    tokens=None,
    if_none_match="",
    expect=(200,),
    connections=CONNECTIONS,
    delay_ms=0,
    seconds=WRK_SECONDS,
):
    """Requests per second, p50 and p99 in ms, answers by status, and errors of one wrk run.

    The errors are the answers with a status not in `expect` and wrk's socket errors (connect,
    read, write, timeout): wrk's own "Non-2xx or 3xx responses" counts only statuses above 399.
    """
    env = {
        **os.environ,
        "LUA_PATH": f"{HERE}/?.lua;;",
        "BENCH_TOKEN": token,
        "BENCH_TOKENS_FILE": str(tokens or ""),
        "BENCH_IF_NONE_MATCH": if_none_match,
        "BENCH_DELAY_MS": str(delay_ms),
        "BENCH_THREADS": str(WRK_THREADS),
    }
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

    statuses = {int(status): int(count) for status, count in re.findall(r"^status (\d+): (\d+)$", out, re.MULTILINE)}
    counted = re.search(
        r"Socket errors: connect (?P<connect>\d+), read (?P<read>\d+), write (?P<write>\d+), timeout (?P<timeout>\d+)",
        out,
    )
    sockets = {kind: int(count) for kind, count in counted.groupdict().items()} if counted else {}
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": millis("50%"),
        "p99_ms": millis("99%"),
        "statuses": statuses,
        "sockets": sockets,
        "errors": sum(count for status, count in statuses.items() if status not in expect) + sum(sockets.values()),
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


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def start_body(combination):
    """The body start.lua sends for `combination`: each title in each quality."""
    return {"content_id": f"bench-{combination // 2}", "quality": QUALITIES[combination % 2]}


def tokens_file(target, prefix):
    """A file of the tokens of USERS users `<prefix>-<n>`, one a line, for start.lua."""
    path = target.run.workdir / f"{target.name}-{prefix}.tokens"
    path.write_text("".join(target.token(f"{prefix}-{n}") + "\n" for n in range(USERS)))
    return path


class Service:
    """The service as a benchmark target: the run's gunicorn, and its worker when the drain needs it."""

    name = "service"

    def __init__(self, run, base):
        self.run, self.base = run, base

    def token(self, user):
        with self.run.app.app_context():
            return issue_token(user, ttl_seconds=3600)

    def start_worker(self):
        return self.run.worker()

    def completed(self, ids):
        with self.run.app.app_context(), database.connection_context():
            return Download.select().where(Download.id.in_(ids), Download.status == "completed").count()


class Peer:
    """The peer (Express + BullMQ) as a benchmark target: `node server.js` from `folder`, seeded
    with the bench's titles; `node worker.js` when the drain needs it."""

    name = "peer"

    def __init__(self, run, folder, database_url, db):
        self.run, self.folder, self.db = run, folder, db
        self.env = {"DATABASE_URL": database_url, "REDIS_URL": f"redis://127.0.0.1:{run.redis_port}/5"}
        port = free_port()
        self.server = run.spawn("peer-server", ["node", "server.js"], cwd=folder, PORT=str(port), **self.env)
        wait_ready(self.server, lambda: "server listening" in log_text(self.server), "the peer's server")
        self.base = f"http://127.0.0.1:{port}"
        # The server has made its schema: the same titles as the service's, so wrk sends the same bodies.
        with db.cursor() as cursor:
            cursor.execute(
                "INSERT INTO contents (id, duration_seconds) SELECT 'bench-' || n, 600 FROM generate_series(0, %s) n",
                (START_TITLES - 1,),
            )

    def token(self, user):
        return user  # the peer's bearer token is the user id

    def start_worker(self):
        worker = self.run.spawn(
            "peer-worker", ["node", "worker.js"], cwd=self.folder, SIMULATED_SECONDS="0", CONCURRENCY="2", **self.env
        )
        wait_ready(worker, lambda: "worker ready" in log_text(worker), "the peer's worker")
        return worker

    def completed(self, ids):
        with self.db.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM downloads WHERE id = ANY(%s) AND status = 'completed'", (ids,))
            return cursor.fetchone()[0]

    def versions(self):
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
        packages = ", ".join(
            f"{name} {json.loads((self.folder / 'node_modules' / name / 'package.json').read_text())['version']}"
            for name in ("express", "bullmq", "pg", "ioredis")
        )
        return f"Node {node}; {packages}"


@contextmanager
def running_peer(run, source):
    """The peer, from a copy of `source` (without node_modules, installed afresh), on a PostgreSQL
    database of its own and the run's Redis (db 5); stopped and its database dropped afterwards."""
    if not (shutil.which("node") and shutil.which("npm")):
        raise SystemExit("bench: --peer needs node and npm")
    folder = run.workdir / "peer"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("node_modules"), copy_function=shutil.copyfile)
    for path, _, _ in os.walk(folder):
        os.chmod(path, 0o755)  # the copy of a read-only folder must take node_modules
    installed = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True
    )
    if installed.returncode:
        raise SystemExit(f"bench: npm install of the peer failed:\n{installed.stdout}{installed.stderr}")
    database_url, pg_name = create_database("peer_bench")
    try:
        with closing(psycopg2.connect(database_url)) as db:
            db.autocommit = True
            peer = Peer(run, folder, database_url, db)
            try:
                yield peer
            finally:
                run.stop(peer.server)
    finally:
        drop_database(*pg_name)


def steady_rate(total, done):
    """Items done per second, polled every POLL_SECONDS: from the first poll at which STEADY_SHARE
    of `total` are done, t0, until all are, t1; (total − done at t0) / (t1 − t0)."""
    first = []

    def all_done():
        count, now = done(), time.monotonic()
        if count >= total * STEADY_SHARE and not first:
            first.append((now, count))
        return count >= total and now

    finished = wait_until(all_done, 300, interval=POLL_SECONDS, message="the backlog to drain")
    began, count = first[0]
    if finished == began:
        raise SystemExit("bench: the backlog drained before a poll could time it")
    return (total - count) / (finished - began)


def bench_drain(target):
    """Downloads completed per second: WORKER_JOBS started over HTTP with the worker stopped, then the worker."""
    tokens = [target.token(f"drain-{n}") for n in range(USERS)]
    ids = []
    with requests.Session() as session:
        for n in range(WORKER_JOBS):
            answer = session.post(
                f"{target.base}/api/downloads/start", json=start_body(n), headers=bearer(tokens[n % USERS]), timeout=10
            )
            if answer.status_code != 202:
                raise SystemExit(f"bench: the {target.name} refused a start: {answer.status_code} {answer.text}")
            ids.append(answer.json()["download"]["id"])
    worker = target.start_worker()
    rate = steady_rate(WORKER_JOBS, lambda: target.completed(ids))
    target.run.stop(worker)
    return rate


def bench_starts(target):
    """Starts at 50 connections, then at half that rate (the worker is stopped)."""
    url = f"{target.base}/api/downloads/start"
    start = wrk(url, script="start.lua", tokens=tokens_file(target, "bench"), expect=(202,))
    # Half the peak rate: each of the 50 connections waits so that together they send half.
    half_rate = start["rps"] / 2
    delay = max(CONNECTIONS / half_rate * 1000 - start["p50_ms"], 0)
    # Other users: the paced run starts its combinations at 0 again, and they must be new downloads too.
    paced = wrk(url, script="start.lua", tokens=tokens_file(target, "paced"), expect=(202,), delay_ms=int(delay))
    return {"start": start, "paced": paced}


def bench_progress(target):
    """Reads of one download's progress, plain and conditional (the worker is stopped: it does not change)."""
    owner = target.token("progress-0")
    started = requests.post(
        f"{target.base}/api/downloads/start", json=start_body(0), headers=bearer(owner), timeout=5
    ).json()
    progress_url = f"{target.base}/api/downloads/{started['download']['id']}/progress"
    progress = wrk(progress_url, owner)
    etag = requests.get(progress_url, headers=bearer(owner), timeout=5).headers.get("ETag")
    conditional = wrk(progress_url, owner, if_none_match=etag, expect=(200, 304)) if etag else None
    return {"progress": progress, "conditional": conditional}


def bench_noop_actor(run):
    """No-op messages handled per second by the same worker settings, timed as the drain is."""
    import dramatiq

    client = redis.Redis.from_url(run.redis_url)
    broker = run.app.extensions["broker"]
    for n in range(WORKER_JOBS):
        broker.enqueue(
            dramatiq.Message(queue_name="bench-noop", actor_name="noop", args=(str(n),), kwargs={}, options={})
        )
    worker = run.worker("noop_actor", path=HERE)
    rate = steady_rate(WORKER_JOBS, lambda: WORKER_JOBS - client.hlen("dramatiq:bench-noop.msgs"))
    run.stop(worker)
    return rate


def measure_api(run, base, peer_source):
    """The API and worker figures of the service, and of the peer in the same run if asked: each
    figure of one right after the other's, so that both see the same load of a shared machine."""
    with ExitStack() as stack:
        targets = [Service(run, base)]
        if peer_source:
            print(f"[{run.backend}] API and worker: starting the peer", flush=True)
            targets.append(stack.enter_context(running_peer(run, peer_source)))
        figures = {target.name: {} for target in targets}
        print(f"[{run.backend}] API and worker: no-op actor, drain", flush=True)
        figures["service"]["noop_actor_per_s"] = bench_noop_actor(run)
        for target in targets:
            figures[target.name]["drain_per_s"] = bench_drain(target)
        print(f"[{run.backend}] API and worker: HTTP", flush=True)
        figures["service"]["noop"] = wrk(f"{base}/healthz", run.token)
        for bench in (bench_starts, bench_progress):
            for target in targets:
                figures[target.name] |= bench(target)
        if peer_source:
            figures["peer"]["versions"] = targets[1].versions()
    return {"service": figures["service"], "peer": figures.get("peer")}


def forget_downloads(run):
    """Delete the downloads and queued messages the API figures left (thousands of pending starts)."""
    runtime = run.app.extensions["runtime"]
    runtime.queue.broker.flush(runtime.queue.name)
    with run.app.app_context(), database.connection_context():
        Download.delete().execute()


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
    """tests/support/origins.Nginx (imported here: it needs boto3, a test dependency)."""
    from support.origins import NGINX, Nginx

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


def measure_only_api(backend, peer_source):
    """`--only api`: the API and worker figures alone, on their own gunicorn."""
    with bench_run(backend) as run:
        _, base = run.gunicorn()
        return {"backend": backend, "api": measure_api(run, base, peer_source)}


def measure_only_drain(backend, peer_source):
    """`--only drain`: the worker figures alone (the no-op actor, the service, the peer if given), printed."""
    with bench_run(backend) as run, ExitStack() as stack:
        _, base = run.gunicorn()
        targets = [Service(run, base)]
        if peer_source:
            targets.append(stack.enter_context(running_peer(run, peer_source)))
        figures = {"noop_actor_per_s": round(bench_noop_actor(run), 1)}
        for target in targets:
            figures[f"{target.name}_drain_per_s"] = round(bench_drain(target), 1)
            print(f"[{backend}] {target.name}: {figures[f'{target.name}_drain_per_s']} downloads/s", flush=True)
        return {"backend": backend, "drain": figures}


def measure(backend, peer_source):
    with bench_run(backend) as run:
        api, base = run.gunicorn()
        figures = measure_api(run, base, peer_source)
        forget_downloads(run)
        print(f"[{backend}] pick-up", flush=True)
        worker = run.worker()
        pickup_p50, pickup_p99 = bench_pickup(run, base)
        print(f"[{backend}] transfer", flush=True)
        transfer = bench_transfer(run, base)
        run.stop(worker)  # the SSE figure pauses a download that must stay pending
        print(f"[{backend}] lists", flush=True)
        small, large = bench_lists(run, base)
        run.stop(api)
        print(f"[{backend}] SSE", flush=True)
        sse = bench_sse(run)
    return {
        "backend": backend,
        "api": figures,
        "pickup_p50_ms": pickup_p50,
        "pickup_p99_ms": pickup_p99,
        "list_1k": small,
        "list_1m": large,
        "sse": sse,
        "transfer": transfer,
    }


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "—"


def at_rate(figure):
    return f"{figure['rps']:.0f} req/s (p99 {figure['p99_ms']:.0f} ms)"


def paced(figure):
    return f"{figure['p99_ms']:.1f} ms at {figure['rps']:.0f} req/s"


def conditional(figure):
    if figure is None:
        return "no ETag"
    share = figure["statuses"].get(304, 0) / max(sum(figure["statuses"].values()), 1)
    return f"{figure['rps']:.0f} req/s, {share:.0%} answered 304"


def per_second(value):
    return f"{value:.0f}"


def rps(figure):
    return figure and figure["rps"]


def wrk_errors(figures):
    return sum(f["errors"] for k in ("noop", "start", "paced", "progress", "conditional") if (f := figures.get(k)))


def api_table(service, peer):
    """The API and worker figures of one back end, each beside the peer's (None: it did not run) or a no-op's."""
    s = service

    def of_peer(render, key):
        return render(peer[key]) if peer else "not run"

    def peer_ratio(value, key):
        return ratio(value, peer and (rps(peer[key]) if key != "drain_per_s" else peer[key]))

    rows = [
        (
            "`POST /api/downloads/start`, 50 conn., worker stopped",
            at_rate(s["start"]),
            of_peer(at_rate, "start"),
            peer_ratio(s["start"]["rps"], "start"),
            "≥ 1.0",
        ),
        (
            "… against a no-op route",
            at_rate(s["start"]),
            f"{s['noop']['rps']:.0f} req/s (no-op `/healthz`)",
            ratio(s["start"]["rps"], s["noop"]["rps"]),
            "≥ 0.5",
        ),
        ("`POST /start` p99 at half the peak rate", paced(s["paced"]), of_peer(paced, "paced"), "—", "≤ 50 ms"),
        (
            "`GET /api/downloads/{id}/progress`, 50 conn.",
            at_rate(s["progress"]),
            of_peer(at_rate, "progress"),
            peer_ratio(s["progress"]["rps"], "progress"),
            "≥ 0.7",
        ),
        (
            "… against a no-op route",
            at_rate(s["progress"]),
            f"{s['noop']['rps']:.0f} req/s (no-op `/healthz`)",
            ratio(s["progress"]["rps"], s["noop"]["rps"]),
            "≥ 0.7",
        ),
        (
            "… with `If-None-Match` of the ETag it sent",
            conditional(s["conditional"]),
            of_peer(conditional, "conditional"),
            peer_ratio(rps(s["conditional"]), "conditional"),
            "reported",
        ),
        (
            "downloads completed/s, `DOWNLOAD_SIMULATED_SECONDS=0`, 1 process × 2 threads",
            per_second(s["drain_per_s"]),
            of_peer(per_second, "drain_per_s"),
            peer_ratio(s["drain_per_s"], "drain_per_s"),
            "≥ 1.5",
        ),
        (
            "… against a no-op actor",
            per_second(s["drain_per_s"]),
            f"{s['noop_actor_per_s']:.0f} msgs/s (no-op actor)",
            ratio(s["drain_per_s"], s["noop_actor_per_s"]),
            "≥ 0.6",
        ),
    ]
    lines = ["| figure | service | baseline: peer, same run | ratio | target |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    errors = f"service {wrk_errors(s)}" + (f", peer {wrk_errors(peer)}" if peer else "")
    lines.append(f"\nUnexpected answers and socket errors during the wrk runs: {errors}.")
    return "\n".join(lines)


def backends_table(postgres, sqlite):
    """The service's throughput figures on PostgreSQL against SQLite, same run."""
    rows = [
        ("`POST /api/downloads/start` req/s", rps(postgres["start"]), rps(sqlite["start"])),
        ("`GET /api/downloads/{id}/progress` req/s", rps(postgres["progress"]), rps(sqlite["progress"])),
        ("… with `If-None-Match`, req/s", rps(postgres["conditional"]), rps(sqlite["conditional"])),
        ("downloads completed/s", postgres["drain_per_s"], sqlite["drain_per_s"]),
    ]
    lines = ["| figure | PostgreSQL | SQLite | ratio | target |", "|---|---|---|---|---|"]
    lines += [
        f"| {name} | {per_second(pg) if pg else 'no ETag'} | {per_second(lite) if lite else 'no ETag'} "
        f"| {ratio(pg, lite)} | ≥ 1.0 |"
        for name, pg, lite in rows
    ]
    return "\n".join(lines)


def table(r):
    sse = r["sse"]
    rows = [
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
    errors = r["list_1k"]["errors"] + r["list_1m"]["errors"]
    lines = ["| figure | measured | baseline, same run | ratio | target |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines.append(f"\nUnexpected answers and socket errors during the wrk runs: {errors}.")
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
    nginx = subprocess.run([sys.modules["support.origins"].NGINX, "-v"], capture_output=True, text=True).stderr
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


def api_block(results, command, machine_line, load_before, peer_source):
    """The `bench-api` block: the API and worker figures of each back end, and the back ends compared."""
    by_backend = {r["backend"]: r["api"] for r in results}
    peer = by_backend.get("postgres", {}).get("peer")
    lines = [
        f"Measured {datetime.date.today().isoformat()} by `{command}`; load average before it: {load_before}.",
        "",
        f"Machine: {machine_line}",
    ]
    if peer:
        lines += ["", f"Peer: a copy of `{peer_source}`; {peer['versions']}."]
    for backend, api in by_backend.items():
        lines += ["", f"### {backend}", ""]
        if backend == "sqlite" and peer:
            lines += ["The peer runs on PostgreSQL only: its figures are those of the PostgreSQL run.", ""]
        lines.append(api_table(api["service"], peer))
    if len(by_backend) == 2:
        lines += ["", "### PostgreSQL against SQLite", ""]
        lines.append(backends_table(by_backend["postgres"]["service"], by_backend["sqlite"]["service"]))
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", action="append", choices=["sqlite", "postgres"], help="repeatable; default both")
    parser.add_argument("--write", type=Path, help="write the results to this Markdown file")
    parser.add_argument(
        "--only",
        choices=["api", "transfer", "drain"],
        help="measure only this part (api and transfer have their own table and markers; drain is printed only)",
    )
    parser.add_argument(
        "--peer", type=Path, help="the express-bullmq peer's folder: measured beside the service in the PostgreSQL run"
    )
    args = parser.parse_args()
    backends = args.db or ["postgres", "sqlite"]
    if args.peer and ("postgres" not in backends or args.only == "transfer"):
        parser.error("--peer is measured in the PostgreSQL run of the API figures")
    if args.only == "drain" and args.write:
        parser.error("--only drain prints its figures and writes none")
    if args.peer and not (args.peer / "server.js").is_file():
        parser.error(f"--peer: no server.js in {args.peer}")
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])  # the machine is shared
    command = shlex.join([os.path.relpath(sys.executable, ROOT), "tests/bench/bench.py", *sys.argv[1:]])
    results = []
    for backend in backends:
        peer_source = args.peer if backend == "postgres" else None
        if args.only == "transfer":
            results.append(measure_transfer(backend))
        elif args.only == "api":
            results.append(measure_only_api(backend, peer_source))
        elif args.only == "drain":
            results.append(measure_only_drain(backend, peer_source))
        else:
            results.append(measure(backend, peer_source))
    blocks = {}
    machine_line = machine()
    if args.only == "drain":
        print(json.dumps(results, indent=1))
        return
    if args.only != "transfer":
        blocks["bench-api"] = api_block(results, command, machine_line, load_before, args.peer)
    if not args.only:
        report = [f"Machine: {machine_line}", ""]
        for result in results:
            report += [f"### {result['backend']}", "", table(result), ""]
        blocks["bench"] = "\n".join(report)
    if args.only != "api":
        transfer = [
            f"Measured {datetime.date.today().isoformat()} by `{command}`, on the machine above; "
            f"{transfer_versions()}; 1 MB = 10^6 bytes.",
            "",
        ]
        for result in results:
            transfer += [f"### {result['backend']}", "", transfer_table(result), ""]
        blocks["bench-transfer"] = "\n".join(transfer)
    print("\n\n".join(blocks.values()))
    (ROOT / "var").mkdir(exist_ok=True)
    (ROOT / "var" / f"bench{'-' + args.only if args.only else ''}.json").write_text(json.dumps(results, indent=1))
    if args.write:
        for name, text in blocks.items():
            write_block(args.write, name, text)


if __name__ == "__main__":
    main()
