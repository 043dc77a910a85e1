"""A fresh database migrated by `db upgrade` has exactly the models' schema, on both back ends."""

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
    assert set(migrated) == {"contents", "content_sources", "downloads", "storage_ledger"}
    assert migrated == from_models


def test_upgrade_is_idempotent_and_readiness_knows_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    app = create_app({"TESTING": True, "DATABASE_URL": url, "REDIS_URL": REDIS_URL})
    with app.app_context():
        applied = ["001_initial", "002_last_error", "003_idempotency_key", "004_sources"]
        assert schema_migrations.unapplied() == applied
        assert schema_migrations.upgrade() == applied
        assert schema_migrations.upgrade() == []
        assert schema_migrations.unapplied() == []
