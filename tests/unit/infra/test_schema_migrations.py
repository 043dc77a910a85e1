"""A fresh database migrated by `db upgrade` has exactly the models' schema, on both back ends."""

from datetime import datetime, timedelta

import pytest

from downloads_app import create_app
from downloads_app.downloads.models import MODELS
from downloads_app.infra import schema_migrations
from downloads_app.infra.database import database
from support.environment import REDIS_URL


def describe_schema():
    """Tables → columns, primary keys, indexes and foreign keys, as comparable values."""
    schema = {}
    for table in sorted(t for t in database.get_tables() if t != "migratehistory"):
        schema[table] = {
            "columns": sorted(
                (c.name, c.data_type.lower(), c.null, c.primary_key) for c in database.get_columns(table)
            ),
            "primary_key": database.get_primary_keys(table),
            "indexes": sorted(
                (tuple(i.columns), i.unique)
                for i in database.get_indexes(table)
                if not i.name.endswith("_pkey") and not i.name.startswith("sqlite_autoindex")
            ),
            "foreign_keys": sorted((f.column, f.dest_table, f.dest_column) for f in database.get_foreign_keys(table)),
        }
    return schema


def schema_of(url, build):
    app = create_app({"TESTING": True, "DATABASE_URL": url, "REDIS_URL": REDIS_URL})
    with app.app_context(), database.connection_context():
        build()
        schema = describe_schema()
    if hasattr(database.obj, "close_all"):
        database.close_all()
    return schema


def fresh_urls(backend, tmp_path, request):
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.sqlite3'}", f"sqlite:///{tmp_path / 'models.sqlite3'}"
    databases = request.getfixturevalue("postgres_databases")
    return databases.create(), databases.create()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migrations_build_exactly_the_models_schema(backend, tmp_path, request):
    migrated_url, models_url = fresh_urls(backend, tmp_path, request)
    migrated = schema_of(migrated_url, schema_migrations.upgrade)
    from_models = schema_of(models_url, lambda: database.create_tables(MODELS))
    assert set(migrated) == {
        "account_settings",
        "contents",
        "content_sources",
        "devices",
        "downloads",
        "storage_ledger",
        "title_allowances",
    }
    assert migrated == from_models


def test_upgrade_is_idempotent_and_readiness_knows_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    app = create_app({"TESTING": True, "DATABASE_URL": url, "REDIS_URL": REDIS_URL})
    with app.app_context():
        applied = [
            "001_initial",
            "002_last_error",
            "003_idempotency_key",
            "004_sources",
            "005_offline_rules",
            "006_smart_downloads",
        ]
        assert schema_migrations.unapplied() == applied
        assert schema_migrations.upgrade() == applied
        assert schema_migrations.upgrade() == []
        assert schema_migrations.unapplied() == []


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_existing_completed_downloads_get_licences_from_their_completion_and_rollback_undoes_it(
    backend, tmp_path, request
):
    url, _ = fresh_urls(backend, tmp_path, request)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "REDIS_URL": REDIS_URL})
    completed_at = datetime(2026, 11, 20, 8, 30)
    with app.app_context(), database.connection_context():
        assert schema_migrations.upgrade(to="004_sources")[-1] == "004_sources"
        database.execute_sql(
            "INSERT INTO contents (id, title, duration_seconds, qualities, created_at)"
            f" VALUES ('m', 'M', 60, '720p', {database.param})",
            (completed_at,),
        )
        rows = [("done", "completed", completed_at), ("live", "downloading", None)]
        for download_id, status, at in rows:
            database.execute_sql(
                "INSERT INTO downloads (id, user_id, content_id, quality, status, progress, file_size_bytes,"
                " downloaded_bytes, attempts, created_at, updated_at, completed_at)"
                f" VALUES ({', '.join([database.param] * 12)})",
                (download_id, "alice", "m", "720p", status, 0, 1, 0, 1, completed_at, completed_at, at),
            )
        assert schema_migrations.upgrade(to="005_offline_rules") == ["005_offline_rules"]
        licensed = dict(database.execute_sql("SELECT id, license_expires_at FROM downloads").fetchall())
        expires = licensed["done"]
        if isinstance(expires, str):  # SQLite gives the text back
            expires = datetime.fromisoformat(expires)
        assert expires == completed_at + timedelta(days=30)
        assert licensed["live"] is None
        database.execute_sql("UPDATE downloads SET status = 'expired' WHERE id = 'done'")
        assert schema_migrations.downgrade() == "005_offline_rules"
        assert "devices" not in database.get_tables()
        statuses = dict(database.execute_sql("SELECT id, status FROM downloads").fetchall())
        assert statuses == {"done": "cancelled", "live": "downloading"}
    if hasattr(database.obj, "close_all"):
        database.close_all()
