"""Fixtures: a real Redis, SQLite and PostgreSQL databases, the app, tokens and a real worker."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from support import free_port
from support.databases import PostgresDatabases, migrated_sqlite_url, postgres_available
from support.environment import POSTGRES_ADMIN_URL, REDIS_BASE_URL, REDIS_URL, REQUIRE_POSTGRES, TEST_JWT_SECRET

# `actors` builds its app and broker from the environment when first imported. The actor's
# Dramatiq retries come from DOWNLOAD_MAX_ATTEMPTS here, so they outlast the attempts any
# test allows its app (the `app` fixture: 3; some tests raise it).
os.environ.update(
    dramatiq_prom_db=tempfile.mkdtemp(prefix="downloads-test-metrics-"),
    REDIS_URL=REDIS_URL,
    JWT_SECRET=TEST_JWT_SECRET,
    DATABASE_URL="sqlite:///:memory:",
    DOWNLOAD_RETRY_MIN_BACKOFF_MS="50",
    DOWNLOAD_RETRY_MAX_BACKOFF_MS="200",
    DOWNLOAD_MAX_ATTEMPTS="10",
)

import actors
from downloads_app import create_app
from downloads_app.config import settings_from
from downloads_app.downloads.models import MODELS, Content
from downloads_app.downloads.runtime import build_runtime
from downloads_app.infra import schema_migrations
from downloads_app.infra.database import database
from downloads_app.infra.embedded_redis import ensure_redis
from downloads_app.web.auth import issue_token

SYSTEM_TESTS = Path(__file__).parent / "system"
EMBEDDED_REDIS = pytest.StashKey()


def pytest_configure(config):
    """The Redis the tests use: the machine's, or an embedded one started by the main process
    (before any pytest-xdist worker starts, and stopped after the last has ended)."""
    if not hasattr(config, "workerinput"):
        config.stash[EMBEDDED_REDIS] = ensure_redis(REDIS_BASE_URL, os.path.join(os.getcwd(), "var", "test-redis"))


def pytest_unconfigure(config):
    embedded = config.stash.get(EMBEDDED_REDIS, None)
    if embedded is not None:
        embedded.terminate()
        embedded.wait(timeout=10)


def pytest_itemcollected(item):
    """The system tests start servers, worker hosts and browsers, some on fixed names (network
    namespaces, a PostgreSQL template): under pytest-xdist they run one at a time, on one worker.
    Marked as they are collected, before pytest-xdist reads the group off the marker."""
    if item.path.is_relative_to(SYSTEM_TESTS):
        item.add_marker(pytest.mark.xdist_group("system"))


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(os.environ["dramatiq_prom_db"], ignore_errors=True)


@pytest.fixture
def unused_tcp_port():
    return free_port()


# ---------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def postgres_databases():
    if not postgres_available():
        message = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}"
        if REQUIRE_POSTGRES:
            pytest.fail(message + " and REQUIRE_POSTGRES=1")
        pytest.skip(message + " (set TEST_POSTGRES_URL; CI sets REQUIRE_POSTGRES=1)")
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def postgres_url(postgres_databases):
    """One migrated PostgreSQL database for the session; tables are emptied per test."""
    url = postgres_databases.create()
    app = create_app({"TESTING": True, "DATABASE_URL": url, "REDIS_URL": REDIS_URL})
    with app.app_context():
        schema_migrations.upgrade()
    database.close_all()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A migrated, empty database: a fresh SQLite file, or the emptied PostgreSQL one."""
    if request.param == "sqlite":
        return migrated_sqlite_url(tmp_path)
    url = request.getfixturevalue("postgres_url")
    app = create_app({"TESTING": True, "DATABASE_URL": url, "REDIS_URL": REDIS_URL})
    with app.app_context(), database.connection_context():
        tables = ", ".join(f'"{model._meta.table_name}"' for model in MODELS)
        database.execute_sql(f"TRUNCATE {tables} CASCADE")
    return url


# ---------------------------------------------------------------- app


@pytest.fixture
def redis_client():
    client = actors.broker.client
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def app(database_url, redis_client, tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "STORAGE_DIR": str(tmp_path / "storage"),
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "JWT_SECRET": TEST_JWT_SECRET,
            "DOWNLOAD_SIMULATED_SECONDS": 0.3,
            "DOWNLOAD_PROGRESS_INTERVAL_MS": 0,
            "DOWNLOAD_MAX_ATTEMPTS": 3,
            "STORAGE_QUOTA_BYTES": 10_000_000_000,
        }
    )
    yield app
    app.extensions["event_hub"].close()
    app.extensions["broker"].client.close()
    if hasattr(database.obj, "close_all"):
        database.close_all()


@pytest.fixture
def configure(app):
    """configure(NAME=value, ...): run `app` with other settings from now on, as a restart with them would;
    returns the new runtime."""

    def change(**settings):
        app.config.update(settings)
        app.extensions["runtime"] = build_runtime(settings_from(app.config), app.extensions["broker"])
        return app.extensions["runtime"]

    return change


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def token(app):
    """token(user_id, admin=False, ttl_seconds=None) -> signed JWT."""

    def make(user_id="alice", admin=False, ttl_seconds=None):
        with app.app_context():
            return issue_token(user_id, admin=admin, ttl_seconds=ttl_seconds)

    return make


@pytest.fixture
def auth(token):
    """auth(user_id="alice", admin=False) -> request headers with a bearer token."""

    def make(user_id="alice", admin=False):
        return {"Authorization": f"Bearer {token(user_id, admin)}"}

    return make


# duration 1000 s: 720p (3333 kbps) is 416,625,000 bytes
MOVIE = {"id": "movie", "title": "A Movie", "duration_seconds": 1000, "qualities": ["480p", "720p", "1080p"]}


@pytest.fixture
def movie(app):
    with app.app_context():
        Content.create(
            id=MOVIE["id"],
            title=MOVIE["title"],
            duration_seconds=MOVIE["duration_seconds"],
            qualities=",".join(MOVIE["qualities"]),
        )
    return MOVIE


@pytest.fixture
def titles(app):
    """titles(count) -> ids of `count` more titles like MOVIE, for tests that need distinct downloads."""
    made = []

    def make(count):
        ids = [f"title-{len(made) + n}" for n in range(1, count + 1)]
        with app.app_context():
            for content_id in ids:
                Content.create(
                    id=content_id,
                    title=content_id,
                    duration_seconds=MOVIE["duration_seconds"],
                    qualities=",".join(MOVIE["qualities"]),
                )
        made.extend(ids)
        return ids

    return make


# ---------------------------------------------------------------- worker


@pytest.fixture
def worker(app, monkeypatch):
    """A real Dramatiq worker, two threads, consuming the test Redis in this process."""
    import dramatiq

    monkeypatch.setattr(actors.worker_hooks, "app", app)
    worker = dramatiq.Worker(actors.broker, worker_threads=2, worker_timeout=100)
    worker.start()
    yield worker
    worker.stop()
