"""The catalogue routes: users read it, admins change it."""

from support.origins import FixedAnswers, empty_file, redirect_to


def test_users_list_titles_with_qualities_and_sizes(client, auth, movie):
    body = client.get("/api/contents", headers=auth()).json
    assert body["success"] is True
    assert body["contents"] == [
        {
            "id": "movie",
            "title": "A Movie",
            "duration_seconds": 1000,
            "qualities": ["480p", "720p", "1080p"],
            "sizes": {"480p": "194500000", "720p": "416625000", "1080p": "833375000"},
            "downloadable": True,
            "max_downloads_per_year": None,
            "license_days": None,
            "playback_window_hours": None,
            "max_renewals": None,
            "series_id": None,
            "season": None,
            "episode": None,
        }
    ]
    assert client.get("/api/contents/movie", headers=auth()).json["content"]["title"] == "A Movie"


def test_admin_creates_updates_and_deletes_titles(client, auth):
    admin = auth("root", admin=True)
    created = client.post(
        "/api/contents",
        json={"id": "doc-1", "title": "Doc", "duration_seconds": 3600, "qualities": ["2160p", "360p"]},
        headers=admin,
    )
    assert created.status_code == 201
    # qualities are kept lowest first; 2160p for an hour is ~7 GB
    assert created.json["content"]["qualities"] == ["360p", "2160p"]
    assert created.json["content"]["sizes"]["2160p"] == str(3600 * 15556 * 125)
    duplicate = client.post(
        "/api/contents", json={"id": "doc-1", "title": "x", "duration_seconds": 1, "qualities": ["360p"]}, headers=admin
    )
    assert duplicate.status_code == 409
    patched = client.patch("/api/contents/doc-1", json={"title": "Documentary"}, headers=admin)
    assert patched.status_code == 200 and patched.json["content"]["title"] == "Documentary"
    assert client.delete("/api/contents/doc-1", headers=admin).json == {"success": True, "message": "Title removed"}
    assert client.get("/api/contents/doc-1", headers=admin).status_code == 404


def test_unknown_quality_is_refused_on_create(client, auth):
    response = client.post(
        "/api/contents",
        json={"id": "x", "title": "X", "duration_seconds": 60, "qualities": ["8k"]},
        headers=auth("root", admin=True),
    )
    assert response.status_code == 422 and "qualities.0: Must be one of: 360p" in response.json["message"]


def test_a_title_with_downloads_cannot_be_removed(client, auth, movie):
    client.post("/api/downloads/start", json={"content_id": "movie", "quality": "480p"}, headers=auth())
    response = client.delete("/api/contents/movie", headers=auth("root", admin=True))
    assert response.status_code == 409 and response.json["success"] is False


def test_changes_need_an_admin_token(client, auth, movie):
    user = auth()
    assert client.post("/api/contents", json={}, headers=user).status_code == 403
    assert client.patch("/api/contents/movie", json={"title": "Y"}, headers=user).status_code == 403
    assert client.delete("/api/contents/movie", headers=user).status_code == 403


def test_a_source_redirecting_to_a_private_address_is_measured_only_when_allowed(client, auth, movie, configure):
    admin = auth("root", admin=True)
    with (
        FixedAnswers({"/movie.mp4": empty_file()}) as target,
        FixedAnswers({"/movie.mp4": redirect_to(f"{target.url}/movie.mp4")}) as origin,
    ):
        body = {"location": f"{origin.url}/movie.mp4"}
        refused = client.put("/api/contents/movie/sources/480p", json=body, headers=admin)
        assert refused.status_code == 422 and "not a public address" in refused.json["message"]
        configure(DOWNLOAD_ALLOW_PRIVATE_REDIRECTS=True)
        saved = client.put("/api/contents/movie/sources/480p", json=body, headers=admin)
        assert saved.status_code == 200 and saved.json["source"]["size_bytes"] == "0"
