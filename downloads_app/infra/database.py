"""The database handle: pooled SQLite (WAL, busy timeout, BEGIN IMMEDIATE) or pooled PostgreSQL."""

import math
from pathlib import Path
from urllib.parse import urlparse

from peewee import DatabaseProxy
from playhouse.db_url import parse as parse_db_url
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

database = DatabaseProxy()

SQLITE_BUSY_TIMEOUT_SECONDS = 10


def unanswered_after(seconds):
    """libpq options that fail a PostgreSQL connection once its server has not answered for
    about `seconds`: connecting, data it never acknowledged, or a peer gone silent (keepalives).

    Without them a process cut off from the server blocks in its call for the kernel's
    retransmissions, a quarter of an hour, holding whatever it holds (a worker: its `.part`).
    """
    probe = max(1, int(seconds // 3))  # keepalive idle and interval are whole seconds
    return {
        "connect_timeout": max(2, math.ceil(seconds)),  # libpq takes at least 2
        "tcp_user_timeout": int(seconds * 1000),
        "keepalives": 1,
        "keepalives_idle": probe,
        "keepalives_interval": probe,
        "keepalives_count": 3,
    }


def open_database(url, pool_size=20, pool_timeout=10.0, timeout_seconds=10.0):
    """Build the peewee database for `url` (`sqlite:///path` or `postgresql://...`).

    A PostgreSQL call fails once the server has not answered for `timeout_seconds`; options
    in the URL's query string override those.
    """
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        path = url[len("sqlite:///") :]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # WAL lets the API read while the worker writes; IMMEDIATE takes the write
        # lock at BEGIN so two writers queue on the busy timeout instead of failing.
        # Pooled: opening a connection and setting its pragmas cost more than a query.
        return PooledSqliteDatabase(
            path,
            max_connections=pool_size,
            timeout=pool_timeout,
            stale_timeout=300,
            check_same_thread=False,
            pragmas={
                "journal_mode": "wal",
                "synchronous": "normal",
                "foreign_keys": 1,
                "busy_timeout": SQLITE_BUSY_TIMEOUT_SECONDS * 1000,
            },
            lock_type="IMMEDIATE",
            returning_clause=True,
        )
    if scheme in ("postgres", "postgresql"):
        params = parse_db_url(url)
        return PooledPostgresqlDatabase(
            max_connections=pool_size,
            timeout=pool_timeout,
            stale_timeout=300,
            **{**unanswered_after(timeout_seconds), **params},
        )
    raise ValueError(f"DATABASE_URL must be sqlite:/// or postgresql://, not {scheme!r}")


def connect(settings):
    """Point the shared handle at DATABASE_URL (connections open per request or per job)."""
    database.initialize(
        open_database(
            settings.database_url,
            settings.database_pool_size,
            settings.database_pool_timeout,
            settings.database_timeout_seconds,
        )
    )
