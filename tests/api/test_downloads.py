"""The /api/downloads routes through the Flask test client, on SQLite and PostgreSQL."""

import pytest

SIZE_720 = str(1000 * 3333 * 125)
RECORD_FIELDS = {
    "id",
    "user_id",
    "content_id",
    "status",
    "quality",
    "progress",
    "file_size_bytes",
    "downloaded_bytes",
    "attempts",
    "error",
    "last_error",
    "sha256",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "device_id",
    "license_expires_at",
    "played_at",
    "watched_at",
}


@pytest.fixture
def start(client, auth, movie):
    def start(quality="720p", user="alice", content_id="movie"):
        response = client.post(
            "/api/downloads/start", json={"content_id": content_id, "quality": quality}, headers=auth(user)
        )
        assert response.status_code == 202, response.json
        return response.json["download"]

    return start


def test_start_answers_202_with_a_pending_record_in_the_seed_shape(client, auth, movie):
    response = client.post("/api/downloads/start", json={"content_id": "movie", "quality": "720p"}, headers=auth())
    assert response.status_code == 202
    body = response.json
    assert body["success"] is True and body["message"] == "Download started"
    download = body["download"]
    assert set(download) == RECORD_FIELDS
    assert download["status"] == "pending" and download["progress"] == 0
    assert download["file_size_bytes"] == SIZE_720 and download["downloaded_bytes"] == "0"
    assert download["user_id"] == "alice" and download["content_id"] == "movie"
    assert download["created_at"].endswith("+00:00")


def test_get_progress_and_storage(client, auth, start):
    download = start()
    response = client.get(f"/api/downloads/{download['id']}", headers=auth())
    assert response.status_code == 200 and response.json["download"]["id"] == download["id"]
    progress = client.get(f"/api/downloads/{download['id']}/progress", headers=auth()).json
    assert progress == {
        "success": True,
        "id": download["id"],
        "status": "pending",
        "progress": 0,
        "downloaded_bytes": "0",
        "file_size_bytes": SIZE_720,
    }
    storage = client.get("/api/storage", headers=auth()).json
    assert storage == {
        "success": True,
        "quota_bytes": "10000000000",
        "used_bytes": SIZE_720,
        "free_bytes": str(10_000_000_000 - int(SIZE_720)),
    }


def test_list_filters_and_paginates(client, auth, start, titles):
    ids = [start(content_id=content_id)["id"] for content_id in titles(3)]
    start(user="bob")
    client.post(f"/api/downloads/{ids[0]}/cancel", headers=auth())
    body = client.get("/api/downloads?status=pending&page_size=1&page=2", headers=auth()).json
    assert body["pagination"] == {"page": 2, "page_size": 1, "total": 2, "pages": 2}
    assert [d["id"] for d in body["downloads"]] == [ids[1]]
    everything = client.get("/api/downloads", headers=auth()).json
    assert [d["id"] for d in everything["downloads"]] == ids[::-1]
    assert everything["pagination"] == {"page": 1, "page_size": 20, "total": 3, "pages": 1}


@pytest.mark.parametrize("path", ["/api/downloads/{id}", "/api/downloads/{id}/delete"])
def test_delete_by_either_path_frees_the_quota(client, auth, start, path):
    download = start()
    response = client.delete(path.format(id=download["id"]), headers=auth())
    assert response.status_code == 200
    assert response.json == {"success": True, "message": "Download deleted"}
    assert client.get("/api/storage", headers=auth()).json["used_bytes"] == "0"
    assert client.get(f"/api/downloads/{download['id']}", headers=auth()).status_code == 404
    assert client.delete(path.format(id=download["id"]), headers=auth()).status_code == 404


def test_cleanup_reports_count_and_bytes_freed(client, auth, start, titles):
    start(), start("480p")
    cancelled = start(content_id=titles(1)[0])
    client.post(f"/api/downloads/{cancelled['id']}/cancel", headers=auth())
    start(user="bob")
    body = client.post("/api/downloads/cleanup", headers=auth()).json
    assert body == {
        "success": True,
        "message": "Deleted 3 downloads",
        "deleted_count": 3,
        "freed_bytes": str(int(SIZE_720) + 1000 * 1556 * 125),
    }
    assert client.get("/api/downloads", headers=auth()).json["downloads"] == []
    assert client.get("/api/storage", headers=auth("bob")).json["used_bytes"] == SIZE_720


def test_quota_refusal_says_what_is_needed_and_free(app, client, auth, start, titles, configure):
    configure(STORAGE_QUOTA_BYTES=int(SIZE_720) + 1)
    start()
    other = titles(1)[0]
    response = client.post("/api/downloads/start", json={"content_id": other, "quality": "720p"}, headers=auth())
    assert response.status_code == 413
    assert response.json == {
        "success": False,
        "reason": "quota_exceeded",
        "message": "Not enough storage: this download needs 416.6 MB (416,625,000 bytes) and 1 byte are free.",
        "needed_bytes": SIZE_720,
        "free_bytes": "1",
    }


def test_another_users_download_is_not_found(client, auth, start):
    download = start()
    for method, path in [
        ("get", "/api/downloads/{id}"),
        ("get", "/api/downloads/{id}/progress"),
        ("delete", "/api/downloads/{id}"),
        ("post", "/api/downloads/{id}/pause"),
    ]:
        response = getattr(client, method)(path.format(id=download["id"]), headers=auth("bob"))
        assert response.status_code == 404, path
        assert response.json["success"] is False and download["id"] not in str(response.json.get("errors"))
    assert client.get(f"/api/downloads/{download['id']}", headers=auth()).status_code == 200


def test_lifecycle_actions_and_409_with_the_current_state(client, auth, start):
    download = start()
    url = f"/api/downloads/{download['id']}"
    paused = client.post(f"{url}/pause", headers=auth())
    assert paused.status_code == 200 and paused.json["download"]["status"] == "paused"
    assert paused.json["message"] == "Download paused"
    refused = client.post(f"{url}/pause", headers=auth())
    assert refused.status_code == 409
    assert refused.json == {
        "success": False,
        "message": "Cannot pause a download that is paused.",
        "reason": "invalid_transition",
        "status": "paused",
    }
    assert client.post(f"{url}/resume", headers=auth()).json["download"]["status"] == "pending"
    assert client.post(f"{url}/cancel", headers=auth()).json["download"]["status"] == "cancelled"
    assert client.get("/api/storage", headers=auth()).json["used_bytes"] == "0"
    retried = client.post(f"{url}/retry", headers=auth())
    assert retried.status_code == 200 and retried.json["download"]["status"] == "pending"
    assert client.get("/api/storage", headers=auth()).json["used_bytes"] == SIZE_720
