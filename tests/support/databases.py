"""Throwaway PostgreSQL databases and migrated SQLite files for the tests."""

import secrets
from contextlib import closing
from urllib.parse import urlparse

import psycopg2

from support.environment import POSTGRES_ADMIN_URL, REDIS_URL


def postgres_admin():
    connection = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=3)
    connection.autocommit = True
    return connection


def postgres_available():
    try:
        postgres_admin().close()
        return True
    except psycopg2.OperationalError:
        return False


class PostgresDatabases:
    """Creates throwaway databases on the PostgreSQL server and drops them at the end."""

    def __init__(self):
        self.names = []

    def create(self):
        name = f"downloads_test_{secrets.token_hex(6)}"
        with closing(postgres_admin()) as admin, admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return urlparse(POSTGRES_ADMIN_URL)._replace(path=f"/{name}").geturl()

    def drop_all(self):
        with closing(postgres_admin()) as admin, admin.cursor() as cursor:
            for name in self.names:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrated_sqlite_url(directory):
    url = f"sqlite:///{directory / 'downloads.sqlite3'}"
    from downloads_app import create_app
    from downloads_app.infra import schema_migrations

    app = create_app({"TESTING": True, "DATABASE_URL": url, "REDIS_URL": REDIS_URL})
    with app.app_context():
        schema_migrations.upgrade()
    return url
