"""`make run`'s steps on a machine without Redis: migrate, seed, then the foreground devserver."""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from support import free_port, wait_until
from downloads_app.infra.embedded_redis import redis_answers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_devserver_starts_embedded_redis_api_and_worker_and_stops_them_on_ctrl_c(tmp_path):
    port, redis_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
        "REDIS_URL": redis_url,
        "PORT": str(port),
        "DOWNLOAD_SIMULATED_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
    }
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([*flask, "demo", "seed"], cwd=ROOT, env=env, check=True, capture_output=True)
    assert not redis_answers(redis_url)
    log_path = tmp_path / "devserver.log"
    with open(log_path, "wb") as log:
        devserver = subprocess.Popen(
            [sys.executable, "-m", "downloads_app.devserver"], cwd=ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        def ready():
            try:
                return requests.get(f"{base}/readyz", timeout=1).status_code == 200
            except requests.ConnectionError:
                assert devserver.poll() is None, log_path.read_text()
                return False

        wait_until(ready, timeout=30, interval=0.1, message="the devserver")
        output = log_path.read_text()
        assert "started an embedded one" in output and f"http://127.0.0.1:{port}/docs" in output
        token = output.split("Demo token for 'demo-user':\n", 1)[1].split("\n", 1)[0]
        assert requests.get(f"{base}/docs", timeout=5).status_code == 200
        headers = {"Authorization": f"Bearer {token}"}
        download = requests.post(
            f"{base}/api/downloads/start", json={"content_id": "spring", "quality": "480p"}, headers=headers, timeout=5
        ).json()["download"]

        def completed():
            return requests.get(f"{base}/api/downloads/{download['id']}", headers=headers, timeout=5).json()["download"]["status"] == "completed"

        wait_until(completed, timeout=15, interval=0.05, message="the download to complete")
    finally:
        os.killpg(devserver.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert devserver.wait(timeout=40) == 0, log_path.read_text()
    assert not redis_answers(redis_url)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/healthz", timeout=1)
    redis_dir = ROOT / "var" / f"redis-{redis_port}"
    assert (redis_dir / "appendonly.aof").exists()
    shutil.rmtree(redis_dir)
