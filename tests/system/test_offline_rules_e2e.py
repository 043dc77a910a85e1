"""One user's story of offline viewing against gunicorn and `dramatiq actors`: devices, licences that
expire by themselves (periods of seconds, not days), renewals until refused, deregistration."""

from datetime import UTC, datetime, timedelta

import pytest
import requests

from support import metric, wait_until
from support.environment import PROCESS_REDIS_URL
from support.processes import Service

pytestmark = pytest.mark.e2e

SHORT_LICENSE_SECONDS = 4  # the title "short": its licence runs out while the test watches
RECONCILE_SECONDS = 0.5


@pytest.fixture
def service(database_url, movie, tmp_path):
    service = Service(
        database_url,
        PROCESS_REDIS_URL,
        tmp_path,
        DOWNLOAD_RECONCILE_SECONDS=RECONCILE_SECONDS,
        MAX_DEVICES_PER_USER=2,
        MAX_RENEWALS_PER_YEAR=2,
    ).start()
    yield service
    service.stop()


def at(stamp):
    return datetime.fromisoformat(stamp)


def test_devices_licences_renewals_and_expiry_over_http(service, token):
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token('alice')}"
    api = f"{service.base}/api"

    def call(method, path, **kwargs):
        return getattr(http, method)(f"{api}{path}", timeout=10, **kwargs)

    short = {"id": "short", "title": "Short", "duration_seconds": 60, "qualities": ["480p"]}
    added = requests.post(
        f"{api}/contents",
        json={**short, "license_days": SHORT_LICENSE_SECONDS / 86_400},
        headers={"Authorization": f"Bearer {token('root', admin=True)}"},
        timeout=10,
    )
    assert added.status_code == 201, added.json()

    phone = call("post", "/devices", json={"name": "Phone", "platform": "ios"}).json()["device"]
    tablet = call("post", "/devices", json={"name": "Tablet", "platform": "android"}).json()["device"]
    third = call("post", "/devices", json={"name": "Laptop", "platform": "macos"})
    assert third.status_code == 409 and third.json()["reason"] == "too_many_devices"
    unnamed = call("post", "/downloads/start", json={"content_id": "movie", "quality": "480p"})
    assert unnamed.status_code == 422 and unnamed.json()["reason"] == "device_required"

    def start(content_id, device):
        body = {"content_id": content_id, "quality": "480p", "device_id": device["id"]}
        started = call("post", "/downloads/start", json=body)
        assert started.status_code == 202, started.json()
        return started.json()["download"]["id"]

    on_phone, on_tablet, short_on_tablet = start("movie", phone), start("movie", tablet), start("short", tablet)

    def completed(download_id):
        download = call("get", f"/downloads/{download_id}").json()["download"]
        return download["status"] == "completed" and download

    for download_id in (on_phone, on_tablet):
        download = wait_until(lambda d=download_id: completed(d), timeout=60, message="a download to complete")
        assert at(download["license_expires_at"]) - at(download["completed_at"]) == timedelta(days=30)

    # The phone plays and renews until refused: the title's renewals are per account, so the
    # tablet's copy shares them.
    played = call("post", f"/downloads/{on_phone}/play").json()["download"]
    assert at(played["license_expires_at"]) == at(played["played_at"]) + timedelta(hours=48)
    first = call("post", f"/downloads/{on_phone}/renew").json()["download"]
    assert at(first["license_expires_at"]) == at(played["license_expires_at"]) + timedelta(days=30)
    assert first["played_at"] is None
    call("post", f"/downloads/{on_tablet}/renew")
    refused = call("post", f"/downloads/{on_phone}/renew")
    assert refused.status_code == 409 and refused.json()["reason"] == "renewals_spent", refused.json()
    api_metrics = requests.get(f"{service.base}/metrics", timeout=5).text  # summed over gunicorn's workers
    assert metric(api_metrics, "downloads_licences_renewed_total", status="completed") == 2

    # The short title's licence runs out and the workers' expiry job expires it by itself.
    seen = []

    def expired():
        download = call("get", f"/downloads/{short_on_tablet}").json()["download"]
        seen.append((datetime.now(UTC), download["status"], download["license_expires_at"]))
        return download["status"] == "expired" and download

    gone = wait_until(expired, timeout=SHORT_LICENSE_SECONDS + 60, interval=0.1, message="the licence to expire")
    expiry = at(gone["license_expires_at"])
    assert at(gone["completed_at"]) + timedelta(seconds=SHORT_LICENSE_SECONDS) == expiry
    assert not [when for when, status, _ in seen if status == "expired" and when < expiry]  # never early
    assert call("get", f"/downloads/{short_on_tablet}/file").status_code == 410
    holds = {d["name"]: (d["download_count"], d["used_bytes"]) for d in call("get", "/devices").json()["devices"]}
    assert holds["Tablet"][0] == 1  # the movie; the expired one holds nothing
    assert int(call("get", "/storage").json()["used_bytes"]) == 2 * 1000 * 1556 * 125
    wait_until(
        lambda: worker_metric(service, "downloads_licences_expired_total") >= 1,
        timeout=30,
        message="the worker's expiry counter",
    )

    # Deregistering the phone deletes its download and frees its quota.
    deregistered = call("delete", f"/devices/{phone['id']}").json()
    assert (deregistered["deleted_count"], deregistered["freed_bytes"]) == (1, str(1000 * 1556 * 125))
    assert call("get", "/storage").json()["used_bytes"] == str(1000 * 1556 * 125)
    assert sorted(d["id"] for d in call("get", "/downloads").json()["downloads"]) == sorted(
        [on_tablet, short_on_tablet]
    )


def worker_metric(service, name):
    try:
        text = requests.get(f"http://127.0.0.1:{service.metrics_port}/", timeout=5).text
    except requests.RequestException:
        return 0
    return metric(text, name) or 0
