"""Readiness checks: the database answers and is migrated, Redis answers."""
from flask import current_app

from downloads_app.infra import schema_migrations
from downloads_app.infra.database import database


def _check_database():
    database.execute_sql("SELECT 1")
    missing = schema_migrations.unapplied()
    return f"migrations not applied: {', '.join(missing)}" if missing else "ok"


def _check_redis():
    current_app.extensions["broker"].client.ping()
    return "ok"


CHECKS = {"database": _check_database, "redis": _check_redis}


def check():
    """{name: "ok" or what is wrong} for every dependency."""
    results = {}
    for name, probe in CHECKS.items():
        try:
            results[name] = probe()
        except Exception as exc:  # a probe reports any failure rather than raising it
            results[name] = f"unavailable: {type(exc).__name__}"
    return results
