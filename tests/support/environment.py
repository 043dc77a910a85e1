"""What every test shares: the token secret, Redis and PostgreSQL addresses, and what CI requires."""

import os

TEST_JWT_SECRET = "test-secret-" + "x" * 60
# Redis database numbers of the shared server reserved for the tests: 15 and 14, and two
# lower ones for each further pytest-xdist worker (gw1: 13 and 12, …), so workers never share one.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
REDIS_DB_IN_PROCESS = 15 - 2 * _WORKER
REDIS_DB_PROCESSES = 14 - 2 * _WORKER

REDIS_BASE_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
REDIS_URL = f"{REDIS_BASE_URL}/{REDIS_DB_IN_PROCESS}"
PROCESS_REDIS_URL = f"{REDIS_BASE_URL}/{REDIS_DB_PROCESSES}"

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"
