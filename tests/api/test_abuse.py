"""Abuse: oversized bodies, rate limits, the active-download cap, idempotent starts, headers, CORS."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from downloads_app import create_app
from downloads_app.downloads.models import Download, StorageLedger
from support.databases import migrated_sqlite_url
from support.environment import REDIS_URL, TEST_JWT_SECRET


def start(client, auth, content_id="movie", quality="720p", user="alice", key=None):
    headers = auth(user)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/api/downloads/start", json={"content_id": content_id, "quality": quality}, headers=headers)


def stored(app, user="alice"):
    """(downloads of `user`, bytes their ledger holds)."""
    with app.app_context():
        ledger = StorageLedger.get_or_none(StorageLedger.user_id == user)
        return list(Download.select().where(Download.user_id == user)), ledger.used_bytes if ledger else 0


def queued(redis_client):
    return redis_client.llen("dramatiq:downloads")


# ---------------------------------------------------------------- bodies


def test_the_body_limit_is_configurable(app, client, auth, movie, configure):
    configure(MAX_CONTENT_LENGTH=40)
    assert start(client, auth).status_code == 413  # the body is 42 bytes


# ---------------------------------------------------------------- rate limits


def test_starts_are_limited_per_user_with_retry_after(app, client, auth, titles, configure):
    configure(RATELIMIT_START="3 per minute")
    ids = titles(5)
    answers = [start(client, auth, content_id) for content_id in ids[:4]]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    refused = answers[-1]
    assert refused.json["success"] is False and "3 per 1 minute" in refused.json["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 61  # the rest of the minute's window
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert len(stored(app)[0]) == 3
    assert start(client, auth, ids[4], user="bob").status_code == 202  # bob has his own budget


def test_every_write_counts_against_one_budget_and_reads_are_free(app, client, auth, movie, configure):
    configure(RATELIMIT_WRITES="4 per minute")
    download = start(client, auth).json["download"]  # 1
    path = f"/api/downloads/{download['id']}"
    assert client.post(f"{path}/pause", headers=auth()).status_code == 200  # 2
    assert client.post(f"{path}/resume", headers=auth()).status_code == 200  # 3
    assert client.post("/api/session", headers=auth()).status_code == 200  # 4
    refused = client.post(f"{path}/cancel", headers=auth())
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert stored(app)[0][0].status == "pending"  # the refused cancel changed nothing
    for _ in range(10):
        assert client.get(path, headers=auth()).status_code == 200
    assert client.post("/api/downloads/cleanup", headers=auth("bob")).status_code == 200


def test_requests_without_a_valid_token_are_limited_by_address(app, client, movie, configure):
    configure(RATELIMIT_WRITES="2 per minute")
    statuses = [
        client.post("/api/downloads/cleanup", headers={"Authorization": "Bearer forged"}).status_code for _ in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_limits_can_be_switched_off(tmp_path, auth):
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": migrated_sqlite_url(tmp_path),
            "REDIS_URL": REDIS_URL,
            "JWT_SECRET": TEST_JWT_SECRET,
            "RATELIMIT_ENABLED": False,
            "RATELIMIT_WRITES": "1 per minute",
        }
    )
    client = app.test_client()
    assert [client.post("/api/downloads/cleanup", headers=auth()).status_code for _ in range(3)] == [200] * 3


# ---------------------------------------------------------------- active cap


def test_active_downloads_are_capped_per_user(app, client, auth, titles, configure):
    configure(MAX_ACTIVE_DOWNLOADS_PER_USER=2)
    first, second, third = titles(3)
    a = start(client, auth, first).json["download"]
    assert start(client, auth, second).status_code == 202
    before = stored(app)
    refused = start(client, auth, third)
    assert refused.status_code == 409 and refused.json["max_active_downloads"] == 2
    assert "2 downloads pending or downloading" in refused.json["message"]
    assert stored(app) == before  # neither a record nor a reservation
    assert start(client, auth, third, user="bob").status_code == 202

    # Paused downloads are not active; resuming one that would exceed the cap is refused.
    assert client.post(f"/api/downloads/{a['id']}/pause", headers=auth()).status_code == 200
    assert start(client, auth, third).status_code == 202
    resumed = client.post(f"/api/downloads/{a['id']}/resume", headers=auth())
    assert resumed.status_code == 409
    with app.app_context():
        assert Download.get_by_id(a["id"]).status == "paused"


def test_the_cap_holds_under_concurrent_starts(app, auth, titles, configure):
    configure(MAX_ACTIVE_DOWNLOADS_PER_USER=2)
    ids = titles(8)

    def one(content_id):
        return start(app.test_client(), auth, content_id).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(one, ids))
    assert statuses == [202, 202] + [409] * 6
    downloads, used = stored(app)
    assert len(downloads) == 2 and used == sum(d.file_size_bytes for d in downloads)


# ---------------------------------------------------------------- idempotent starts


def test_a_repeated_idempotency_key_returns_the_same_download(app, client, auth, movie, redis_client):
    first = start(client, auth, key="order-42")
    again = start(client, auth, key="order-42")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json["download"]["id"] == first.json["download"]["id"]
    assert again.json["message"] == "Download already started with this Idempotency-Key"
    downloads, used = stored(app)
    assert len(downloads) == 1 and used == downloads[0].file_size_bytes and queued(redis_client) == 1


def test_an_idempotency_key_reused_for_another_download_is_refused(app, client, auth, movie):
    start(client, auth, key="k1")
    before = stored(app)
    refused = start(client, auth, quality="480p", key="k1")
    assert refused.status_code == 422 and "use a new key" in refused.json["message"]
    assert stored(app) == before
    assert start(client, auth, quality="480p", key="k1", user="bob").status_code == 202  # keys are per user


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "two words"])
def test_malformed_idempotency_keys_are_refused(client, auth, movie, key):
    response = start(client, auth, key=key)
    assert response.status_code == 422 and "Idempotency-Key" in json.dumps(response.json["errors"])


def test_concurrent_repeats_of_one_key_make_one_download(app, auth, movie, redis_client):
    def one(_):
        response = start(app.test_client(), auth, key="same")
        return response.status_code, response.json["download"]["id"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(8)))
    assert sorted(status for status, _ in answers) == [200] * 7 + [202]
    assert len({download_id for _, download_id in answers}) == 1
    assert len(stored(app)[0]) == 1 and queued(redis_client) == 1


def test_a_title_already_held_is_returned_not_started_again(app, client, auth, movie):
    first = start(client, auth).json["download"]
    again = start(client, auth)
    assert again.status_code == 200 and again.json["download"]["id"] == first["id"]
    assert again.json["message"] == "You already have this title at this quality (pending): no new download"
    assert start(client, auth, quality="480p").status_code == 202  # another quality is another download
    client.post(f"/api/downloads/{first['id']}/cancel", headers=auth())
    fresh = start(client, auth)  # cancelled (or failed) ones do not count: start anew
    assert fresh.status_code == 202 and fresh.json["download"]["id"] != first["id"]


def test_retrying_a_cancelled_download_of_a_held_title_is_refused(app, client, auth, movie):
    old = start(client, auth).json["download"]
    client.post(f"/api/downloads/{old['id']}/cancel", headers=auth())
    assert start(client, auth).status_code == 202
    before = stored(app)
    refused = client.post(f"/api/downloads/{old['id']}/retry", headers=auth())
    assert refused.status_code == 409 and refused.json["status"] == "pending"
    assert "already have this title at this quality" in refused.json["message"]
    assert stored(app) == before


def test_a_held_title_is_returned_even_when_the_quota_is_full(app, client, auth, movie, configure):
    configure(STORAGE_QUOTA_BYTES=500_000_000)  # one 720p (416,625,000 bytes) fits
    first = start(client, auth).json["download"]
    again = start(client, auth)
    assert again.status_code == 200 and again.json["download"]["id"] == first["id"]
    assert start(client, auth, quality="1080p").status_code == 413


# ---------------------------------------------------------------- headers and CORS


@pytest.mark.parametrize("path", ["/", "/admin", "/docs"])
def test_html_pages_carry_security_headers(client, path):
    response = client.get(path)
    response.close()
    assert response.status_code == 200 and response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_swagger_uis_inline_script_carries_the_policys_nonce(client):
    response = client.get("/docs")
    nonce = response.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in response.get_data(as_text=True)
    assert client.get("/docs").headers["Content-Security-Policy"] != response.headers["Content-Security-Policy"]


def test_api_answers_are_nosniff_and_cors_is_off_by_default(client, auth):
    response = client.get("/api/storage", headers={**auth(), "Origin": "https://evil.example"})
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options(
        "/api/downloads/start",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
        },
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_allows_only_the_configured_origins(tmp_path, auth):
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": migrated_sqlite_url(tmp_path),
            "REDIS_URL": REDIS_URL,
            "JWT_SECRET": TEST_JWT_SECRET,
            "CORS_ORIGINS": ["https://app.example"],
        }
    )
    client = app.test_client()
    preflight = client.options(
        "/api/downloads/start",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key, If-None-Match",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "idempotency-key" in allowed and "if-none-match" in allowed
    response = client.get("/api/storage", headers={**auth(), "Origin": "https://app.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    exposed = response.headers["Access-Control-Expose-Headers"]
    assert "Retry-After" in exposed and "ETag" in exposed
    other = client.get("/api/storage", headers={**auth(), "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    page = client.get("/", headers={"Origin": "https://app.example"})
    page.close()
    assert "Access-Control-Allow-Origin" not in page.headers


def test_made_up_methods_add_no_series_to_the_metrics(client):
    def series():
        client.get("/metrics")  # its own series exist from the first call on
        return client.get("/metrics").text

    assert client.open("/api/downloads", method="BREW").status_code == 405
    before = series()
    for n in range(20):
        assert client.open("/api/downloads", method=f"BREW{n}").status_code == 405
    after = series()
    assert "BREW" not in after and 'method="other"' in after
    assert after.count("\n") == before.count("\n")
