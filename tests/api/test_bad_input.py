"""Malformed requests get a 4xx JSON error and change nothing that is stored."""

import pytest

from downloads_app.downloads.models import Download


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "content_id"),
        ({"content_id": "movie"}, "quality"),
        ({"quality": "720p"}, "content_id"),
        ({"content_id": 5, "quality": "720p"}, "content_id"),
        ({"content_id": "movie", "quality": ["720p"]}, "quality"),
        ({"content_id": "movie", "quality": "720p", "extra": 1}, "extra"),
        ({"content_id": "", "quality": "720p"}, "content_id"),
        ({"content_id": "m" * 65, "quality": "720p"}, "content_id"),
    ],
)
def test_invalid_start_bodies_get_422_naming_the_field(client, auth, movie, body, field):
    response = client.post("/api/downloads/start", json=body, headers=auth())
    assert response.status_code == 422
    assert response.json["success"] is False
    assert field in response.json["errors"]["json"]
    assert field in response.json["message"]


@pytest.mark.parametrize(
    "data, content_type",
    [
        ("{not json", "application/json"),
        ("", "application/json"),
        ("[1, 2]", "application/json"),
        ("null", "application/json"),
    ],
)
def test_malformed_json_gets_a_json_4xx(client, auth, movie, data, content_type):
    response = client.post("/api/downloads/start", data=data, content_type=content_type, headers=auth())
    assert 400 <= response.status_code < 500
    assert response.is_json and response.json["success"] is False


def test_unknown_content_and_quality(client, auth, movie):
    unknown = client.post("/api/downloads/start", json={"content_id": "nope", "quality": "720p"}, headers=auth())
    assert unknown.status_code == 404 and "nope" in unknown.json["message"]
    quality = client.post("/api/downloads/start", json={"content_id": "movie", "quality": "4320p"}, headers=auth())
    assert quality.status_code == 422
    assert quality.json["message"] == "Invalid request: quality: Must be one of: 360p, 480p, 720p, 1080p, 2160p."
    lacking = client.post("/api/downloads/start", json={"content_id": "movie", "quality": "2160p"}, headers=auth())
    assert lacking.status_code == 422
    assert lacking.json["message"] == "'A Movie' is offered in 480p, 720p, 1080p, not '2160p'."


@pytest.mark.parametrize(
    "query",
    [
        "status=bogus",
        "page=0",
        "page=x",
        "page_size=101",
        "page_size=0",
        "page=-1",
        "page=2128803865773478897004570476544",
    ],
)
def test_invalid_list_queries_get_422(client, auth, query):
    response = client.get(f"/api/downloads?{query}", headers=auth())
    assert response.status_code == 422 and response.json["success"] is False


def test_unknown_query_parameters_are_refused_but_a_cache_buster_is_ignored(client, auth):
    assert client.get("/api/downloads?_=1700000000", headers=auth()).status_code == 200
    misspelt = client.get("/api/downloads?stauts=paused", headers=auth())
    assert misspelt.status_code == 422 and misspelt.json["message"] == "Invalid request: stauts: Unknown field."


def test_oversized_body_gets_413(client, auth, movie):
    response = client.post(
        "/api/downloads/start", json={"content_id": "movie", "quality": "x" * 20_000}, headers=auth()
    )
    assert response.status_code == 413
    assert response.json == {"success": False, "message": "The request body is too large (at most 16384 bytes)."}


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/downloads/unknown-id"),
        ("post", "/api/downloads/unknown-id/resume"),
        ("get", "/api/nowhere"),
        ("get", "/api/downloads/unknown-id/progress"),
    ],
)
def test_unknown_ids_and_paths_get_404_json(client, auth, method, path):
    response = getattr(client, method)(path, headers=auth())
    assert response.status_code == 404 and response.is_json and response.json["success"] is False


def test_wrong_method_gets_405_json(client, auth):
    response = client.get("/api/downloads/start", headers=auth())
    assert response.status_code in (404, 405) and response.is_json
    response = client.put("/api/downloads", headers=auth())
    assert response.status_code == 405 and response.json["success"] is False


def test_bad_requests_leave_stored_downloads_untouched(app, client, auth, movie):
    good = client.post("/api/downloads/start", json={"content_id": "movie", "quality": "480p"}, headers=auth())
    before = client.get("/api/storage", headers=auth()).json
    for body in ({}, {"content_id": "movie", "quality": "9p"}, {"content_id": "movie"}):
        client.post("/api/downloads/start", json=body, headers=auth())
    client.post("/api/downloads/start", data="{", content_type="application/json", headers=auth())
    with app.app_context():
        assert [d.id for d in Download.select()] == [good.json["download"]["id"]]
    assert client.get("/api/storage", headers=auth()).json == before


# ---------------------------------------------------------------- media types and messages

START = '{"content_id": "movie", "quality": "480p"}'


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_json_body_sent_without_its_content_type_gets_415_naming_the_header(client, auth, movie, content_type):
    response = client.post("/api/downloads/start", data=START, content_type=content_type, headers=auth())
    assert response.status_code == 415 and response.is_json and response.json["success"] is False
    assert "Content-Type: application/json" in response.json["message"]
    assert (content_type or "no Content-Type") in response.json["message"]
    assert client.get("/api/downloads", headers=auth()).json["downloads"] == []


