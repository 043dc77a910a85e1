"""`make run`: the whole service in one foreground process, with one start-up message.

Migrates the database and loads the demo titles (the CLI commands of the README's two-terminal
way), starts Redis (embedded if none answers), gunicorn and the worker, and once the API is
ready and the worker has checked in, prints where the dashboard, the admin page and Swagger
UI are, with a token for the demo user. Without JWT_SECRET it makes a random one for this
checkout (JWT_SECRET_FILE) and gives it to every process it starts. Ctrl-C stops the worker
first, so that running transfers hand their downloads back, then the API, then Redis.
"""

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis
import requests

from downloads_app import create_app
from downloads_app.config import PROJECT_ROOT, VAR_DIR, load_settings
from downloads_app.infra import worker_registry
from downloads_app.infra.embedded_redis import ensure_redis
from downloads_app.web.cli import DEMO_USER

STILL_WAITING_AFTER_SECONDS = 60
# Past these, a service that was told to stop is killed: the worker's transfers stop at their
# next step, gunicorn's graceful_timeout is 30 s.
STOP_SECONDS = {"the worker": 40, "the API": 40, "Redis": 10}


def _jwt_secret():
    """JWT_SECRET, or this checkout's random one (JWT_SECRET_FILE), made the first time."""
    settings = load_settings()
    path = Path(settings["JWT_SECRET_FILE"])
    if not settings["JWT_SECRET"] and not path.exists():  # an empty file: create_app says so
        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        print(f"JWT_SECRET is not set: made a random one in {_shown(path)}, used by this checkout's processes.")
        settings = load_settings()
    return settings["JWT_SECRET"]


def _start(command, env):
    # Its own session: a terminal's Ctrl-C reaches only the devserver, which stops everything in order.
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, start_new_session=True)


def _stop(services):
    """SIGTERM to each (name, process) in turn, waiting for it; a second Ctrl-C kills what is left."""
    try:
        for name, process in services:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=STOP_SECONDS[name])
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop within {STOP_SECONDS[name]} s: killed.", file=sys.stderr)
                _kill(process)
    except KeyboardInterrupt:
        for _, process in services:
            _kill(process)


def _kill(process):
    """SIGKILL to the process' group (its session), so that no child of it is left behind."""
    with contextlib.suppress(ProcessLookupError):  # it has exited and been reaped
        os.killpg(process.pid, signal.SIGKILL)
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


def _shown(path):
    """`path` relative to the project's folder when it is inside it."""
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _cli_path(name):
    """How to call a console script of this environment from the project's folder."""
    return _shown(Path(sys.executable).parent / name)


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
    # Ctrl-C reaches only this process (the services have their own sessions); SIGTERM too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    port = os.environ.get("PORT", "8000")
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "JWT_SECRET": _jwt_secret()}
    app = create_app()
    services = []  # (name, process), in the order they are stopped
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
            services.append(("Redis", redis_server))
            print(f"No Redis answered at {redis_url}: started an embedded one (append-only, data in {redis_dir}).")
        since = time.time()
        gunicorn = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
        services.insert(0, ("the API", _start(gunicorn, env)))
        worker = [sys.executable, "-m", "dramatiq", "actors", "--processes", "1", "--threads", "2"]
        services.insert(0, ("the worker", _start(worker, env)))
        status = _supervise(app, [process for _, process in services[:2]], base, token, since)  # worker, API
    except KeyboardInterrupt:
        status = 0
    if services:
        # The worker first, while Redis is up: its running transfers hand their downloads back.
        print(f"Stopping {', then '.join(name for name, _ in services)}...", flush=True)
        _stop(services)
    return status


if __name__ == "__main__":
    sys.exit(main())
