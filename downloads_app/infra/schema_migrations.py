"""Versioned schema migrations (peewee-migrate) kept in the top-level `migrations/` folder (MIGRATIONS_DIR)."""
import logging

from pathlib import Path

from flask import current_app
from peewee_migrate import Router

from downloads_app.infra.database import database


def router():
    logger = logging.getLogger("peewee_migrate")
    return Router(database.obj, migrate_dir=Path(current_app.config["MIGRATIONS_DIR"]), logger=logger)


def upgrade():
    """Apply every migration not yet applied; returns their names."""
    with database.connection_context():
        return router().run()


def unapplied():
    """Names of migrations that exist but are not applied."""
    with database.connection_context():
        return router().diff
