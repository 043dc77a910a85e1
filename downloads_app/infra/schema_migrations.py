"""Versioned schema migrations (peewee-migrate) kept in the top-level `migrations/` folder (MIGRATIONS_DIR)."""

import logging
from contextlib import contextmanager
from pathlib import Path

from peewee import IntegrityError, SqliteDatabase
from peewee_migrate import Router

from downloads_app.config import SETTINGS
from downloads_app.infra.database import database

DEFAULT_MIGRATIONS_DIR = SETTINGS["MIGRATIONS_DIR"][1]


def router(migrations_dir):
    return Router(database.obj, migrate_dir=Path(migrations_dir), logger=logging.getLogger("peewee_migrate"))


@contextmanager
def _foreign_keys_off_on_sqlite():
    """SQLite changes a column by copying its table and dropping the old one, which the rows
    referring to it would refuse: migrate with foreign keys off (outside any transaction, where
    SQLite takes the pragma), then check them all, as SQLite's own procedure for it says."""
    if not isinstance(database.obj, SqliteDatabase):
        yield
        return
    database.pragma("foreign_keys", 0)
    try:
        yield
        broken = database.execute_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise IntegrityError(f"The migration broke foreign keys: {broken[:5]}")
    finally:
        database.pragma("foreign_keys", 1)


def upgrade(migrations_dir=DEFAULT_MIGRATIONS_DIR, to=None):
    """Apply every migration not yet applied, or those up to `to`; returns their names."""
    with database.connection_context(), _foreign_keys_off_on_sqlite():
        return router(migrations_dir).run(to)


def downgrade(migrations_dir=DEFAULT_MIGRATIONS_DIR):
    """Roll the latest applied migration back; returns its name."""
    with database.connection_context(), _foreign_keys_off_on_sqlite():
        migrations = router(migrations_dir)
        name = migrations.done[-1]
        migrations.rollback()
        return name


def unapplied(migrations_dir=DEFAULT_MIGRATIONS_DIR):
    """Names of migrations that exist but are not applied."""
    with database.connection_context():
        return router(migrations_dir).diff
