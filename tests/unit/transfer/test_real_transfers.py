"""Real transfers through the worker: HTTP from nginx and a flaky origin, S3 from moto, the file served back."""

import os
import time

import pytest

from downloads_app import create_app
from downloads_app.downloads.models import Download, StorageLedger
from support import sha256_hex, wait_until
from support.databases import migrated_sqlite_url
from support.environment import REDIS_URL
from support.origins import MOTO, NGINX, FlakyOrigin, MotoS3, Nginx, require

MEDIA_SIZE = SIZE = 20 * 1024 * 1024 + 4321  # 20 MB and a bit: many chunks, not a round number


@pytest.fixture
def admin(client, auth, movie):
    """admin(method, path, body) -> the response, with an admin token."""

    def call(method, path, body=None):
        return client.open(path, method=method, json=body, headers=auth("root", admin=True))

    return call


@pytest.fixture
def real(app, client, auth, admin, movie):
    """real(location, sha256=None, quality="720p") -> the id of a started download of that file."""

    def start(location, sha256=None, quality="720p"):
        body = {"location": location, **({"sha256": sha256} if sha256 else {})}
        saved = admin("PUT", f"/api/contents/movie/sources/{quality}", body)
        assert saved.status_code == 200, saved.json
        response = client.post("/api/downloads/start", json={"content_id": "movie", "quality": quality}, headers=auth())
        assert response.status_code == 202, response.json
        return response.json["download"]["id"]

    return start


def files_of(app, download):
    return app.extensions["runtime"].files.of(download)


def record(app, download_id):
    with app.app_context():
        return Download.get_or_none(Download.id == download_id)


def until_status(app, download_id, status, timeout=30):
    return wait_until(
        lambda: (r := record(app, download_id)) and r.status == status and r,
        timeout=timeout,
        interval=0.05,
        message=f"{download_id} {status}",
    )


def stored(app, download):
    with app.app_context():
        return files_of(app, download).final_path.read_bytes()


def test_a_source_without_size_is_measured_at_the_origin(admin, nginx):
    saved = admin("PUT", "/api/contents/movie/sources/720p", {"location": f"{nginx.url}/movie.mp4"})
    assert saved.status_code == 200, saved.json
    source = saved.json["source"]
    assert source == {
        "quality": "720p",
        "location": f"{nginx.url}/movie.mp4",
        "size_bytes": str(SIZE),
        "sha256": None,
        "content_type": "video/mp4",
    }
    listed = admin("GET", "/api/contents/movie").json["content"]
    assert listed["sizes"]["720p"] == str(SIZE)
    missing = admin("PUT", "/api/contents/movie/sources/480p", {"location": f"{nginx.url}/nope.mp4"})
    assert missing.status_code == 422 and "HTTP 404" in missing.json["message"]


