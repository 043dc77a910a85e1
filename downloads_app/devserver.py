"""`make run`: Redis (embedded if none answers), gunicorn and the worker in one foreground process."""
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlparse

from downloads_app import create_app
from downloads_app.web.auth import issue_token
from downloads_app.web.cli import DEMO_USER
from downloads_app.config import PROJECT_ROOT, VAR_DIR
from downloads_app.infra.embedded_redis import ensure_redis


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


def main():
    port = os.environ.get("PORT", "8000")
    app = create_app()
    redis_url = app.config["REDIS_URL"]
    redis_dir = VAR_DIR / f"redis-{urlparse(redis_url).port or 6379}"
    redis_server = ensure_redis(redis_url, redis_dir)
    if redis_server:
        print(f"No Redis answered at {redis_url}: started an embedded one (append-only, data in {redis_dir}).")
    services = [
        subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
            cwd=PROJECT_ROOT,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "actors", "--processes", "1", "--threads", "2"],
            cwd=PROJECT_ROOT,
        ),
    ]
    with app.app_context():
        token = issue_token(DEMO_USER)
    print(
        f"\nSwagger UI: http://127.0.0.1:{port}/docs  (press Authorize and paste the token)\n"
        f"Demo token for {DEMO_USER!r}:\n{token}\n\nCtrl-C stops everything.\n",
        flush=True,
    )
    # Ctrl-C reaches the children too (same process group); SIGTERM is passed on below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while all(service.poll() is None for service in services):
            time.sleep(0.5)
        print("A service exited; stopping the others.", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 0
    _stop(services + ([redis_server] if redis_server else []))
    return status


if __name__ == "__main__":
    sys.exit(main())
