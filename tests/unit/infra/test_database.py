"""The database handle: a PostgreSQL server that stops answering fails calls instead of hanging them."""

from downloads_app.infra.database import open_database


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