def test_http_download_completes_byte_exact_and_is_served_with_ranges(app, client, auth, worker, nginx, media, real):
    original = (media / "movie.mp4").read_bytes()
    download_id = real(f"{nginx.url}/movie.mp4", sha256=sha256_hex(original))
    done = until_status(app, download_id, "completed")
    assert done.file_size_bytes == SIZE and done.downloaded_bytes == SIZE and done.sha256 == sha256_hex(original)
    assert stored(app, done) == original
    with app.app_context():
        assert StorageLedger.get_by_id("alice").used_bytes == SIZE  # the quota is the real file's size

    whole = client.get(f"/api/downloads/{download_id}/file", headers=auth())
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"] == "video/mp4" and int(whole.headers["Content-Length"]) == SIZE
    assert whole.headers["ETag"] == f'"{sha256_hex(original)}"' and whole.data == original
    assert 'filename=movie-720p.mp4' in whole.headers["Content-Disposition"]
    part = client.get(f"/api/downloads/{download_id}/file", headers={**auth(), "Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.headers["Content-Range"] == f"bytes 1000-1999/{SIZE}"
    assert part.data == original[1000:2000]
    stale = client.get(
        f"/api/downloads/{download_id}/file",
        headers={**auth(), "Range": "bytes=1000-1999", "If-Range": '"not-this-version"'},
    )
    assert stale.status_code == 200 and len(stale.data) == SIZE
    beyond = client.get(f"/api/downloads/{download_id}/file", headers={**auth(), "Range": f"bytes={SIZE}-"})
    assert beyond.status_code == 416
    for response in (whole, part, stale, beyond):
        response.close()
    assert client.get(f"/api/downloads/{download_id}/file", headers=auth("bob")).status_code == 404

    assert client.delete(f"/api/downloads/{download_id}", headers=auth()).status_code == 200
    with app.app_context():
        assert not files_of(app, done).final_path.exists()
        assert StorageLedger.get_by_id("alice").used_bytes == 0


def test_the_file_of_a_download_that_is_not_completed_or_simulated_is_refused(app, client, auth, worker, movie):
    # `movie` has no source: its downloads are simulated and store nothing.
    started = client.post("/api/downloads/start", json={"content_id": "movie", "quality": "480p"}, headers=auth())
    download_id = started.json["download"]["id"]
    early = client.get(f"/api/downloads/{download_id}/file", headers=auth())
    assert early.status_code == 409 and "served once it is completed" in early.json["message"]
    until_status(app, download_id, "completed")
    simulated = client.get(f"/api/downloads/{download_id}/file", headers=auth())
    assert (
        simulated.status_code == 409
        and simulated.json["message"] == "This download was simulated: it has no stored file."
    )


def test_a_cut_connection_resumes_with_range_and_finishes_byte_exact(app, worker, media, real, configure):
    original = (media / "movie.mp4").read_bytes()
    configure(DOWNLOAD_MAX_ATTEMPTS=10)
    with FlakyOrigin(media / "movie.mp4", max_bytes=6 * 1024 * 1024) as origin:  # each answer cut at 6 MiB
        download_id = real(origin.url, sha256=sha256_hex(original))
        done = until_status(app, download_id, "completed")
    assert stored(app, done) == original
    assert done.attempts == 4  # 6 + 6 + 6 + 2.x MiB: each attempt continued where the last was cut
    assert "the body ended" in done.last_error or "Connection" in done.last_error


def test_an_origin_that_changed_between_attempts_restarts_from_zero(app, worker, media, real, configure):
    configure(DOWNLOAD_MAX_ATTEMPTS=10)
    path = media / "movie.mp4"
    with FlakyOrigin(path, max_bytes=8 * 1024 * 1024) as origin:
        download_id = real(origin.url)
        wait_until(lambda: record(app, download_id).attempts >= 2, timeout=30, interval=0.02)
        new_version = os.urandom(SIZE - 5000)  # the origin publishes another file
        path.write_bytes(new_version)
        done = until_status(app, download_id, "completed", timeout=60)
    assert stored(app, done) == new_version
    assert done.file_size_bytes == SIZE - 5000 and done.sha256 == sha256_hex(new_version)
    with app.app_context():
        assert StorageLedger.get_by_id("alice").used_bytes == SIZE - 5000  # the quota followed the file


def test_a_checksum_mismatch_fails_the_attempt_and_the_next_starts_from_zero(app, worker, nginx, real, configure):
    configure(DOWNLOAD_MAX_ATTEMPTS=2)
    download_id = real(f"{nginx.url}/movie.mp4", sha256="0" * 64)
    failed = until_status(app, download_id, "failed")
    assert failed.attempts == 2 and "does not match the catalogue's" in failed.error
    with app.app_context():
        assert not files_of(app, failed).part_path.exists() and not files_of(app, failed).final_path.exists()
        assert StorageLedger.get_by_id("alice").used_bytes == 0


def test_a_missing_file_fails_at_once_without_retries(app, client, auth, worker, nginx, admin):
    saved = admin(
        "PUT", "/api/contents/movie/sources/1080p", {"location": f"{nginx.url}/gone.mp4", "size_bytes": "1000"}
    )
    assert saved.status_code == 200
    started = client.post("/api/downloads/start", json={"content_id": "movie", "quality": "1080p"}, headers=auth())
    failed = until_status(app, started.json["download"]["id"], "failed")
    assert failed.attempts == 1 and failed.error.startswith("Failed: OriginError:") and "HTTP 404" in failed.error


def test_a_stalled_origin_times_out_instead_of_hanging(app, worker, media, real, configure):
    configure(DOWNLOAD_READ_TIMEOUT_SECONDS=0.5, DOWNLOAD_MAX_ATTEMPTS=2)
    with FlakyOrigin(media / "movie.mp4", max_bytes=1024 * 1024, stall=True) as origin:
        began = time.monotonic()
        download_id = real(origin.url)
        failed = until_status(app, download_id, "failed", timeout=20)
    assert time.monotonic() - began < 10  # two attempts of a 0.5 s read timeout, plus the backoff
    assert "timed out" in failed.error.lower()


def test_the_bandwidth_limit_holds(app, worker, nginx, real, configure):
    configure(DOWNLOAD_MAX_BYTES_PER_SECOND=8 * 1024 * 1024)
    began = time.monotonic()
    download_id = real(f"{nginx.url}/movie.mp4")
    until_status(app, download_id, "completed")
    assert time.monotonic() - began >= SIZE / (8 * 1024 * 1024) * 0.95  # 20 MB at 8 MiB/s: at least 2.4 s


def test_the_worker_bandwidth_limit_holds_for_all_transfers_together(
    app, client, auth, worker, nginx, admin, configure
):
    configure(DOWNLOAD_WORKER_MAX_BYTES_PER_SECOND=16 * 1024 * 1024)
    began = time.monotonic()
    ids = []
    for quality in ("720p", "1080p"):  # two downloads of the file, run by the worker's two threads at once
        admin("PUT", f"/api/contents/movie/sources/{quality}", {"location": f"{nginx.url}/movie.mp4"})
        started = client.post("/api/downloads/start", json={"content_id": "movie", "quality": quality}, headers=auth())
        ids.append(started.json["download"]["id"])
    for download_id in ids:
        until_status(app, download_id, "completed")
    assert time.monotonic() - began >= 2 * SIZE / (16 * 1024 * 1024) * 0.95  # 40 MB at 16 MiB/s: at least 2.4 s


def test_a_full_disk_refuses_the_start_and_keeps_nothing(app, client, auth, nginx, admin, configure):
    admin("PUT", "/api/contents/movie/sources/720p", {"location": f"{nginx.url}/movie.mp4"})
    configure(STORAGE_FREE_MARGIN_BYTES=10**18)  # more than any disk has free
    refused = client.post("/api/downloads/start", json={"content_id": "movie", "quality": "720p"}, headers=auth())
    assert refused.status_code == 507 and "storage is full" in refused.json["message"]
    assert client.get("/api/downloads", headers=auth()).json["pagination"]["total"] == 0


def test_pause_keeps_the_part_resume_continues_and_cancel_removes_it(
    app, client, auth, worker, nginx, media, real, configure
):
    configure(DOWNLOAD_MAX_BYTES_PER_SECOND=8 * 1024 * 1024)
    download_id = real(f"{nginx.url}/movie.mp4")
    wait_until(lambda: record(app, download_id).downloaded_bytes > 4 * 1024 * 1024, timeout=20, interval=0.02)
    assert client.post(f"/api/downloads/{download_id}/pause", headers=auth()).status_code == 200
    paused = until_status(app, download_id, "paused")
    with app.app_context():
        part = files_of(app, paused).part_path
        wait_until(lambda: files_of(app, paused).stored_bytes() >= paused.downloaded_bytes, timeout=5)
    kept = part.stat().st_size
    assert kept >= paused.downloaded_bytes > 4 * 1024 * 1024
    assert client.post(f"/api/downloads/{download_id}/resume", headers=auth()).status_code == 200
    wait_until(lambda: record(app, download_id).downloaded_bytes > kept, timeout=20, interval=0.02)
    resumed = record(app, download_id)
    assert resumed.status == "downloading" and resumed.attempts == 2
    assert client.post(f"/api/downloads/{download_id}/cancel", headers=auth()).status_code == 200
    wait_until(lambda: not part.exists(), timeout=10)
    with app.app_context():
        assert StorageLedger.get_by_id("alice").used_bytes == 0


def test_s3_download_completes_byte_exact_and_cleanup_removes_it(app, client, auth, worker, media, real, monkeypatch):
    require(MOTO, "moto is not installed (pip install 'moto[server]')")
    original = (media / "movie.mp4").read_bytes()
    with MotoS3() as s3:
        for name, value in {**MotoS3.CREDENTIALS, "S3_ENDPOINT_URL": s3.endpoint_url}.items():
            monkeypatch.setenv(name, value)
        location = s3.put("media", "movie/720p.mp4", original)
        download_id = real(location, sha256=sha256_hex(original))
        done = until_status(app, download_id, "completed")
    assert stored(app, done) == original and done.sha256 == sha256_hex(original)
    cleaned = client.post("/api/downloads/cleanup", headers=auth())
    assert cleaned.json["freed_bytes"] == str(SIZE)
    with app.app_context():
        assert not files_of(app, done).final_path.exists()


def test_without_a_source_download_transport_fetches_from_the_origin_url(
    app, client, auth, worker, media, movie, configure
):
    (media / "movie").mkdir()
    (media / "movie" / "480p").write_bytes(content := os.urandom(3 * 1024 * 1024))
    require(NGINX, "nginx is not installed (Debian: apt-get install nginx-light)")
    with Nginx(media) as origin:
        configure(DOWNLOAD_TRANSPORT="http", DOWNLOAD_ORIGIN_URL=origin.url)
        started = client.post("/api/downloads/start", json={"content_id": "movie", "quality": "480p"}, headers=auth())
        estimated = int(started.json["download"]["file_size_bytes"])  # duration × bitrate
        done = until_status(app, started.json["download"]["id"], "completed")
    assert estimated == 194_500_000 and done.file_size_bytes == len(content)
    assert stored(app, done) == content
    with app.app_context():
        assert StorageLedger.get_by_id("alice").used_bytes == len(content)  # the reservation followed the file


@pytest.mark.parametrize("transport, origin", [("http", "s3://media"), ("s3", ""), ("ftp", "ftp://x")])
def test_a_transport_that_cannot_work_stops_the_app_at_start_up(tmp_path, transport, origin):
    with pytest.raises(SystemExit, match="DOWNLOAD_TRANSPORT"):
        create_app(
            {
                "TESTING": True,
                "DATABASE_URL": migrated_sqlite_url(tmp_path),
                "REDIS_URL": REDIS_URL,
                "DOWNLOAD_TRANSPORT": transport,
                "DOWNLOAD_ORIGIN_URL": origin,
            }
        )
