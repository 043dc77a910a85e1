"""A real 50 MB file from nginx, the worker SIGKILLed twice mid-transfer: complete byte-exact, resumed with Range."""

import hashlib
import os
import re
import time

import pytest
import requests

from support import file_sha256, wait_until
from support.environment import PROCESS_REDIS_URL
from support.origins import NGINX, Nginx, require
from support.processes import Service

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

SIZE = 50 * 1024 * 1024 + 7919  # 50 MB and an odd bit
LIMIT_RATE = "8m"  # nginx: 8 MiB/s per connection, so one whole transfer takes about 6.3 s
STALL_SECONDS = 3
SETTINGS = {
    "DOWNLOAD_STALL_SECONDS": STALL_SECONDS,
    "DOWNLOAD_RECONCILE_SECONDS": 0.5,
    "DOWNLOAD_READ_TIMEOUT_SECONDS": 2,  # below DOWNLOAD_STALL_SECONDS
    "DOWNLOAD_RETRY_MIN_BACKOFF_MS": 100,
    "DOWNLOAD_RETRY_MAX_BACKOFF_MS": 500,
    "DOWNLOAD_MAX_ATTEMPTS": 10,
    "REDIS_TIMEOUT_SECONDS": 1,
}
# nginx's default "combined" format: ... "$request" $status $body_bytes_sent "$http_referer" ...
ACCESS_LINE = re.compile(r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) ')


@pytest.fixture
def media(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    with open(root / "movie.mp4", "wb") as file:
        for _ in range(SIZE // (1024 * 1024)):
            file.write(os.urandom(1024 * 1024))
        file.write(os.urandom(SIZE % (1024 * 1024)))
    return root


@pytest.fixture
def nginx(media):
    require(NGINX, "nginx is not installed (Debian: apt-get install nginx-light)")
    with Nginx(media, limit_rate=LIMIT_RATE) as server:
        yield server


@pytest.fixture
def service(database_url, movie, tmp_path):
    service = Service(database_url, PROCESS_REDIS_URL, tmp_path, STORAGE_DIR=tmp_path / "storage", **SETTINGS).start()
    yield service
    service.stop()


def nginx_answers(server):
    """(status, body bytes sent) of each request in nginx's access log, oldest first."""
    path = server.dir / "access.log"
    text = path.read_text() if path.exists() else ""
    return [(int(m["status"]), int(m["bytes"])) for m in map(ACCESS_LINE.search, text.splitlines()) if m]


def test_a_50_mb_file_completes_byte_exact_after_two_sigkills_resuming_with_range(
    service, nginx, media, token, tmp_path
):
    original_sha256 = file_sha256(media / "movie.mp4")
    api = f"{service.base}/api"
    admin = requests.Session()
    admin.headers["Authorization"] = f"Bearer {token('root', admin=True)}"
    user = requests.Session()
    user.headers["Authorization"] = f"Bearer {token('alice')}"

    saved = admin.put(
        f"{api}/contents/movie/sources/720p",
        json={"location": f"{nginx.url}/movie.mp4", "sha256": original_sha256},
        timeout=30,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["source"]["size_bytes"] == str(SIZE)  # probed from nginx

    began = time.monotonic()
    started = user.post(f"{api}/downloads/start", json={"content_id": "movie", "quality": "720p"}, timeout=10)
    assert started.status_code == 202, started.text
    download_id = started.json()["download"]["id"]
    samples = []  # (seconds since the start, attempts, status, downloaded bytes) of every poll

    def poll():
        download = user.get(f"{api}/downloads/{download_id}", timeout=10).json()["download"]
        samples.append(
            (time.monotonic() - began, download["attempts"], download["status"], int(download["downloaded_bytes"]))
        )
        return download

    def running_past(attempt, fraction):
        def reached():
            download = poll()
            assert download["status"] in ("pending", "downloading"), download
            return (
                download["status"] == "downloading"
                and download["attempts"] == attempt
                and int(download["downloaded_bytes"]) > SIZE * fraction
                and download
            )

        return reached

    kills = []  # (attempt, bytes the record had, bytes of the .part on disk, index of the first sample after)
    for attempt, fraction in ((1, 1 / 3), (2, 2 / 3)):
        wait_until(
            running_past(attempt, fraction),
            timeout=30,
            interval=0.05,
            message=f"attempt {attempt} past {fraction:.0%} of the file",
        )
        service.kill_worker()
        service.worker.wait(timeout=10)
        at_kill = poll()
        assert at_kill["status"] == "downloading" and int(at_kill["downloaded_bytes"]) < SIZE, at_kill
        parts = list((tmp_path / "storage").glob(f"*/{download_id}.part"))
        assert len(parts) == 1, parts
        kills.append((attempt, int(at_kill["downloaded_bytes"]), parts[0].stat().st_size, len(samples)))
        service.start_worker()

    def completed():
        download = poll()
        assert download["status"] in ("pending", "downloading", "completed"), download
        return download["status"] == "completed" and download

    done = wait_until(completed, timeout=45, interval=0.05, message="the download to complete")
    elapsed = time.monotonic() - began

    # Once a new run reports, the record never goes back below what it had at the kill.
    for attempt, recorded, on_disk, first_after in kills:
        assert on_disk >= recorded > 0  # the bytes the record counts are on disk
        later = [nbytes for (_, _, _, nbytes) in samples[first_after:]]
        assert min(later) >= recorded, (attempt, recorded, min(later))
        assert f"Download {download_id} started (attempt {attempt + 1}, from byte " in service.worker_logs()

    assert done["downloaded_bytes"] == done["file_size_bytes"] == str(SIZE)
    assert done["sha256"] == original_sha256
    assert done["attempts"] >= 3

    digest = hashlib.sha256()
    with user.get(f"{api}/downloads/{download_id}/file", stream=True, timeout=30) as served:
        assert served.status_code == 200 and int(served.headers["Content-Length"]) == SIZE
        for block in served.iter_content(1024 * 1024):
            digest.update(block)
    assert digest.hexdigest() == original_sha256

    # Every byte left nginx at least once; the resumes asked for the rest of the file (206), not all of it.
    wait_until(lambda: sum(b for _, b in nginx_answers(nginx)) >= SIZE, timeout=10, message="nginx's access log")
    answers = nginx_answers(nginx)
    sent = sum(b for _, b in answers)
    summary = (
        f"50 MB over nginx at {LIMIT_RATE}/s, worker SIGKILLed twice: completed in {elapsed:.1f}s "
        f"after {done['attempts']} attempts; killed at record/disk bytes "
        f"{[(recorded, on_disk) for _, recorded, on_disk, _ in kills]}; nginx sent {sent} bytes "
        f"= {sent / SIZE:.3f} × the file, in answers {answers}"
    )
    print("\n" + summary)
    assert sum(1 for status, _ in answers if status == 206) >= 2, summary
    assert sent < 1.5 * SIZE, summary
