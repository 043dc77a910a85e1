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


class Loopback:
    """This machine's own network, where a process runs as it is (tests/support/netns.py Host: elsewhere)."""

    address = "127.0.0.1"

    @staticmethod
    def command(command):
        return command


LOOPBACK = Loopback()


class Service:
    """gunicorn (gevent) and `dramatiq actors`, started and stopped like in production.

    The API runs on `api_host`, each worker on the host `start_worker` is given (both default
    to this machine's loopback; a network namespace's Host puts them on a host of their own).
    """

    def __init__(self, database_url, redis_url, log_dir, api_host=LOOPBACK, **settings):
        self.api_host = api_host
        self.port = free_port()
        self.base = f"http://{api_host.address}:{self.port}"
        self.metrics_port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "dramatiq_prom_db")},
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
        self.worker_names = []

    def _spawn(self, name, command, host, **env):
        with open(self.log_dir / f"{name}.log", "wb") as log:
            # Own process group, so the worker's main and child processes can be killed together.
            return subprocess.Popen(
                host.command(command),
                cwd=ROOT,
                env={**self.env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self, worker_hosts=(LOOPBACK,)):
        """Start the API and one worker per host on an emptied Redis database: no queue or
        rate-limit counters of an earlier test."""
        with redis.Redis.from_url(self.env["REDIS_URL"]) as client:
            client.flushdb()
        self.api = self._spawn(
            "api",
            [
                *(sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"),
                *("--bind", f"{self.api_host.address}:{self.port}"),
            ],
            self.api_host,
        )
        try:
            for host in worker_hosts:  # booting side by side, then waiting for each
                self.start_worker(host, wait=False)
            for name in self.worker_names:
                self.wait_worker_ready(name)
            # Deadlines for booting are generous: a busy machine boots slowly, and nothing is measured here.
            wait_until(self._api_answers, timeout=60, interval=0.1, message="gunicorn")
        except BaseException:
            self.stop()
            raise
        return self

    def start_worker(self, host=LOOPBACK, wait=True):
        """Start `dramatiq actors` on `host`; returns the name of its log, worker-N (N counts from 1)."""
        name = f"worker-{len(self.workers) + 1}"
        command = [sys.executable, "-m", "dramatiq", "actors", "--processes", "1", "--threads", "2"]
        # Each worker its own metrics files: a starting worker empties the directory it is given.
        self.workers.append(self._spawn(name, command, host, dramatiq_prom_db=str(self.log_dir / f"{name}-metrics")))
        self.worker_names.append(name)
        if wait:
            self.wait_worker_ready(name)
        return name

    def run_on(self, host, arguments, timeout=60):
        """Run this Python with `arguments` on `host`, in the services' environment; the finished process."""
        return subprocess.run(
            host.command([sys.executable, *arguments]),
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def wait_worker_ready(self, name):
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
        return "".join(self.log(name) for name in self.worker_names)

    def logs_with_completions(self, download_ids, timeout=10):
        """The workers' logs, once they name the completion of every one of `download_ids`.

        A worker logs a completion just after committing it, so a client can read `completed` first.
        """

        def every_completion_logged():
            logs = self.worker_logs()
            return logs if all(f"[Download Worker] Job completed: {i} " in logs for i in download_ids) else None

        return wait_until(every_completion_logged, timeout=timeout, interval=0.05, message="the completions logged")

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

    def __init__(self, data_dir, host="127.0.0.1"):
        self.host = host
        self.port = free_port()
        self.url = f"redis://{host}:{self.port}/0"
        self.data_dir = data_dir
        self.process = None

    def start(self):
        self.process = start_redis_server(self.port, self.data_dir, appendonly=False, host=self.host)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def postgres_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    return found[-1]


class OwnPostgres:
    """A PostgreSQL cluster of the test's own (initdb + pg_ctl) on a spare port of `host`.

    `trusted_network` (a CIDR such as 10.0.0.0/24) may connect too, without a password.
    """

    def __init__(self, host="127.0.0.1", trusted_network=None):
        self.host = host
        self.trusted_network = trusted_network
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="downloads-pg-"))
        self.data = self.dir / "data"
        self.url = f"postgresql://postgres@{host}:{self.port}/postgres"
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *command):
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def init(self):
        self._run(postgres_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        if self.trusted_network:
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {self.trusted_network} trust\n")
        return self

    def start(self):
        options = f"-p {self.port} -k {self.dir} -c listen_addresses={self.host} -c fsync=off"
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
