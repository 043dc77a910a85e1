"""Rate limits across processes: gunicorn workers count in one Redis."""

import pytest
import requests

from support.databases import migrated_sqlite_url
from support.environment import PROCESS_REDIS_URL
from support.processes import Service


@pytest.mark.e2e
def test_limits_hold_across_gunicorn_workers(tmp_path, token):
    """Two gunicorn workers, a new connection per request: both count in Redis."""
    service = Service(
        migrated_sqlite_url(tmp_path),
        PROCESS_REDIS_URL,
        tmp_path,
        WEB_CONCURRENCY=2,
        RATELIMIT_WRITES="5 per minute",
    ).start()
    try:
        headers = {"Authorization": f"Bearer {token('carol')}", "Connection": "close"}
        statuses = [
            requests.post(f"{service.base}/api/downloads/cleanup", headers=headers, timeout=10).status_code
            for _ in range(12)
        ]
    finally:
        service.stop()
    assert statuses == [200] * 5 + [429] * 7
