"""Operating the running service: health during real downloads, Prometheus metrics, JSON logs."""

import json

import pytest
import redis
import requests

from support import metric, wait_until
from support.environment import PROCESS_REDIS_URL
from support.processes import Service

pytestmark = pytest.mark.e2e


@pytest.fixture
def service(database_url, movie, tmp_path):
    with redis.Redis.from_url(PROCESS_REDIS_URL) as client:
        client.flushdb()
    service = Service(
        database_url,
        PROCESS_REDIS_URL,
        tmp_path,
        LOG_FORMAT="json",
        DOWNLOAD_SIMULATED_SECONDS=2,
        DOWNLOAD_RECONCILE_SECONDS=0.5,
    ).start()
    yield service
    service.stop()


def test_health_metrics_and_logs_of_real_downloads(service, token, titles):
    user_token, admin_token = token("alice"), token("root", admin=True)
    user = {"Authorization": f"Bearer {user_token}"}
    api = f"{service.base}/api"
    ids = [
        requests.post(
            f"{api}/downloads/start", json={"content_id": content_id, "quality": "480p"}, headers=user, timeout=5
        ).json()["download"]["id"]
        for content_id in ("movie", *titles(2))
    ]

    def health():
        return requests.get(f"{api}/queue/health", headers={"Authorization": f"Bearer {admin_token}"}, timeout=5).json()

    running = wait_until(
        lambda: (h := health())["downloads_by_status"]["downloading"] == 2 and h["workers_alive"] == 1 and h,
        timeout=15,
        interval=0.05,
        message="two running, one worker",
    )
    print("\n/api/queue/health while running:", json.dumps(running, indent=1))
    assert running["downloads_by_status"]["pending"] == 1 and running["workers"][0]["threads"] == 2

    with requests.get(f"{api}/downloads/events", headers=user, stream=True, timeout=5) as stream:
        assert stream.status_code == 200, stream.text
        lines = stream.iter_lines()  # kept: dropping it would close the connection
        assert next(lines) == b"retry: 2000"
        wait_until(
            lambda: metric(requests.get(f"{service.base}/metrics", timeout=5).text, "downloads_sse_streams_open") == 1,
            timeout=5,
            interval=0.1,
            message="the open stream to be counted",
        )
    wait_until(
        lambda: all(
            requests.get(f"{api}/downloads/{i}", headers=user, timeout=5).json()["download"]["status"] == "completed"
            for i in ids
        ),
        timeout=20,
        interval=0.1,
        message="all completed",
    )

    api_metrics = requests.get(f"{service.base}/metrics", timeout=5).text
    assert metric(api_metrics, "downloads_started_total") == 3  # summed over both gunicorn workers
    assert (
        metric(api_metrics, "downloads_http_requests_total", method="POST", route="/api/downloads/start", status="202")
        == 3
    )
    assert (
        metric(
            api_metrics, "downloads_http_request_duration_seconds_count", method="POST", route="/api/downloads/start"
        )
        == 3
    )
    wait_until(
        lambda: metric(requests.get(f"{service.base}/metrics", timeout=5).text, "downloads_sse_streams_open") == 0,
        timeout=20,
        interval=0.2,
        message="the stream to be counted closed",
    )

    worker_log = service.logs_with_completions(ids)  # a run is measured before its completion is logged
    worker_metrics = requests.get(f"http://127.0.0.1:{service.metrics_port}/", timeout=5).text
    labels = {"actor_name": "transfer_download", "queue_name": "downloads"}
    assert metric(worker_metrics, "dramatiq_messages_total", **labels) == 3
    assert metric(worker_metrics, "dramatiq_messages_inprogress", **labels) == 0
    assert metric(worker_metrics, "downloads_transfers_total", outcome="completed") == 3
    assert metric(worker_metrics, "downloads_transferred_bytes_total") == 3 * 1000 * 1556 * 125
    assert metric(worker_metrics, "downloads_transfer_duration_seconds_count", outcome="completed") == 3

    worker_lines = [json.loads(line) for line in worker_log.splitlines() if "[Download Worker]" in line]
    completed = [entry for entry in worker_lines if entry["message"].startswith("[Download Worker] Job completed")]
    assert len(completed) == 3
    for entry in completed:
        assert entry["user_id"] == "alice" and entry["download_id"] in ids and entry["job_id"]
    api_lines = [json.loads(line) for line in service.log("api").splitlines() if line.startswith("{")]
    started = [
        entry for entry in api_lines if entry["message"].startswith("Download ") and "started" in entry["message"]
    ]
    assert {entry["download_id"] for entry in started} == set(ids) and all(entry["job_id"] for entry in started)
    for secret in (user_token, admin_token, "test-secret-"):
        assert secret not in service.log("api") and secret not in service.worker_logs()
