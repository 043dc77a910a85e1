"""CPU per request of the hot routes in one gevent process, as in a gunicorn worker: for before/after figures.

python tests/bench/cpu_per_request.py [--db sqlite|postgres] [--requests N]

25 greenlets send the requests through Flask's test client, against a fresh database and
the process's own redis-server; the figure is the process's CPU time (user + system) per
request, which the machine's load changes far less than throughput. PostgreSQL and Redis
do their own work in their own processes: it is not counted here.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from contextlib import closing  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

import psycopg2  # noqa: E402
from gevent.pool import Pool  # noqa: E402
from psycogreen.gevent import patch_psycopg  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from downloads_app import create_app  # noqa: E402
from downloads_app.downloads.models import Content  # noqa: E402
from downloads_app.infra import schema_migrations  # noqa: E402
from downloads_app.infra.database import database  # noqa: E402
from downloads_app.infra.embedded_redis import start_redis_server  # noqa: E402
from downloads_app.web.auth import issue_token  # noqa: E402
from support import free_port  # noqa: E402

GREENLETS = 25
USERS = 200
NO_LIMIT = "1000000000 per minute"


def cpu_per_request(send, count):
    """(CPU ms, wall ms) per request of `count` calls of `send(n)` from GREENLETS greenlets."""
    pool = Pool(GREENLETS)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in pool.imap_unordered(send, range(count)):
        pass
    return (time.process_time() - cpu) / count * 1000, (time.perf_counter() - wall) / count * 1000


def measure(backend, count, workdir):
    redis_port = free_port()
    redis_server = start_redis_server(redis_port, workdir / "redis", appendonly=False)
    admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    pg_name = f"downloads_cpu_{secrets.token_hex(4)}"
    if backend == "postgres":
        with closing(psycopg2.connect(admin_url)) as admin:
            admin.autocommit = True
            admin.cursor().execute(f'CREATE DATABASE "{pg_name}"')
        url = urlparse(admin_url)._replace(path=f"/{pg_name}").geturl()
    else:
        url = f"sqlite:///{workdir / 'cpu.sqlite3'}"
    try:
        app = create_app(
            {
                "DATABASE_URL": url,
                "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "JWT_SECRET": "cpu-" + secrets.token_hex(32),
                "RATELIMIT_START": NO_LIMIT,
                "RATELIMIT_WRITES": NO_LIMIT,
                "STORAGE_QUOTA_BYTES": 10**18,
            }
        )
        logging.getLogger("downloads_app").setLevel(logging.WARNING)
        with app.app_context():
            schema_migrations.upgrade()
            titles = [
                {"id": f"cpu-{n}", "title": "CPU", "duration_seconds": 600, "qualities": "480p,720p"}
                for n in range(count + 200)
            ]
            with database.atomic():
                for batch in range(0, len(titles), 1000):
                    Content.insert_many(titles[batch : batch + 1000]).execute()
            tokens = [f"Bearer {issue_token(f'cpu-user-{n}', ttl_seconds=3600)}" for n in range(USERS)]
        client = app.test_client()

        def start(n):
            answer = client.post(
                "/api/downloads/start",
                json={"content_id": f"cpu-{n // 2}", "quality": ("480p", "720p")[n % 2]},
                headers={"Authorization": tokens[n % USERS]},
            )
            assert answer.status_code == 202, answer.get_data(as_text=True)
            return answer.json["download"]["id"]

        warm = [start(count * 2 + n) for n in range(100)]  # titles beyond the measured ones
        some_id, owner = warm[0], tokens[0]

        def progress(n):
            assert client.get(f"/api/downloads/{some_id}/progress", headers={"Authorization": owner}).status_code == 200

        def healthz(n):
            assert client.get("/healthz").status_code == 200

        return {
            "start": cpu_per_request(start, count),
            "progress": cpu_per_request(progress, count),
            "healthz": cpu_per_request(healthz, count),
        }
    finally:
        if hasattr(database.obj, "close_all"):
            database.close_all()
        redis_server.terminate()
        redis_server.wait()
        if backend == "postgres":
            with closing(psycopg2.connect(admin_url)) as admin:
                admin.autocommit = True
                admin.cursor().execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", action="append", choices=["postgres", "sqlite"], help="repeatable; default both")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    patch_psycopg()
    for backend in args.db or ["postgres", "sqlite"]:
        with tempfile.TemporaryDirectory(prefix="downloads-cpu-") as workdir:
            figures = measure(backend, args.requests, Path(workdir))
        for route, (cpu, wall) in figures.items():
            print(f"{backend:8} {route:8} {cpu:6.2f} ms CPU per request  ({wall:5.2f} ms wall, {GREENLETS} greenlets)")


if __name__ == "__main__":
    main()
