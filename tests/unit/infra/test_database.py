"""The database handle: a PostgreSQL server that stops answering fails calls instead of hanging them;
the pool asks the server about a connection only after it sat idle."""

from contextlib import closing

import peewee
import pytest

from downloads_app.infra import database
from downloads_app.infra.database import open_database
from support.databases import postgres_admin


def test_postgres_connections_give_up_on_an_unanswering_server_after_the_timeout():
    db = open_database("postgresql://postgres@10.0.0.1:5432/downloads", timeout_seconds=4.5)
    assert db.connect_params == {
        "user": "postgres",
        "host": "10.0.0.1",
        "port": 5432,
        "connect_timeout": 5,
        "tcp_user_timeout": 4500,
        "keepalives": 1,
        "keepalives_idle": 1,
        "keepalives_interval": 1,
        "keepalives_count": 3,
    }


def test_options_in_the_url_win_over_the_timeout():
    db = open_database("postgresql://postgres@db/downloads?tcp_user_timeout=60000&connect_timeout=30")
    assert db.connect_params["tcp_user_timeout"] == 60000
    assert db.connect_params["connect_timeout"] == 30
    assert db.connect_params["keepalives_count"] == 3


def test_sqlite_has_no_network_options():
    db = open_database("sqlite:///:memory:", timeout_seconds=1)
    assert "tcp_user_timeout" not in db.connect_params


# ---------------------------------------------------------------- the PostgreSQL pool's checkouts


@pytest.fixture
def pool(postgres_url, monkeypatch):
    """(the pool, the list of its liveness round trips); each checkout is `with pool.connection_context()`."""
    db = open_database(postgres_url, pool_size=2)
    pings = []
    ping = db._adapter.is_connection_closed
    monkeypatch.setattr(db._adapter, "is_connection_closed", lambda conn: pings.append(conn) or ping(conn))
    yield db, pings
    db.close_all()


def _backend_pid(db):
    with db.connection_context():
        return db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]


def _terminate(pid):
    with closing(postgres_admin()) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_connection_back_from_a_request_just_now_goes_out_without_a_round_trip(pool):
    db, pings = pool
    pid = _backend_pid(db)
    assert [_backend_pid(db) for _ in range(5)] == [pid] * 5
    assert pings == []


def test_a_connection_that_sat_idle_is_asked_first_and_replaced_if_dead(pool, monkeypatch):
    db, pings = pool
    pid = _backend_pid(db)
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)  # every connection has sat "long"
    assert _backend_pid(db) == pid and len(pings) == 1
    _terminate(pid)
    replaced = _backend_pid(db)  # the ping finds it dead: a new connection, no error
    assert replaced != pid and len(pings) == 2


def test_a_busy_connection_that_died_fails_one_query_and_is_discarded(pool):
    db, _ = pool
    pid = _backend_pid(db)
    _terminate(pid)
    with pytest.raises((peewee.OperationalError, peewee.InterfaceError)):
        _backend_pid(db)
    assert _backend_pid(db) != pid  # the next checkout opens a new one
