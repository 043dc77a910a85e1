"""Versioned schema migrations (peewee-migrate) kept in the top-level `migrations/` folder (MIGRATIONS_DIR)."""

import logging
from pathlib import Path

from peewee_migrate import Router

from downloads_app.config import SETTINGS
from downloads_app.infra.database import database

DEFAULT_MIGRATIONS_DIR = SETTINGS["MIGRATIONS_DIR"][1]


def router(migrations_dir):
    return Router(database.obj, migrate_dir=Path(migrations_dir), logger=logging.getLogger("peewee_migrate"))


def upgrade(migrations_dir=DEFAULT_MIGRATIONS_DIR):
    """Apply every migration not yet applied; returns their names."""
    with database.connection_context():
        return router(migrations_dir).run()


def unapplied(migrations_dir=DEFAULT_MIGRATIONS_DIR):
    """Names of migrations that exist but are not applied."""
    with database.connection_context():
        return router(migrations_dir).diff
