"""Real processes for the tests: the API and worker as in production, and servers to stop and restart."""

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import redis
import requests

from downloads_app.infra.embedded_redis import start_redis_server
from support import free_port, wait_until
from support.environment import TEST_JWT_SECRET

ROOT = Path(__file__).resolve().parents[2]


class Service:
    """gunicorn (gevent) and `dramatiq actors`, started and stopped like in production."""

    def __init__(self, database_url, redis_url, log_dir, **settings):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.metrics_port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "dramatiq_prom_db")},
            "dramatiq_prom_db": str(Path(log_dir) / "worker-metrics"),
            "dramatiq_prom_port": str(self.metrics_port),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": TEST_JWT_SECRET,
            "DOWNLOAD_SIMULATED_SECONDS": "1",
            "WEB_CONCURRENCY": "2",
            "PYTHONUNBUFFERED": "1",
            **{name: str(value) for name, value in settings.items()},
        }
        self.log_dir = Path(log_dir)
        self.api = None
        self.workers = []

    def _spawn(self, name, command):
        with open(self.log_dir / f"{name}.log", "wb") as log:
            # Own process group, so the worker's main and child processes can be killed together.
            return subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def start(self):
        """Start both on an emptied Redis database: no queue or rate-limit counters of an earlier test."""
        with redis.Redis.from_url(self.env["REDIS_URL"]) as client:
            client.flushdb()
        self.api = self._spawn(
            "api",
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}"],
        )
        try:
            self.start_worker()
            # Deadlines for booting are generous: a busy machine boots slowly, and nothing is measured here.
            wait_until(self._api_answers, timeout=60, interval=0.1, message="gunicorn")
        except BaseException:
            self.stop()
            raise
        return self

    def start_worker(self):
        name = f"worker-{len(self.workers) + 1}"
        self.workers.append(
            self._spawn(name, [sys.executable, "-m", "dramatiq", "actors", "--processes", "1", "--threads", "2"])
        )
        wait_until(lambda: "Worker process is ready" in self.log(name), timeout=60, interval=0.05, message=name)

    @property
    def worker(self):
        return self.workers[-1]

    def kill_worker(self):
        """SIGKILL to every process of the worker: a crash, no chance to clean up."""
        os.killpg(self.worker.pid, signal.SIGKILL)

    def terminate_worker(self):
        """SIGTERM to the main process, as Docker or systemd (KillMode=mixed) send it."""
        self.worker.send_signal(signal.SIGTERM)

    def _api_answers(self):
        if self.api.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{self.log('api')}")
        try:
            return requests.get(f"{self.base}/healthz", timeout=1).status_code == 200
        except requests.RequestException:  # refused, or accepted by a master whose workers still boot
            return False

    def log(self, name):
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def worker_logs(self):
        return "".join(self.log(f"worker-{n}") for n in range(1, len(self.workers) + 1))

    def stop(self):
        running = [p for p in [self.api, *self.workers] if p is not None and p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


class OwnRedis:
    """A redis-server of the test's own, on a spare port, without persistence."""

    def __init__(self, data_dir):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.data_dir = data_dir
        self.process = None

    def start(self):
        self.process = start_redis_server(self.port, self.data_dir, appendonly=False)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def postgres_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    return found[-1]


class OwnPostgres:
    """A PostgreSQL cluster of the test's own (initdb + pg_ctl) on a spare port."""

    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="downloads-pg-"))
        self.data = self.dir / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *command):
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def init(self):
        self._run(postgres_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        return self

    def start(self):
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )
        return self

    def stop(self):
        self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self):
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
