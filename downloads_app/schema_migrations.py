"""Versioned schema migrations (peewee-migrate) kept in the top-level `migrations/` folder."""
import logging

from peewee_migrate import Router

from downloads_app.config import PROJECT_ROOT
from downloads_app.db import database

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def router():
    logger = logging.getLogger("peewee_migrate")
    return Router(database.obj, migrate_dir=MIGRATIONS_DIR, logger=logger)


def upgrade():
    """Apply every migration not yet applied; returns their names."""
    with database.connection_context():
        return router().run()


def unapplied():
    """Names of migrations that exist but are not applied."""
    with database.connection_context():
        return router().diff
