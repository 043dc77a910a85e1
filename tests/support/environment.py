"""What every test shares: the token secret, Redis and PostgreSQL addresses, and what CI requires."""

import os

TEST_JWT_SECRET = "test-secret-" + "x" * 60
# Redis database numbers of the shared server reserved for the tests.
REDIS_DB_IN_PROCESS = 15
REDIS_DB_PROCESSES = 14

REDIS_BASE_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
REDIS_URL = f"{REDIS_BASE_URL}/{REDIS_DB_IN_PROCESS}"
PROCESS_REDIS_URL = f"{REDIS_BASE_URL}/{REDIS_DB_PROCESSES}"

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"
