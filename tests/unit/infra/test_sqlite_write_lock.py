"""SQLite's write lock: waiting for it lets the other greenlets run; it still gives up after the busy timeout."""

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import peewee
import pytest

from downloads_app.infra import database as database_module
from downloads_app.infra.database import open_database

ROOT = Path(__file__).resolve().parents[3]
WRITER = ROOT / "tests" / "support" / "gevent_sqlite_writer.py"
TICKS_WHILE_WAITING = 5


@pytest.fixture
def sqlite_path(tmp_path):
    path = tmp_path / "lock.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=wal")
        setup.execute("CREATE TABLE writes (n INTEGER)")
    return path


@pytest.fixture
def lock_holder(sqlite_path):
    """Another connection, which takes the file's write lock with `holder.execute("BEGIN IMMEDIATE")`."""
    holder = sqlite3.connect(sqlite_path, isolation_level=None, check_same_thread=False)
    yield holder
    holder.close()


def written_rows(path):
    with sqlite3.connect(path) as reader:
        return reader.execute("SELECT count(*) FROM writes").fetchone()[0]


@pytest.mark.timeout(60)
def test_under_gevent_a_write_waiting_for_the_lock_lets_other_greenlets_run(sqlite_path, lock_holder):
    lock_holder.execute("BEGIN IMMEDIATE")
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), str(sqlite_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        for line in writer.stdout:
            seen.append(line.strip())
            ticks = seen[seen.index("writing") + 1 :] if "writing" in seen else []
            if len(ticks) == TICKS_WHILE_WAITING:
                # The writer is still waiting: it can only get the lock once this commits.
                assert "written" not in ticks
                lock_holder.execute("COMMIT")
            if seen[-1] == "written":
                break
        writer.stdout.close()
        assert writer.wait(timeout=30) == 0, writer.stderr.read()
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.stderr.close()
    assert seen.index("written") > seen.index("writing") + TICKS_WHILE_WAITING
    assert written_rows(sqlite_path) == 1


def test_threads_wait_for_the_lock_and_write_once_it_is_free(sqlite_path, lock_holder):
    db = open_database(f"sqlite:///{sqlite_path}")
    lock_holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.2, lock_holder.execute, ("COMMIT",))
    release.start()
    try:
        with db.connection_context():
            with db.atomic():  # BEGIN IMMEDIATE waits
                db.execute_sql("INSERT INTO writes (n) VALUES (1)")
            lock_holder.execute("BEGIN IMMEDIATE")
            threading.Timer(0.2, lock_holder.execute, ("COMMIT",)).start()
            db.execute_sql("INSERT INTO writes (n) VALUES (2)")  # no transaction: the statement waits
    finally:
        release.join()
    assert written_rows(sqlite_path) == 2


def test_a_lock_held_past_the_busy_timeout_still_fails_with_database_is_locked(sqlite_path, lock_holder, monkeypatch):
    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_SECONDS", 0.3)
    db = open_database(f"sqlite:///{sqlite_path}")
    lock_holder.execute("BEGIN IMMEDIATE")
    with db.connection_context():
        started = time.monotonic()
        with pytest.raises(peewee.OperationalError, match=r"^database is locked$"), db.atomic():
            db.execute_sql("INSERT INTO writes (n) VALUES (1)")
        assert time.monotonic() - started >= 0.3
        started = time.monotonic()
        with pytest.raises(peewee.OperationalError, match=r"^database is locked$"):
            db.execute_sql("INSERT INTO writes (n) VALUES (2)")
        assert time.monotonic() - started >= 0.3
    lock_holder.execute("COMMIT")
    assert written_rows(sqlite_path) == 0
