"""The database handle: pooled SQLite (WAL, BEGIN IMMEDIATE, lock waits that sleep in Python) or pooled PostgreSQL."""

import math
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlparse

from peewee import DatabaseProxy
from playhouse.db_url import parse as parse_db_url
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

database = DatabaseProxy()

SQLITE_BUSY_TIMEOUT_SECONDS = 10
# A pooled PostgreSQL connection back in the pool for longer than this is asked whether it still
# lives (a round trip) before it is handed out again; a busier one is handed out as it is.
PING_AFTER_IDLE_SECONDS = 1.0


class PooledPostgres(PooledPostgresqlDatabase):
    """Peewee's PostgreSQL pool, asking the server only about connections that sat idle.

    Peewee 4 sends `SELECT 1` at every checkout: under load one more round trip per request, as
    costly as the query the request came for. A connection that sat idle for less than
    PING_AFTER_IDLE_SECONDS goes out on what libpq already knows of it (closed, or its
    transaction status lost); one that sat longer is asked, as before: that is when a server
    restart or an idle timeout drops connections. One dropped in between fails its request's
    query (503), and the pool discards it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._returned_at = {}  # connection key -> when it came back to the pool

    def _close(self, conn, close_conn=False):
        self._returned_at[self.conn_key(conn)] = time.monotonic()
        super()._close(conn, close_conn)

    def _close_raw(self, conn):
        self._returned_at.pop(self.conn_key(conn), None)
        super()._close_raw(conn)

    def _is_closed(self, conn):
        returned_at = self._returned_at.get(self.conn_key(conn), 0.0)
        if time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS:
            return bool(conn.closed) or self._adapter.txn_status(conn) == self._adapter.txn_unknown
        return super()._is_closed(conn)


# A statement waiting for SQLite's write lock tries again after this pause, doubled each time
# up to the longest: the lock is held for a transaction, a few milliseconds.
SQLITE_LOCK_RETRY_FIRST_SECONDS = 0.0005
SQLITE_LOCK_RETRY_LONGEST_SECONDS = 0.004


def _waiting_for_the_lock(statement):
    """Run `statement()`; while SQLite answers SQLITE_BUSY, sleep and run it again.

    `time.sleep` is gevent's in the API's workers, so the worker's other greenlets run
    meanwhile, and a real sleep in the worker's threads. After SQLITE_BUSY_TIMEOUT_SECONDS the
    last "database is locked" is raised, as SQLite's own busy timeout would.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    pause = SQLITE_LOCK_RETRY_FIRST_SECONDS
    while True:
        try:
            return statement()
        except sqlite3.OperationalError as exc:
            left = deadline - time.monotonic()
            # The primary code: SQLITE_BUSY_RECOVERY and SQLITE_BUSY_SNAPSHOT are waits too.
            if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) != sqlite3.SQLITE_BUSY or left <= 0:
                raise
        time.sleep(min(pause, left))
        pause = min(pause * 2, SQLITE_LOCK_RETRY_LONGEST_SECONDS)


class _LockWaitingCursor(sqlite3.Cursor):
    """A cursor whose statements outside a transaction wait for the write lock in Python.

    Outside a transaction a statement that got SQLITE_BUSY did nothing, so it can run again:
    `BEGIN IMMEDIATE`, or a write in autocommit. Inside one the lock is already held.
    """

    def execute(self, sql, parameters=()):
        if self.connection.in_transaction:
            return super().execute(sql, parameters)
        return _waiting_for_the_lock(lambda: super(_LockWaitingCursor, self).execute(sql, parameters))


class _LockWaitingConnection(sqlite3.Connection):
    """A SQLite connection without SQLite's busy handler, whose cursors wait for the lock themselves.

    The busy handler sleeps inside C: under gevent that stops the whole worker, every greenlet
    of it, for the whole wait, and a greenlet holding the lock across a Redis call could then
    never commit (its waiter timed out first).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "timeout": 0})

    def cursor(self, factory=_LockWaitingCursor):
        return super().cursor(factory)


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
        # lock at BEGIN so two writers queue for it (up to SQLITE_BUSY_TIMEOUT_SECONDS)
        # instead of failing. Pooled: opening a connection and setting its pragmas cost
        # more than a query.
        return PooledSqliteDatabase(
            path,
            max_connections=pool_size,
            timeout=pool_timeout,
            stale_timeout=300,
            check_same_thread=False,
            factory=_LockWaitingConnection,
            pragmas={"journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1},
            lock_type="IMMEDIATE",
            returning_clause=True,
        )
    if scheme in ("postgres", "postgresql"):
        params = parse_db_url(url)
        return PooledPostgres(
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
