"""The database handle: pooled SQLite (WAL, busy timeout, BEGIN IMMEDIATE) or pooled PostgreSQL."""

from pathlib import Path
from urllib.parse import urlparse

from peewee import DatabaseProxy
from playhouse.db_url import parse as parse_db_url
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

database = DatabaseProxy()

SQLITE_BUSY_TIMEOUT_SECONDS = 10


def open_database(url, pool_size=20, pool_timeout=10.0):
    """Build the peewee database for `url` (`sqlite:///path` or `postgresql://...`)."""
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
            **params,
        )
    raise ValueError(f"DATABASE_URL must be sqlite:/// or postgresql://, not {scheme!r}")


def connect(settings):
    """Point the shared handle at DATABASE_URL (connections open per request or per job)."""
    database.initialize(
        open_database(settings.database_url, settings.database_pool_size, settings.database_pool_timeout)
    )
