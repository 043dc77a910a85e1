"""The API and the worker remove the metrics directories they made in the temporary folder when they stop."""

import os
import signal
import subprocess
import sys

import pytest
import requests

from support import free_port, wait_until
from support.databases import migrated_sqlite_url
from support.environment import PROCESS_REDIS_URL, TEST_JWT_SECRET
from support.processes import ROOT

pytestmark = pytest.mark.e2e


def made(tmp_dir, kind):
    return sorted(tmp_dir.glob(f"downloads-{kind}-metrics-*"))


def test_api_and_worker_leave_no_metrics_directory_behind(tmp_path):
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "dramatiq_prom_db")},
        "TMPDIR": str(tmp_dir),  # the processes' temporary folder (tempfile.gettempdir)
        "DATABASE_URL": migrated_sqlite_url(tmp_path),
        "REDIS_URL": PROCESS_REDIS_URL,
        "JWT_SECRET": TEST_JWT_SECRET,
        "dramatiq_prom_port": str(free_port()),
    }
    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("api", "worker")}  # noqa: SIM115
    commands = {
        "api": [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
        "worker": [sys.executable, "-m", "dramatiq", "actors", "--processes", "1", "--threads", "1"],
    }
    processes = {
        name: subprocess.Popen(command, cwd=ROOT, env=env, stdout=logs[name], stderr=subprocess.STDOUT)
        for name, command in commands.items()
    }
    try:

        def api_answers():
            try:
                return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).status_code == 200
            except requests.RequestException:  # refused, or accepted by a master whose workers still boot
                return False

        wait_until(api_answers, timeout=60, interval=0.1, message="gunicorn")
        wait_until(lambda: "Worker process is ready" in (tmp_path / "worker.log").read_text(), timeout=60)
        assert len(made(tmp_dir, "api")) == 1 and len(made(tmp_dir, "worker")) == 1
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            assert process.wait(timeout=60) == 0
        assert made(tmp_dir, "api") == [] and made(tmp_dir, "worker") == []
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        for log in logs.values():
            log.close()
