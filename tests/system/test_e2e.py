"""End to end: gunicorn and `dramatiq actors` as processes, spoken to over HTTP."""

import time

import pytest
import requests

from support import wait_until
from support.environment import PROCESS_REDIS_URL
from support.processes import Service

pytestmark = pytest.mark.e2e


@pytest.fixture
def service(database_url, movie, tmp_path):
    service = Service(database_url, PROCESS_REDIS_URL, tmp_path).start()
    yield service
    service.stop()


def test_start_watch_complete_list_delete_cleanup_over_http(service, token):
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token('alice')}"
    api = f"{service.base}/api"

    started_at = time.monotonic()
    response = http.post(f"{api}/downloads/start", json={"content_id": "movie", "quality": "720p"}, timeout=5)
    assert response.status_code == 202
    download = response.json()["download"]
    assert download["status"] == "pending"

    timeline = []

    def sample():
        progress = http.get(f"{api}/downloads/{download['id']}/progress", timeout=5).json()
        point = (progress["status"], progress["progress"], progress["downloaded_bytes"])
        if not timeline or timeline[-1][1:] != point:
            timeline.append((round(time.monotonic() - started_at, 3), *point))
        return progress["status"] == "completed"

    wait_until(sample, timeout=20, interval=0.02, message="the download to complete")
    print("\ntimeline (seconds after POST, status, progress, downloaded_bytes):")
    for point in timeline:
        print("  ", point)
    statuses = [status for _, status, _, _ in timeline]
    assert statuses[-1] == "completed" and "downloading" in statuses  # pending: the answer above
    progresses = [progress for _, _, progress, _ in timeline]
    assert progresses == sorted(progresses) and len({p for p in progresses if 0 < p < 100}) >= 3
    assert timeline[-1][3] == download["file_size_bytes"]

    second = http.post(f"{api}/downloads/start", json={"content_id": "movie", "quality": "480p"}, timeout=5).json()[
        "download"
    ]
    http.post(f"{api}/downloads/{second['id']}/pause", timeout=5)
    completed = http.get(f"{api}/downloads", params={"status": "completed"}, timeout=5).json()
    assert [d["id"] for d in completed["downloads"]] == [download["id"]]
    assert completed["pagination"]["total"] == 1

    used = int(http.get(f"{api}/storage", timeout=5).json()["used_bytes"])
    assert used == int(download["file_size_bytes"]) + int(second["file_size_bytes"])
    assert http.delete(f"{api}/downloads/{download['id']}/delete", timeout=5).status_code == 200
    assert http.get(f"{api}/storage", timeout=5).json()["used_bytes"] == second["file_size_bytes"]

    cleanup = http.post(f"{api}/downloads/cleanup", timeout=5).json()
    assert (cleanup["deleted_count"], cleanup["freed_bytes"]) == (1, second["file_size_bytes"])
    assert http.get(f"{api}/storage", timeout=5).json()["used_bytes"] == "0"

    worker_log = service.logs_with_completions([download["id"]])
    assert f"[Download Worker] Processing download job: {download['id']}" in worker_log


def test_swagger_ui_and_spec_are_served_by_gunicorn(service):
    assert requests.get(f"{service.base}/docs", timeout=5).status_code == 200
    assert requests.get(f"{service.base}/docs/assets/swagger-ui-bundle.js", timeout=5).status_code == 200
    assert requests.get(f"{service.base}/openapi.json", timeout=5).json()["info"]["title"] == "Offline downloads"
