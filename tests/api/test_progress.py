"""GET /api/downloads/{id}/progress: its body, its ETag, and conditional GETs answered 304."""

from types import SimpleNamespace

import pytest

from downloads_app.downloads.models import Download, utcnow
from downloads_app.web.api import downloads as download_routes

SIZE_720 = str(1000 * 3333 * 125)


@pytest.fixture
def download(client, auth, movie):
    response = client.post("/api/downloads/start", json={"content_id": "movie", "quality": "720p"}, headers=auth())
    assert response.status_code == 202, response.json
    return response.json["download"]


@pytest.fixture
def progress(client, auth, download):
    """progress(headers=None, user="alice", method="get") -> the answer for `download`."""

    def get(headers=None, user="alice", method="get"):
        return client.open(
            f"/api/downloads/{download['id']}/progress",
            method=method.upper(),
            headers={**auth(user), **(headers or {})},
        )

    return get


def _write(app, download_id, **changes):
    with app.app_context():
        assert Download.update(**changes).where(Download.id == download_id).execute() == 1


def test_the_body_is_as_before_with_an_etag_and_no_shared_caching(progress, download):
    response = progress()
    assert response.status_code == 200
    assert response.json == {
        "success": True,
        "id": download["id"],
        "status": "pending",
        "progress": 0,
        "downloaded_bytes": "0",
        "file_size_bytes": SIZE_720,
    }
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    assert response.headers["Cache-Control"] == "private, no-cache"
    assert progress().headers["ETag"] == etag  # the same body, the same validator


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "W/{etag}", '"other", {etag}', '"a",W/"b" , {etag}', "*"],
    ids=["the etag", "weak", "in a list", "in a list with weak ones", "star"],
)
def test_a_matching_if_none_match_answers_304_with_no_body(progress, if_none_match):
    etag = progress().headers["ETag"]
    response = progress({"If-None-Match": if_none_match.format(etag=etag)})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Cache-Control"] == "private, no-cache"
    assert "Content-Type" not in response.headers
    assert response.headers.get("Content-Length", "0") == "0"


@pytest.mark.parametrize("if_none_match", ['"nothing-like-it"', '"a", "b"', "", "garbage"])
def test_an_if_none_match_that_does_not_match_answers_the_body(progress, if_none_match):
    response = progress({"If-None-Match": if_none_match})
    assert response.status_code == 200 and response.json["success"] is True
    assert response.headers["ETag"]


def test_head_answers_304_too(progress):
    etag = progress().headers["ETag"]
    response = progress({"If-None-Match": etag}, method="head")
    assert response.status_code == 304 and response.headers["ETag"] == etag


@pytest.mark.parametrize(
    "changes",
    [
        {"downloaded_bytes": 1000, "progress": 0},
        {"downloaded_bytes": 41_662_500, "progress": 10},
        {"status": "downloading"},
        {"file_size_bytes": 416_625_001},
    ],
    ids=["bytes", "bytes and percent", "status", "size"],
)
def test_a_change_the_body_shows_gives_a_new_etag(app, progress, download, changes):
    before = progress()
    _write(app, download["id"], **changes)
    after = progress({"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    assert after.json == {**before.json, **{k: str(v) if k.endswith("_bytes") else v for k, v in changes.items()}}
    assert progress({"If-None-Match": after.headers["ETag"]}).status_code == 304


def test_a_change_the_body_does_not_show_keeps_the_etag(app, progress, download):
    """A heartbeat (updated_at) or another column changes nothing a poller sees: still 304."""
    etag = progress().headers["ETag"]
    _write(app, download["id"], updated_at=utcnow(), attempts=2, last_error="a hiccup")
    assert progress({"If-None-Match": etag}).status_code == 304


def test_a_pause_through_the_api_gives_a_new_etag(client, auth, progress, download):
    etag = progress().headers["ETag"]
    assert client.post(f"/api/downloads/{download['id']}/pause", headers=auth()).status_code == 200
    response = progress({"If-None-Match": etag})
    assert response.status_code == 200 and response.json["status"] == "paused"


@pytest.mark.parametrize("if_none_match", ["*", "{etag}"])
def test_another_users_download_is_404_even_with_if_none_match(progress, if_none_match):
    etag = progress().headers["ETag"]
    response = progress({"If-None-Match": if_none_match.format(etag=etag)}, user="bob")
    assert response.status_code == 404
    assert response.json == {"success": False, "message": "No download with that id.", "reason": "download_not_found"}
    assert "ETag" not in response.headers


def test_an_unknown_download_is_404_even_with_star(client, auth):
    response = client.get(f"/api/downloads/{'0' * 32}/progress", headers={**auth(), "If-None-Match": "*"})
    assert response.status_code == 404 and response.json["reason"] == "download_not_found"


def test_no_token_is_401_even_with_if_none_match(client, progress, download):
    etag = progress().headers["ETag"]
    response = client.get(f"/api/downloads/{download['id']}/progress", headers={"If-None-Match": etag})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"


def test_304_does_not_serialize_the_record(progress, monkeypatch):
    etag = progress().headers["ETag"]

    def refuse(*args, **kwargs):
        raise AssertionError("serialized for a 304")

    monkeypatch.setattr(download_routes.event_hub, "progress_fields", refuse)
    monkeypatch.setattr(download_routes.ProgressSchema, "dump", refuse)
    assert progress({"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize("field", ["id", "status", "progress", "downloaded_bytes", "file_size_bytes"])
def test_the_etag_covers_every_field_of_the_body(field):
    shown = {"id": "a" * 32, "status": "downloading", "progress": 40, "downloaded_bytes": 10, "file_size_bytes": 25}
    changed = {**shown, field: "b" * 32 if field == "id" else "paused" if field == "status" else shown[field] + 1}
    etag = download_routes.progress_etag(SimpleNamespace(**shown))
    assert download_routes.progress_etag(SimpleNamespace(**changed)) != etag
    assert download_routes.progress_etag(SimpleNamespace(**shown)) == etag
