"""`make run`: the whole service in one foreground process, with one start-up message.

Migrates the database and loads the demo titles (the CLI commands of the README's two-terminal
way), starts Redis (embedded if none answers), gunicorn and the worker, and once the API is
ready and the worker has checked in, prints where the dashboard, the admin page and Swagger
UI are, with a token for the demo user. The JWT_SECRET warning is given here, once: the
processes started from here are told not to repeat it.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis
import requests

from downloads_app import DEV_SECRET_WARNED, create_app
from downloads_app.config import PROJECT_ROOT, VAR_DIR
from downloads_app.infra import worker_registry
from downloads_app.infra.embedded_redis import ensure_redis
from downloads_app.web.cli import DEMO_USER

STILL_WAITING_AFTER_SECONDS = 60


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _flask(env, *args, **kwargs):
    """Run `flask --app wsgi ARGS` to its end; raises CalledProcessError when it fails."""
    command = [sys.executable, "-m", "flask", "--app", "wsgi", *args]
    return subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=True, text=True, **kwargs)


def _api_ready(base):
    try:
        return requests.get(f"{base}/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _worker_checked_in(app, since):
    """A worker started after `since` has beaten into the registry (its reconciler runs)."""
    alive_within = 3 * app.extensions["runtime"].settings.download_reconcile_seconds + 5
    try:
        workers = worker_registry.registered(app.extensions["broker"].client, alive_within)
    except redis.RedisError:
        return False
    return any(worker["alive"] and worker["started_at"] >= since for worker in workers)


def _waiting_for(app, base, since):
    """What does not answer yet: [] once everything does."""
    missing = []
    if not _api_ready(base):
        missing.append(f"the API ({base}/readyz)")
    if not _worker_checked_in(app, since):
        missing.append("the worker")
    return missing


def _cli_path(name):
    """How to call a console script of this environment from the project's folder."""
    script = Path(sys.executable).parent / name
    try:
        return str(script.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(script)


def _banner(base, token):
    flask = f"{_cli_path('flask')} --app wsgi"
    return (
        "\nEverything answers:\n"
        f"  Dashboard:  {base}/       paste the demo token and press Use token\n"
        f"  Admin page: {base}/admin  with an admin token: {flask} auth token admin --admin\n"
        f"  Swagger UI: {base}/docs   press Authorize and paste the demo token\n"
        f"\nDemo token for {DEMO_USER!r}:\n{token}\n\nCtrl-C stops everything.\n"
    )


def _supervise(app, services, base, token, since):
    """Announce once everything answers (`since`: when the services started); return 1 when one exits."""
    started = time.monotonic()
    announced = told_still_waiting = False
    while all(service.poll() is None for service in services):
        if not announced:
            missing = _waiting_for(app, base, since)
            if not missing:
                print(_banner(base, token), flush=True)
                announced = True
            elif not told_still_waiting and time.monotonic() - started > STILL_WAITING_AFTER_SECONDS:
                print(f"Still waiting for {' and '.join(missing)}...", flush=True)
                told_still_waiting = True
        time.sleep(0.5 if announced else 0.2)
    print("A service exited; stopping the others.", file=sys.stderr)
    return 1


def main():
    # Ctrl-C reaches the children too (same process group); SIGTERM is passed on by _stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    port = os.environ.get("PORT", "8000")
    base = f"http://127.0.0.1:{port}"
    app = create_app()  # warns here if JWT_SECRET is not set; the children below do not
    env = {**os.environ, DEV_SECRET_WARNED: "1"}
    services, redis_server = [], None
    try:
        try:
            _flask(env, "db", "upgrade")
            # Its note says the token follows on standard output: it is in the banner below.
            token = _flask(env, "demo", "seed", stdout=subprocess.PIPE).stdout.strip()
        except subprocess.CalledProcessError as failed:
            print(f"`flask {' '.join(failed.cmd[5:])}` failed: nothing started.", file=sys.stderr)
            return 1
        redis_url = app.extensions["runtime"].settings.redis_url
        redis_dir = VAR_DIR / f"redis-{urlparse(redis_url).port or 6379}"
        redis_server = ensure_redis(redis_url, redis_dir)
        if redis_server:
            print(f"No Redis answered at {redis_url}: started an embedded one (append-only, data in {redis_dir}).")
        since = time.time()
        services = [
            subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
                cwd=PROJECT_ROOT,
                env=env,
            ),
            subprocess.Popen(
                [sys.executable, "-m", "dramatiq", "actors", "--processes", "1", "--threads", "2"],
                cwd=PROJECT_ROOT,
                env=env,
            ),
        ]
        status = _supervise(app, services, base, token, since)
    except KeyboardInterrupt:
        status = 0
    _stop(services)
    _stop([redis_server] if redis_server else [])  # last: the worker stops without Redis errors
    return status


if __name__ == "__main__":
    sys.exit(main())
