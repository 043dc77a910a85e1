"""Readiness checks: the database answers and is migrated, Redis answers."""

from downloads_app.infra import schema_migrations
from downloads_app.infra.database import database


def _check_database(settings, redis_client):
    database.execute_sql("SELECT 1")
    missing = schema_migrations.unapplied(settings.migrations_dir)
    return f"migrations not applied: {', '.join(missing)}" if missing else "ok"


def _check_redis(settings, redis_client):
    redis_client.ping()
    return "ok"


CHECKS = {"database": _check_database, "redis": _check_redis}


def check(settings, redis_client):
    """{name: "ok" or what is wrong} for every dependency."""
    results = {}
    for name, probe in CHECKS.items():
        try:
            results[name] = probe(settings, redis_client)
        except Exception as exc:  # a probe reports any failure rather than raising it
            results[name] = f"unavailable: {type(exc).__name__}"
    return results