def test_an_optional_body_without_its_content_type_is_refused_not_ignored(client, auth, movie):
    """Every field of a PATCH is optional: ignored, a text/plain body would change nothing and answer 200."""
    admin = auth("root", admin=True)
    response = client.patch(
        "/api/contents/movie", data='{"title": "Renamed"}', content_type="text/plain", headers=admin
    )
    assert response.status_code == 415 and "Content-Type: application/json" in response.json["message"]
    assert client.get("/api/contents/movie", headers=admin).json["content"]["title"] == "A Movie"


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/merge-patch+json"])
def test_json_media_types_with_parameters_or_a_suffix_are_accepted(client, auth, movie, content_type):
    response = client.post("/api/downloads/start", data=START, content_type=content_type, headers=auth())
    assert response.status_code == 202


def test_operations_without_a_body_need_no_content_type(client, auth, movie):
    download = client.post("/api/downloads/start", json={"content_id": "movie", "quality": "480p"}, headers=auth())
    download_id = download.json["download"]["id"]
    assert client.post(f"/api/downloads/{download_id}/pause", headers=auth()).status_code == 200
    stray = client.post(f"/api/downloads/{download_id}/resume", data="x", content_type="text/plain", headers=auth())
    assert stray.status_code == 200
    assert client.post("/api/downloads/cleanup", headers=auth()).status_code == 200


def test_a_missing_body_still_gets_422_naming_the_field(client, auth, movie):
    response = client.post("/api/downloads/start", headers=auth())
    assert response.status_code == 422
    assert response.json["message"] == "Invalid request: content_id: Missing data for required field."


@pytest.mark.parametrize(
    "data, status, message",
    [
        ("{not json", 400, "Invalid request: the body is not valid JSON."),
        (b"\xff\xfe", 400, "Invalid request: the body is not valid JSON."),
        ("null", 422, "Invalid request: the body must be a JSON object."),
        ("[1, 2]", 422, "Invalid request: the body must be a JSON object."),
        ('"text"', 422, "Invalid request: the body must be a JSON object."),
    ],
)
def test_a_body_that_is_not_a_json_object_is_named_as_the_body(client, auth, movie, data, status, message):
    response = client.post("/api/downloads/start", data=data, content_type="application/json", headers=auth())
    assert response.status_code == status and response.json["message"] == message
    assert response.json["errors"]["json"]  # webargs' details are kept


@pytest.mark.parametrize("method, path", [("get", "/api/nope"), ("post", "/api/nope"), ("get", "/nope/deeper")])
def test_an_unknown_path_is_named_with_a_pointer_to_the_docs(client, auth, method, path):
    response = getattr(client, method)(path, headers={**auth(), "Accept": "text/html"})
    assert response.status_code == 404 and response.is_json
    assert response.json == {"success": False, "message": f"No such path: {path}. See /docs for the API."}


def test_an_unknown_file_under_a_file_route_is_named(client):
    response = client.get("/dashboard/nope.js")
    assert response.status_code == 404 and response.json["message"] == "No such file: /dashboard/nope.js."


def test_a_very_long_unknown_path_is_cut_in_the_message(client):
    response = client.get("/" + "a" * 5000)
    assert response.status_code == 404 and len(response.json["message"]) < 300


def test_405_names_the_allowed_methods(client, auth):
    response = client.put("/api/downloads", headers=auth())
    assert response.status_code == 405 and response.is_json
    assert {"GET", "HEAD", "OPTIONS"} <= {method.strip() for method in response.headers["Allow"].split(",")}


SOURCE = {"location": "https://media.example.com/movie.mp4", "size_bytes": "1000", "content_type": "video/mp4"}


@pytest.mark.parametrize(
    "method, path, body, field",
    [
        ("post", "/api/contents", {"id": "evil\n", "title": "E", "duration_seconds": 1, "qualities": ["480p"]}, "id"),
        (
            "post",
            "/api/contents",
            {"id": "e", "title": "Evil\n", "duration_seconds": 1, "qualities": ["480p"]},
            "title",
        ),
        ("put", "/api/contents/movie/sources/480p", {**SOURCE, "content_type": "video/mp4\n"}, "content_type"),
        ("put", "/api/contents/movie/sources/480p", {**SOURCE, "location": SOURCE["location"] + "\n"}, "location"),
        ("put", "/api/contents/movie/sources/480p", {**SOURCE, "sha256": "a" * 64 + "\n"}, "sha256"),
        ("post", "/api/downloads/start", {"content_id": "movie\n", "quality": "480p"}, "content_id"),
    ],
)
def test_patterns_refuse_a_trailing_newline(client, auth, movie, method, path, body, field):
    response = getattr(client, method)(path, json=body, headers=auth("root", admin=True))
    assert response.status_code == 422
    assert field in response.json["errors"]["json"]


def test_path_ids_with_a_trailing_newline_are_not_found(client, auth, movie):
    assert client.get("/api/contents/movie%0A", headers=auth()).status_code == 404


@pytest.mark.parametrize("size", [str(2**63), str(10**23), 1e23])
def test_a_source_size_the_database_cannot_hold_gets_422(client, auth, movie, size):
    body = {**SOURCE, "size_bytes": size}
    response = client.put("/api/contents/movie/sources/480p", json=body, headers=auth("root", admin=True))
    assert response.status_code == 422
    assert "size_bytes" in response.json["errors"]["json"]


def test_the_largest_source_size_the_database_holds_is_saved(client, auth, movie):
    body = {**SOURCE, "size_bytes": str(2**63 - 1)}
    response = client.put("/api/contents/movie/sources/480p", json=body, headers=auth("root", admin=True))
    assert response.status_code == 200 and response.json["source"]["size_bytes"] == str(2**63 - 1)
