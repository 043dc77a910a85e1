"""Queue health and requeue for admins, from the API and the CLI, after real jobs."""

import json
import os
import socket
from datetime import timedelta

import pytest

from downloads_app.downloads import run_writes
from downloads_app.downloads.models import Download
from support import wait_until


@pytest.fixture
def start(client, auth, movie):
    def start(user="alice", quality="480p"):
        return client.post(
            "/api/downloads/start", json={"content_id": "movie", "quality": quality}, headers=auth(user)
        ).json["download"]["id"]

    return start


def health(client, auth):
    response = client.get("/api/queue/health", headers=auth("root", admin=True))
    assert response.status_code == 200
    return response.json


def status_of(app, download_id):
    with app.app_context():
        return Download.get_by_id(download_id).status


def test_health_counts_real_jobs_and_shows_this_worker(app, client, auth, start, worker):
    done = [start(), start("bob")]
    wait_until(lambda: all(status_of(app, i) == "completed" for i in done), message="jobs to complete")
    start_paused = start(quality="720p")
    client.post(f"/api/downloads/{start_paused}/pause", headers=auth())
    body = health(client, auth)
    assert body["downloads_by_status"] == {
        "pending": 0,
        "downloading": 0,
        "paused": 1,
        "completed": 2,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert body["queue"]["name"] == "downloads" and body["queue"]["dead_lettered"] == 0
    me = [w for w in body["workers"] if w["pid"] == os.getpid()]
    assert me and me[0]["host"] == socket.gethostname() and me[0]["alive"] and me[0]["threads"] == 2
    assert body["workers_alive"] >= 1
    assert body["stalled_count"] == 0 and body["oldest_pending_age_seconds"] is None


def test_queue_depth_and_oldest_pending_without_a_worker(client, auth, start):
    start(), start(quality="720p")
    body = health(client, auth)
    assert body["queue"]["ready"] == 2
    assert body["downloads_by_status"]["pending"] == 2
    assert 0 <= body["oldest_pending_age_seconds"] < 10


def test_a_dead_lettered_download_is_listed_and_requeued(app, client, auth, start):
    download_id = start()
    consumer = app.extensions["broker"].consume("downloads", prefetch=1, timeout=1000)
    message = next(message for message in consumer if message is not None)
    consumer.nack(message)  # what Dramatiq does when a message's retries run out
    consumer.close()
    body = health(client, auth)
    assert body["queue"]["dead_lettered"] == 1 and body["dead_lettered_downloads"] == [download_id]
    response = client.post(f"/api/queue/downloads/{download_id}/requeue", headers=auth("root", admin=True))
    assert response.status_code == 200 and response.json["download"]["status"] == "pending"
    body = health(client, auth)
    assert body["queue"]["dead_lettered"] == 0 and body["queue"]["ready"] == 1


def test_stalled_downloads_are_listed_and_requeued_running_ones_refused(app, client, auth, start):
    download_id = start()
    with app.app_context():
        run_writes.claim(app.extensions["runtime"], download_id)
    admin = auth("root", admin=True)
    running = client.post(f"/api/queue/downloads/{download_id}/requeue", headers=admin)
    assert running.status_code == 409 and "still reporting" in running.json["message"]
    with app.app_context():
        row = Download.get_by_id(download_id)
        Download.update(updated_at=row.updated_at - timedelta(seconds=60)).where(Download.id == download_id).execute()
    body = health(client, auth)
    assert body["stalled_count"] == 1 and body["stalled"][0]["id"] == download_id
    assert (
        client.post(f"/api/queue/downloads/{download_id}/requeue", headers=admin).json["download"]["status"]
        == "pending"
    )
    assert client.post("/api/queue/downloads/nope/requeue", headers=admin).status_code == 404


def test_a_cancelled_download_is_not_requeued(app, client, auth, start):
    # A user's retry of it passes the admission checks (held title, cap); a requeue would not.
    cancelled = start()
    client.post(f"/api/downloads/{cancelled}/cancel", headers=auth())
    again = start()
    response = client.post(f"/api/queue/downloads/{cancelled}/requeue", headers=auth("root", admin=True))
    assert response.status_code == 409 and response.json["reason"] == "invalid_transition"
    assert (status_of(app, cancelled), status_of(app, again)) == ("cancelled", "pending")


def test_a_requeued_failed_download_starts_from_zero_bytes(app, client, auth, start):
    download_id = start()
    with app.app_context():
        rt = app.extensions["runtime"]
        run = run_writes.claim(rt, download_id)
        run_writes.record_progress(rt, run, run.file_size_bytes // 2)
        run_writes.record_failure(rt, run, "the origin is gone", permanent=True)
    response = client.post(f"/api/queue/downloads/{download_id}/requeue", headers=auth("root", admin=True))
    assert response.status_code == 200
    assert (response.json["download"]["downloaded_bytes"], response.json["download"]["progress"]) == ("0", 0)


def test_queue_routes_are_for_admins_only(client, auth, start):
    download_id = start()
    assert client.get("/api/queue/health", headers=auth()).status_code == 403
    assert client.post(f"/api/queue/downloads/{download_id}/requeue", headers=auth()).status_code == 403
    assert client.get("/api/queue/health").status_code == 401


def test_cli_queue_stats_and_requeue(app, start):
    download_id = start()
    runner = app.test_cli_runner()
    text = runner.invoke(args=["queue", "stats"])
    assert text.exit_code == 0 and "queue downloads: 1 ready, 0 delayed, 0 dead-lettered" in text.output
    assert "pending 1" in text.output
    as_json = json.loads(runner.invoke(args=["queue", "stats", "--json"]).output)
    assert as_json["queue"]["ready"] == 1
    requeued = runner.invoke(args=["queue", "requeue", download_id])
    assert requeued.exit_code == 0 and f"{download_id}: pending, queued again" in requeued.output
    refused = runner.invoke(args=["queue", "requeue", "nope"])
    assert refused.exit_code == 1 and "No download 'nope'" in refused.output


@pytest.mark.parametrize(
    "command",
    [
        ["queue", "stats"],
        ["queue", "requeue"],
        ["downloads", "reconcile"],
        ["db", "upgrade"],
        ["demo", "seed"],
        ["auth", "token"],
    ],
)
def test_every_admin_command_has_help(app, command):
    result = app.test_cli_runner().invoke(args=[*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
    assert len(result.output.split("\n\n")[1].strip()) > 20  # a sentence, not an empty help
