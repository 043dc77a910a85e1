"""When Redis is down, starts answer 503 and leave nothing behind; reads keep working."""

import pytest

from downloads_app import create_app
from downloads_app.downloads.models import Download
from downloads_app.infra.embedded_redis import start_redis_server
from support import free_port
from support.environment import TEST_JWT_SECRET


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own on a spare port, to stop and restart."""
    port = free_port()
    servers = []

    def start():
        servers.append(start_redis_server(port, tmp_path / "redis", appendonly=False))
        return f"redis://127.0.0.1:{port}/0"

    def stop():
        servers[-1].terminate()
        servers[-1].wait(timeout=10)

    yield start, stop
    for server in servers:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_start_is_503_while_redis_is_down_and_works_again_after(database_url, movie, own_redis, token):
    start, stop = own_redis
    url = start()
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "REDIS_URL": url,
            "JWT_SECRET": TEST_JWT_SECRET,
            "REDIS_TIMEOUT_SECONDS": 0.5,
        }
    )
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token('alice')}"}
    body = {"content_id": "movie", "quality": "480p"}
    accepted = client.post("/api/downloads/start", json=body, headers=headers)
    assert accepted.status_code == 202
    paused = client.post(f"/api/downloads/{accepted.json['download']['id']}/pause", headers=headers)
    assert paused.status_code == 200
    storage_before = client.get("/api/storage", headers=headers).json

    stop()
    another = {"content_id": "movie", "quality": "720p"}
    refused = client.post("/api/downloads/start", json=another, headers=headers)
    assert refused.status_code == 503
    assert refused.json == {
        "success": False,
        "message": "The download queue is unavailable; try again shortly.",
        "reason": "queue_unavailable",
    }
    assert refused.headers["Retry-After"] == "5"
    resume = client.post(f"/api/downloads/{accepted.json['download']['id']}/resume", headers=headers)
    assert resume.status_code == 503
    # Nothing was left behind, and reads still come from the database.
    listing = client.get("/api/downloads", headers=headers)
    assert listing.status_code == 200
    assert [(d["id"], d["status"]) for d in listing.json["downloads"]] == [(accepted.json["download"]["id"], "paused")]
    assert client.get("/api/storage", headers=headers).json == storage_before
    assert client.get("/readyz").status_code == 503

    start()
    again = client.post("/api/downloads/start", json=another, headers=headers)
    assert again.status_code == 202
    with app.app_context():
        assert Download.select().where(Download.status == "pending").count() == 1
    app.extensions["broker"].client.close()
