"""End to end: gunicorn and `dramatiq actors` as processes, spoken to over HTTP."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import PROCESS_REDIS_URL, TEST_JWT_SECRET, free_port, wait_until
from downloads_app.embedded_redis import redis_answers

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e


class Service:
    """The API (gunicorn, gevent) and the worker, started as they are in production."""

    def __init__(self, database_url, log_dir):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": PROCESS_REDIS_URL,
            "JWT_SECRET": TEST_JWT_SECRET,
            "DOWNLOAD_SIMULATED_SECONDS": "1",
            "WEB_CONCURRENCY": "2",
            "PYTHONUNBUFFERED": "1",
        }
        self.log_dir = log_dir
        self.processes = {}

    def start(self):
        commands = {
            "api": [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}"],
            "worker": [sys.executable, "-m", "dramatiq", "actors", "--processes", "1", "--threads", "2"],
        }
        for name, command in commands.items():
            log = open(self.log_dir / f"{name}.log", "wb")
            self.processes[name] = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
            log.close()
        wait_until(self._ready, timeout=30, interval=0.1, message="gunicorn /readyz")

    def _ready(self):
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited early:\n{self.log(name)}")
        try:
            return requests.get(f"{self.base}/readyz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def log(self, name):
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop(self):
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def service(database_url, movie, tmp_path):
    assert redis_answers(PROCESS_REDIS_URL)
    import redis

    with redis.Redis.from_url(PROCESS_REDIS_URL) as client:
        client.flushdb()
    service = Service(database_url, tmp_path)
    service.start()
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
    assert statuses[0] == "pending" and statuses[-1] == "completed" and "downloading" in statuses
    progresses = [progress for _, _, progress, _ in timeline]
    assert progresses == sorted(progresses) and len({p for p in progresses if 0 < p < 100}) >= 3
    assert timeline[-1][3] == download["file_size_bytes"]

    second = http.post(f"{api}/downloads/start", json={"content_id": "movie", "quality": "480p"}, timeout=5).json()["download"]
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

    worker_log = service.log("worker")
    assert f"[Download Worker] Processing download job: {download['id']}" in worker_log
    assert f"[Download Worker] Job completed: {download['id']}" in worker_log


def test_swagger_ui_and_spec_are_served_by_gunicorn(service):
    assert requests.get(f"{service.base}/docs", timeout=5).status_code == 200
    assert requests.get(f"{service.base}/docs/assets/swagger-ui-bundle.js", timeout=5).status_code == 200
    assert requests.get(f"{service.base}/openapi.json", timeout=5).json()["info"]["title"] == "Offline downloads"
