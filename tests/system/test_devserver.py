"""`make run` on a machine without Redis: the devserver migrates, seeds, starts everything, says where to look."""

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
import requests

from downloads_app.infra.embedded_redis import redis_answers
from support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = len(list((ROOT / "migrations").glob("[0-9][0-9][0-9]_*.py")))
FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]
pytestmark = pytest.mark.e2e


def newcomer_env(tmp_path, **settings):
    """No JWT_SECRET, as on a new checkout; the secret file `make run` makes is kept under tmp_path."""
    return {
        **{name: value for name, value in os.environ.items() if name != "JWT_SECRET"},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
        "JWT_SECRET_FILE": str(tmp_path / "var" / "jwt-secret"),
        "PYTHONUNBUFFERED": "1",
        **settings,
    }


def start_devserver(env, log_path):
    """`make run` as a terminal starts it: in its own process group, which Ctrl-C signals."""
    with open(log_path, "ab") as log:
        devserver = subprocess.Popen(
            [sys.executable, "-m", "downloads_app.devserver"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def announced():
        assert devserver.poll() is None, log_path.read_text()
        return log_path.read_text().count("Ctrl-C stops everything.")

    runs_before = log_path.read_text().count("Ctrl-C stops everything.")
    try:
        wait_until(lambda: announced() > runs_before, timeout=60, interval=0.1, message="the devserver's addresses")
    except BaseException:
        ctrl_c(devserver)
        raise
    return devserver


def ctrl_c(devserver):
    """What Ctrl-C in a terminal does: SIGINT to the whole foreground process group."""
    if devserver.poll() is None:
        os.killpg(devserver.pid, signal.SIGINT)
    try:
        return devserver.wait(timeout=120)  # the worker, the API and Redis stop in turn
    except subprocess.TimeoutExpired:
        os.killpg(devserver.pid, signal.SIGKILL)
        devserver.wait()
        raise


def demo_token(output):
    return output.split("Demo token for 'demo-user':\n")[-1].split("\n", 1)[0]


def test_devserver_starts_embedded_redis_api_and_worker_and_stops_them_on_ctrl_c(tmp_path):
    """What `make run` runs once installed: migrations, demo titles, Redis, gunicorn and the worker."""
    port, redis_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = newcomer_env(tmp_path, REDIS_URL=redis_url, PORT=str(port), DOWNLOAD_SIMULATED_SECONDS="0.5")
    assert not redis_answers(redis_url)
    log_path = tmp_path / "devserver.log"
    log_path.touch()
    base = f"http://127.0.0.1:{port}"
    devserver = start_devserver(env, log_path)
    try:
        # Announced once everything answers: the API is ready and the worker has checked in.
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
        output = log_path.read_text()
        assert "started an embedded one" in output and f"Applied {MIGRATIONS} migrations" in output
        assert "Catalogue: 6 titles added, 0 already there." in output
        for label, path in (("Dashboard:", "/"), ("Admin page:", "/admin"), ("Swagger UI:", "/docs")):
            assert f"{label} {base}{path} " in " ".join(output.split()), output
            assert requests.get(f"{base}{path}", timeout=5).status_code == 200
        # The seed's note says its token follows on standard output: the devserver shows it.
        headers = {"Authorization": f"Bearer {demo_token(output)}"}
        download = requests.post(
            f"{base}/api/downloads/start", json={"content_id": "spring", "quality": "480p"}, headers=headers, timeout=5
        ).json()["download"]

        def completed():
            answer = requests.get(f"{base}/api/downloads/{download['id']}", headers=headers, timeout=5)
            return answer.json()["download"]["status"] == "completed"

        wait_until(completed, timeout=15, interval=0.05, message="the download to complete")

        # No JWT_SECRET: a random one, made for this checkout, readable by its owner only.
        secret_file = Path(env["JWT_SECRET_FILE"])
        assert f"JWT_SECRET is not set: made a random one in {secret_file}" in output
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        secret = secret_file.read_text().strip()
        assert len(bytes.fromhex(secret)) == 32
        # The banner's admin command, in another terminal with no JWT_SECRET either: make run accepts its token.
        admin = subprocess.run(
            [*FLASK, "auth", "token", "admin", "--admin"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert admin.returncode == 0, admin.stderr
        assert jwt.decode(admin.stdout.strip(), secret, algorithms=["HS256"])["sub"] == "admin"
        answer = requests.get(
            f"{base}/api/queue/health", headers={"Authorization": f"Bearer {admin.stdout.strip()}"}, timeout=5
        )
        assert answer.status_code == 200, answer.text
    finally:
        assert ctrl_c(devserver) == 0, log_path.read_text()
    assert not redis_answers(redis_url)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/healthz", timeout=1)
    redis_dir = ROOT / "var" / f"redis-{redis_port}"
    assert (redis_dir / "appendonly.aof").exists()
    shutil.rmtree(redis_dir)


def test_ctrl_c_during_a_transfer_hands_the_download_back_and_a_restart_completes_it(tmp_path):
    """The worker stops first and gracefully, while Redis is up; the API next; Redis last."""
    port, redis_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    # Ten steps of six seconds: the transfer is still running when Ctrl-C comes.
    env = newcomer_env(tmp_path, REDIS_URL=redis_url, PORT=str(port), DOWNLOAD_SIMULATED_SECONDS="60")
    log_path = tmp_path / "devserver.log"
    log_path.touch()
    base = f"http://127.0.0.1:{port}"
    redis_dir = ROOT / "var" / f"redis-{redis_port}"
    try:
        devserver = start_devserver(env, log_path)
        try:
            headers = {"Authorization": f"Bearer {demo_token(log_path.read_text())}"}
            download = requests.post(
                f"{base}/api/downloads/start",
                json={"content_id": "spring", "quality": "480p"},
                headers=headers,
                timeout=5,
            ).json()["download"]

            def downloading():
                answer = requests.get(f"{base}/api/downloads/{download['id']}", headers=headers, timeout=5)
                current = answer.json()["download"]
                # Byte counts are JSON strings (api.md): beyond 2^53, numbers lose precision in JavaScript.
                return current["status"] == "downloading" and int(current["downloaded_bytes"]) > 0 and current

            running = wait_until(downloading, timeout=60, interval=0.1, message="the first step of the transfer")
            handed_back = int(running["downloaded_bytes"])
        finally:
            assert ctrl_c(devserver) == 0, log_path.read_text()
        output = log_path.read_text()
        assert f"Requeued {download['id']} at shutdown, from byte {handed_back}" in output, output
        assert "Stopping the worker, then the API, then Redis..." in output
        with sqlite3.connect(tmp_path / "run.sqlite3") as db:
            status, downloaded, attempts = db.execute(
                "SELECT status, downloaded_bytes, attempts FROM downloads WHERE id = ?", (download["id"],)
            ).fetchone()
        assert (status, downloaded) == ("pending", handed_back)

        # The next run takes the requeued job at once and continues from the bytes handed back.
        secret = Path(env["JWT_SECRET_FILE"]).read_text()
        devserver = start_devserver({**env, "DOWNLOAD_SIMULATED_SECONDS": "1"}, log_path)
        try:

            def completed():
                answer = requests.get(f"{base}/api/downloads/{download['id']}", headers=headers, timeout=5)
                return answer.json()["download"]["status"] == "completed"

            wait_until(completed, timeout=30, interval=0.1, message="the handed-back download to complete")
        finally:
            assert ctrl_c(devserver) == 0, log_path.read_text()
        output = log_path.read_text()
        # Claimed once more, from where it stopped: no stall detection, no attempt spent on waiting for it.
        assert f"Download {download['id']} started (attempt {attempts + 1}, from byte {handed_back}" in output
        assert not [line for line in output.splitlines() if "stalled requeued" in line and download["id"] in line]
        assert output.count("made a random one") == 1 and Path(env["JWT_SECRET_FILE"]).read_text() == secret
    finally:
        shutil.rmtree(redis_dir, ignore_errors=True)


@pytest.mark.parametrize(
    "settings, refusal",
    [
        ({}, "JWT_SECRET is not set (nor in "),
        ({"JWT_SECRET": "s" * 31}, "JWT_SECRET is 31 bytes long: refusing to start with fewer than 32."),
        ({"JWT_SECRET": "s" * 32}, None),
        ({"secret file": "f" * 64}, None),
    ],
    ids=["no JWT_SECRET", "short JWT_SECRET", "JWT_SECRET set", "make run's secret file"],
)
def test_a_process_without_a_usable_jwt_secret_refuses_to_start(tmp_path, settings, refusal):
    """`flask auth token` (like gunicorn's workers and `dramatiq actors`): no secret in the code to fall back on."""
    env = newcomer_env(tmp_path, **{name: value for name, value in settings.items() if name != "secret file"})
    if "secret file" in settings:
        Path(env["JWT_SECRET_FILE"]).parent.mkdir()
        Path(env["JWT_SECRET_FILE"]).write_text(settings["secret file"] + "\n")
    issued = subprocess.run(
        [*FLASK, "auth", "token", "alice"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    if refusal is None:
        assert issued.returncode == 0, issued.stderr
        secret = env.get("JWT_SECRET") or settings["secret file"]
        assert jwt.decode(issued.stdout.strip(), secret, algorithms=["HS256"])["sub"] == "alice"
    else:
        assert issued.returncode != 0 and not issued.stdout
        assert refusal in issued.stderr and "Traceback" not in issued.stderr, issued.stderr
