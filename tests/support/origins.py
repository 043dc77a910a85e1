"""Real origins for the transfer tests: nginx, a flaky HTTP server, moto's S3 (processes), fixed answers (a thread)."""

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import boto3
import pytest

from support import free_port, wait_until

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/local/sbin:/usr/sbin")
MOTO = importlib.util.find_spec("moto") is not None
REQUIRE_ORIGINS = os.environ.get("REQUIRE_ORIGINS") == "1"


def require(available, reason):
    """Skip the test when an origin's program is missing; fail instead when CI sets REQUIRE_ORIGINS=1."""
    if available:
        return
    if REQUIRE_ORIGINS:
        pytest.fail(f"{reason} and REQUIRE_ORIGINS=1")
    pytest.skip(f"{reason} (CI sets REQUIRE_ORIGINS=1)")


class OriginProcess:
    """A server on a spare port of `host`, with a scratch directory; use it in `with`."""

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"origin-{type(self).__name__.lower()}-"))
        self.log_path = self.dir / "output.log"
        self.process = None
        self.command = None  # set by the subclass, which may write its configuration to self.dir first

    def __enter__(self):
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._listening, timeout=30, message=f"{type(self).__name__} on port {self.port}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _listening(self):
        if self.process.poll() is not None:
            raise AssertionError(f"{self.command[0]} exited:\n{self.log_path.read_text(errors='replace')}")
        try:
            socket.create_connection((self.host, self.port), timeout=1).close()
            return True
        except ConnectionRefusedError:
            return False

    def __exit__(self, *exc_info):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Nginx(OriginProcess):
    """Debian's nginx serving `root_dir` (ETag, Range and If-Range built in), at most `limit_rate` bytes/s."""

    def __init__(self, root_dir, limit_rate=None, host="127.0.0.1"):
        super().__init__(host)
        self.url = f"http://{host}:{self.port}"
        # As root, nginx's workers would run as nobody and could not read the test's files.
        user = "user root;" if os.geteuid() == 0 else ""
        scratch = {name: self.dir / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
        (self.dir / "nginx.conf").write_text(f"""
            {user}
            daemon off;
            master_process on;
            worker_processes 1;
            error_log {self.log_path};
            pid {self.dir / "nginx.pid"};
            events {{ worker_connections 64; }}
            http {{
                access_log {self.dir / "access.log"};
                {"".join(f"{name}_temp_path {path}; " for name, path in scratch.items())}
                types {{ video/mp4 mp4; }}
                default_type application/octet-stream;
                server {{
                    listen {host}:{self.port};
                    root {root_dir};
                    {f"limit_rate {limit_rate};" if limit_rate else ""}
                }}
            }}
        """)
        self.command = [NGINX, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"), "-e", str(self.log_path)]


class FlakyOrigin(OriginProcess):
    """tests/flaky_origin.py serving `path`, cutting each body after `max_bytes` (closing, or stalling)."""

    def __init__(self, path, max_bytes, stall=False):
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}/{Path(path).name}"
        self.command = [
            sys.executable,
            str(Path(__file__).with_name("flaky_origin.py")),
            str(path),
            str(self.port),
            str(max_bytes),
            *(["--stall"] if stall else []),
        ]


class MotoS3(OriginProcess):
    """moto's S3 server; `put(bucket, key, data)` stores an object and gives its s3:// location."""

    CREDENTIALS: ClassVar[dict[str, str]] = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    def __init__(self):
        super().__init__()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

    def put(self, bucket, key, data):
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        try:
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key=key, Body=data)
        finally:
            client.close()
        return f"s3://{bucket}/{key}"


class FixedAnswers:
    """An HTTP server on 127.0.0.1, in a thread, answering HEAD and GET of each path with its
    (status, headers) of `answers` and an empty body; use it in `with`; `url` is its base."""

    def __init__(self, answers):
        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self):
                status, headers = answers[self.path]
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()

            do_GET = do_HEAD

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()


def empty_file():
    return (200, {"Content-Length": "0", "Connection": "close"})


def redirect_to(location):
    return (302, {"Location": location, "Content-Length": "0", "Connection": "close"})
