"""`make run` on a machine without Redis: the devserver migrates, seeds, starts everything, says where to look."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from downloads_app import DEV_SECRET_WARNED
from downloads_app.infra.embedded_redis import redis_answers
from support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_devserver_starts_embedded_redis_api_and_worker_and_stops_them_on_ctrl_c(tmp_path):
    """What `make run` runs once installed: migrations, demo titles, Redis, gunicorn and the worker."""
    port, redis_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {
        **{name: value for name, value in os.environ.items() if name != "JWT_SECRET"},  # a newcomer sets none
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
        "REDIS_URL": redis_url,
        "PORT": str(port),
        "DOWNLOAD_SIMULATED_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
    }
    assert not redis_answers(redis_url)
    log_path = tmp_path / "devserver.log"
    with open(log_path, "wb") as log:
        devserver = subprocess.Popen(
            [sys.executable, "-m", "downloads_app.devserver"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def announced():
            assert devserver.poll() is None, log_path.read_text()
            return "Ctrl-C stops everything." in log_path.read_text()

        wait_until(announced, timeout=60, interval=0.1, message="the devserver's addresses")
        # Announced once everything answers: the API is ready and the worker has checked in.
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
        output = log_path.read_text()
        assert "started an embedded one" in output and "Applied 4 migrations" in output
        assert "Catalogue: 6 titles added, 0 already there." in output
        for label, path in (("Dashboard:", "/"), ("Admin page:", "/admin"), ("Swagger UI:", "/docs")):
            assert f"{label} {base}{path} " in " ".join(output.split()), output
            assert requests.get(f"{base}{path}", timeout=5).status_code == 200
        # The seed's note says its token follows on standard output: the devserver shows it.
        token = output.split("Demo token for 'demo-user':\n", 1)[1].split("\n", 1)[0]
        headers = {"Authorization": f"Bearer {token}"}
        download = requests.post(
            f"{base}/api/downloads/start", json={"content_id": "spring", "quality": "480p"}, headers=headers, timeout=5
        ).json()["download"]

        def completed():
            return (
                requests.get(f"{base}/api/downloads/{download['id']}", headers=headers, timeout=5).json()["download"][
                    "status"
                ]
                == "completed"
            )

        wait_until(completed, timeout=15, interval=0.05, message="the download to complete")
    finally:
        os.killpg(devserver.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert devserver.wait(timeout=40) == 0, log_path.read_text()
    # Six processes built an app (devserver, the two CLI steps, two gunicorn workers, the
    # worker process): one warning.
    output = log_path.read_text()
    assert output.count("JWT_SECRET is not set") == 1, output
    assert not redis_answers(redis_url)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/healthz", timeout=1)
    redis_dir = ROOT / "var" / f"redis-{redis_port}"
    assert (redis_dir / "appendonly.aof").exists()
    shutil.rmtree(redis_dir)


@pytest.mark.parametrize(
    "settings, warnings",
    [({}, 1), ({DEV_SECRET_WARNED: "1"}, 0), ({"JWT_SECRET": "s" * 64}, 0)],
    ids=["no JWT_SECRET", "parent warned", "JWT_SECRET set"],
)
def test_a_process_without_jwt_secret_warns_unless_its_parent_did(tmp_path, settings, warnings):
    """gunicorn's workers and `dramatiq actors` started by hand still warn, each."""
    env = {
        **{name: value for name, value in os.environ.items() if name not in ("JWT_SECRET", DEV_SECRET_WARNED)},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite3'}",
        **settings,
    }
    built = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    assert built.stderr.count("JWT_SECRET is not set: using the development secret") == warnings, built.stderr
