"""Devices, licences and the titles' rules through the HTTP API, on SQLite and PostgreSQL."""

import threading
from datetime import date, datetime, timedelta

import pytest

from downloads_app.downloads import licences, run_writes
from downloads_app.downloads.models import Download, utcnow
from support import wait_until

SIZE_720 = str(1000 * 3333 * 125)
SIZE_480 = str(1000 * 1556 * 125)
NEXT_NEW_YEAR = date(utcnow().year + 1, 1, 1).isoformat()


@pytest.fixture
def api(client, auth, movie):
    """api(method, path, json=None, user="alice") -> response."""

    def call(method, path, json=None, user="alice", admin=False):
        return getattr(client, method)(path, json=json, headers=auth(user, admin))

    return call


def register(api, name="Phone", platform="ios", user="alice"):
    response = api("post", "/api/devices", {"name": name, "platform": platform}, user=user)
    assert response.status_code == 201, response.json
    return response.json["device"]


def start(api, quality="720p", device=None, content_id="movie", user="alice", expect=202):
    body = {"content_id": content_id, "quality": quality}
    if device is not None:
        body["device_id"] = device
    response = api("post", "/api/downloads/start", body, user=user)
    assert response.status_code == expect, response.json
    return response.json if expect >= 400 else response.json["download"]


def parse(stamp):
    return datetime.fromisoformat(stamp)


# ---------------------------------------------------------------- devices


def test_a_device_is_registered_listed_with_what_it_holds_and_deregistered_with_its_downloads(api):
    phone = register(api, "Phone", "ios")
    assert set(phone) == {"id", "name", "platform", "created_at", "download_count", "used_bytes"}
    assert (phone["download_count"], phone["used_bytes"]) == (0, "0")
    tablet = register(api, "Tablet", "android")
    on_phone = [start(api, q, phone["id"]) for q in ("720p", "480p")]
    on_tablet = start(api, "720p", tablet["id"])
    assert on_tablet["id"] not in {d["id"] for d in on_phone}  # one title on two devices: two downloads
    assert {d["device_id"] for d in on_phone} == {phone["id"]}
    listed = api("get", "/api/devices").json
    assert [(d["name"], d["download_count"], d["used_bytes"]) for d in listed["devices"]] == [
        ("Phone", 2, str(int(SIZE_720) + int(SIZE_480))),
        ("Tablet", 1, SIZE_720),
    ]
    assert listed["default_device"] == {"download_count": 0, "used_bytes": "0"}
    only_tablet = api("get", f"/api/downloads?device_id={tablet['id']}").json["downloads"]
    assert [d["id"] for d in only_tablet] == [on_tablet["id"]]

    gone = api("delete", f"/api/devices/{phone['id']}")
    assert gone.status_code == 200
    assert gone.json == {
        "success": True,
        "message": "Device deregistered; deleted its 2 downloads",
        "deleted_count": 2,
        "freed_bytes": str(int(SIZE_720) + int(SIZE_480)),
    }
    assert api("get", "/api/storage").json["used_bytes"] == SIZE_720
    assert [d["id"] for d in api("get", "/api/downloads").json["downloads"]] == [on_tablet["id"]]
    assert api("delete", f"/api/devices/{phone['id']}").status_code == 404
    assert [d["name"] for d in api("get", "/api/devices").json["devices"]] == ["Tablet"]


def test_the_device_cap_refuses_the_next_registration_with_409(api, configure):
    configure(MAX_DEVICES_PER_USER=2)
    register(api), register(api)
    refused = api("post", "/api/devices", {"name": "Third", "platform": "web"})
    assert refused.status_code == 409
    assert refused.json == {
        "success": False,
        "reason": "too_many_devices",
        "message": "You have 2 devices registered, the most allowed: deregister one to add another.",
        "max_devices": 2,
    }
    register(api, user="bob")  # another user's devices are their own


def test_once_a_user_has_devices_a_start_names_one_and_before_that_the_default_device_keeps_working(api):
    before = start(api, "480p")
    assert before["device_id"] is None
    phone = register(api)
    refused = start(api, "720p", expect=422)
    assert refused["reason"] == "device_required" and "device_id" in refused["message"]
    # The download of the default device stays, and its repeat still answers it.
    assert api("get", "/api/devices").json["default_device"] == {"download_count": 1, "used_bytes": SIZE_480}
    assert start(api, "720p", phone["id"])["device_id"] == phone["id"]


def test_a_start_on_an_unknown_or_another_users_device_is_404(api):
    bobs = register(api, user="bob")
    register(api)
    for device_id in (bobs["id"], "0" * 32):
        refused = start(api, device=device_id, expect=404)
        assert refused["reason"] == "device_not_found"
    assert api("delete", f"/api/devices/{bobs['id']}").status_code == 404
    assert api("get", "/api/storage").json["used_bytes"] == "0"


def test_a_device_holds_at_most_max_downloads_per_device(api, configure, titles):
    configure(MAX_DOWNLOADS_PER_DEVICE=2)
    phone, tablet = register(api), register(api, "Tablet")
    first, _ = start(api, "480p", phone["id"]), start(api, "720p", phone["id"])
    refused = start(api, "1080p", phone["id"], expect=409)
    assert refused["reason"] == "too_many_downloads_on_device" and refused["max_downloads_per_device"] == 2
    start(api, "1080p", tablet["id"])
    api("delete", f"/api/downloads/{first['id']}")
    start(api, "1080p", phone["id"])  # deleting one makes room


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "platform": "ios"}, "name"),
        ({"name": "x\u0000", "platform": "ios"}, "name"),
        ({"name": "Phone", "platform": "i/o/s"}, "platform"),
        ({"name": "Phone"}, "platform"),
        ({"name": "Phone", "platform": "ios", "owner": "bob"}, "owner"),
    ],
)
def test_a_bad_device_is_refused_with_422_naming_the_field(api, body, field):
    response = api("post", "/api/devices", body)
    assert response.status_code == 422 and field in response.json["errors"]["json"], response.json
    assert api("get", "/api/devices").json["devices"] == []


def test_a_bad_device_id_is_refused_before_anything_is_looked_up(api):
    assert start(api, device="phone", expect=422)["errors"]["json"]["device_id"]
    assert api("delete", "/api/devices/phone").status_code == 404
    assert api("get", "/api/downloads?device_id=phone").status_code == 422


# ---------------------------------------------------------------- titles' rules


def test_admins_set_a_titles_rules_and_users_see_them(api):
    created = api(
        "post",
        "/api/contents",
        {
            "id": "ep-1",
            "title": "Pilot",
            "duration_seconds": 60,
            "qualities": ["480p"],
            "max_downloads_per_year": 2,
            "license_days": 7,
            "playback_window_hours": 24,
            "max_renewals": 1,
            "series_id": "show",
            "season": 1,
            "episode": 1,
        },
        user="root",
        admin=True,
    )
    assert created.status_code == 201, created.json
    content = api("get", "/api/contents/ep-1").json["content"]
    assert {k: content[k] for k in ("downloadable", "max_downloads_per_year", "license_days", "max_renewals")} == {
        "downloadable": True,
        "max_downloads_per_year": 2,
        "license_days": 7.0,
        "max_renewals": 1,
    }
    assert (content["series_id"], content["season"], content["episode"]) == ("show", 1, 1)
    patched = api("patch", "/api/contents/ep-1", {"license_days": None, "downloadable": False}, "root", admin=True)
    assert patched.json["content"]["license_days"] is None and patched.json["content"]["downloadable"] is False
    movie = api("get", "/api/contents/movie").json["content"]
    assert movie["downloadable"] is True and movie["max_downloads_per_year"] is None


@pytest.mark.parametrize(
    "rules",
    [
        {"license_days": 0},
        {"license_days": -1},
        {"license_days": 10_000},
        {"playback_window_hours": "soon"},
        {"max_renewals": -1},
        {"max_renewals": 1.5},
        {"max_downloads_per_year": "2"},
        {"downloadable": None},
        {"series_id": "a b"},
    ],
)
def test_bad_rules_are_refused_with_422_and_change_nothing(api, rules):
    response = api("patch", "/api/contents/movie", rules, "root", admin=True)
    assert response.status_code == 422, response.json
    assert next(iter(rules)) in response.json["errors"]["json"]
    assert api("get", "/api/contents/movie").json["content"]["license_days"] is None


def test_a_title_that_may_not_be_downloaded_is_refused_with_403_and_a_reason(api):
    api("patch", "/api/contents/movie", {"downloadable": False}, "root", admin=True)
    refused = start(api, expect=403)
    assert refused == {
        "success": False,
        "reason": "title_not_downloadable",
        "message": "'A Movie' cannot be downloaded, only streamed.",
    }
    assert api("get", "/api/storage").json["used_bytes"] == "0"


def test_the_yearly_cap_of_a_title_refuses_the_next_start_with_the_day_it_frees_up(api):
    api("patch", "/api/contents/movie", {"max_downloads_per_year": 2}, "root", admin=True)
    first = start(api, "480p")
    assert start(api, "480p", expect=200)["id"] == first["id"]  # held: not counted again
    api("delete", f"/api/downloads/{first['id']}")
    start(api, "480p")  # the second download of the year
    refused = start(api, "720p", expect=409)
    assert refused["reason"] == "yearly_downloads_spent"
    assert refused["max_downloads_per_year"] == 2 and refused["frees_up_on"] == NEXT_NEW_YEAR
    assert NEXT_NEW_YEAR in refused["message"]
    start(api, "720p", user="bob")  # per account


def test_concurrent_starts_of_a_capped_title_take_no_more_than_the_cap(app, api, auth):
    api("patch", "/api/contents/movie", {"max_downloads_per_year": 1}, "root", admin=True)
    results = []

    def one(quality):
        with app.test_client() as client:
            response = client.post(
                "/api/downloads/start", json={"content_id": "movie", "quality": quality}, headers=auth()
            )
            results.append(response.status_code)

    threads = [threading.Thread(target=one, args=(q,)) for q in ("480p", "720p", "1080p")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [202, 409, 409]


# ---------------------------------------------------------------- licences


def test_a_download_completed_by_the_worker_is_licensed_played_renewed_and_expires(app, api, worker, configure):
    configure(LICENSE_DAYS=30.0, PLAYBACK_WINDOW_HOURS=48.0, MAX_RENEWALS_PER_YEAR=1)
    download = start(api, "480p")
    url = f"/api/downloads/{download['id']}"
    done = wait_until(lambda: (d := api("get", url).json["download"])["status"] == "completed" and d, timeout=30)
    assert parse(done["license_expires_at"]) - parse(done["completed_at"]) == timedelta(days=30)
    assert done["played_at"] is None

    played = api("post", f"{url}/play")
    assert played.status_code == 200 and played.json["message"] == "Playback recorded"
    record = played.json["download"]
    assert parse(record["license_expires_at"]) == parse(record["played_at"]) + timedelta(hours=48)

    renewed = api("post", f"{url}/renew").json["download"]
    assert parse(renewed["license_expires_at"]) == parse(record["license_expires_at"]) + timedelta(days=30)
    refused = api("post", f"{url}/renew")
    assert refused.status_code == 409 and refused.json["reason"] == "renewals_spent"
    assert refused.json["frees_up_on"] == NEXT_NEW_YEAR and refused.json["max_renewals"] == 1

    with app.app_context():
        Download.update(license_expires_at=utcnow() - timedelta(seconds=1)).where(
            Download.id == download["id"]
        ).execute()
        licences.expire_due(app.extensions["runtime"])
    expired = api("get", url).json["download"]
    assert expired["status"] == "expired"
    assert api("get", "/api/storage").json["used_bytes"] == "0"
    gone = api("get", f"{url}/file")
    assert gone.status_code == 410 and gone.json["reason"] == "licence_expired"
    assert api("post", f"{url}/play").status_code == 410
    assert [d["id"] for d in api("get", "/api/downloads?status=expired").json["downloads"]] == [download["id"]]


def test_renewing_an_expired_download_fetches_it_again(app, api, worker, configure):
    configure(MAX_RENEWALS_PER_YEAR=3)
    download = start(api, "480p")
    url = f"/api/downloads/{download['id']}"
    wait_until(lambda: api("get", url).json["download"]["status"] == "completed", timeout=30)
    with app.app_context():
        Download.update(license_expires_at=utcnow()).where(Download.id == download["id"]).execute()
        licences.expire_due(app.extensions["runtime"])
    renewed = api("post", f"{url}/renew")
    assert renewed.status_code == 200 and renewed.json["download"]["status"] in ("pending", "downloading")
    assert api("get", "/api/storage").json["used_bytes"] == SIZE_480
    again = wait_until(lambda: (d := api("get", url).json["download"])["status"] == "completed" and d, timeout=30)
    assert parse(again["license_expires_at"]) - parse(again["completed_at"]) == timedelta(days=30)


def test_actions_on_licences_refuse_what_does_not_fit_the_state(api):
    download = start(api, "480p")
    for action in ("play", "renew"):
        refused = api("post", f"/api/downloads/{download['id']}/{action}")
        assert refused.status_code == 409 and refused.json["reason"] == "invalid_transition", refused.json
        assert refused.json["status"] == "pending"
    assert api("post", f"/api/downloads/{'0' * 32}/renew").status_code == 404


# ---------------------------------------------------------------- series and smart downloads

EPISODES = [("s1e1", 1, 1, 60), ("s1e2", 1, 2, 120), ("s2e1", 2, 1, 60)]  # id, season, episode, seconds


@pytest.fixture
def series(app, api):
    """A series of three episodes; complete(download) finishes a download as a worker run would."""
    for content_id, season, episode, seconds in EPISODES:
        body = {"id": content_id, "title": content_id.upper(), "duration_seconds": seconds, "qualities": ["480p"]}
        added = api(
            "post", "/api/contents", {**body, "series_id": "show", "season": season, "episode": episode}, "root", True
        )
        assert added.status_code == 201, added.json

    def complete(download):
        with app.app_context():
            rt = app.extensions["runtime"]
            run_writes.complete(rt, run_writes.claim(rt, download["id"]))
        return download

    return complete


def smart(api, on=True):
    response = api("patch", "/api/me", {"smart_downloads": on})
    assert response.status_code == 200 and response.json["smart_downloads"] is on, response.json


def test_account_settings_default_to_no_smart_downloads_and_refuse_bad_values(api):
    assert api("get", "/api/me").json == {"success": True, "user_id": "alice", "smart_downloads": False}
    smart(api)
    assert api("get", "/api/me").json["smart_downloads"] is True
    assert api("get", "/api/me", user="bob").json["smart_downloads"] is False
    for bad in ({"smart_downloads": "yes"}, {"smart_downloads": 1}, {}, {"smart": True}):
        assert api("patch", "/api/me", bad).status_code == 422, bad
    assert api("get", "/api/me").json["smart_downloads"] is True


def test_without_smart_downloads_watched_only_marks_it(api, series):
    first = series(start(api, "480p", content_id="s1e1"))
    marked = api("post", f"/api/downloads/{first['id']}/watched")
    assert marked.status_code == 200
    assert marked.json["message"] == "Marked watched." and marked.json["next_download"] is None
    assert marked.json["download"]["watched_at"] is not None
    assert api("get", f"/api/downloads/{first['id']}").json["download"]["status"] == "completed"


def test_smart_downloads_replace_a_watched_episode_with_the_next_on_its_device_and_quality(api, series):
    smart(api)
    phone = register(api)
    first = series(start(api, "480p", phone["id"], content_id="s1e1"))
    marked = api("post", f"/api/downloads/{first['id']}/watched").json
    following = marked["next_download"]
    assert (following["content_id"], following["quality"], following["device_id"]) == ("s1e2", "480p", phone["id"])
    assert following["status"] == "pending"
    assert marked["message"] == "Marked watched and deleted; the next episode, 'S1E2', started."
    assert api("get", f"/api/downloads/{first['id']}").status_code == 404
    assert api("get", "/api/storage").json["used_bytes"] == following["file_size_bytes"]
    # Across seasons, then the last episode is kept.
    second = series(following)
    third = api("post", f"/api/downloads/{second['id']}/watched").json["next_download"]
    assert third["content_id"] == "s2e1"
    last = api("post", f"/api/downloads/{series(third)['id']}/watched").json
    assert last["next_download"] is None and "last episode" in last["message"]
    assert api("get", f"/api/downloads/{third['id']}").json["download"]["status"] == "completed"


def test_the_next_episodes_start_counts_in_the_admins_activity(api, series):
    smart(api)
    first = series(start(api, "480p", content_id="s1e1"))
    assert api("post", f"/api/downloads/{first['id']}/watched").json["next_download"] is not None
    minutes = api("get", "/api/queue/activity", user="root", admin=True).json["minutes"]
    assert sum(m["started"] for m in minutes) == 2  # the first episode's start and the next's


def test_a_watched_episode_is_kept_when_the_next_is_held_or_does_not_fit(api, series, configure):
    smart(api)
    first = series(start(api, "480p", content_id="s1e1"))
    held = start(api, "480p", content_id="s1e2")
    kept = api("post", f"/api/downloads/{first['id']}/watched").json
    assert kept["next_download"] is None and "already have s1e2" in kept["message"]
    api("delete", f"/api/downloads/{held['id']}")
    # s1e2 is twice as long: it fits only in what s1e1 frees plus the free space.
    configure(STORAGE_QUOTA_BYTES=int(first["file_size_bytes"]) + 10)
    short = api("post", f"/api/downloads/{first['id']}/watched").json
    assert short["next_download"] is None and "Not enough storage" in short["message"]
    assert api("get", f"/api/downloads/{first['id']}").json["download"]["status"] == "completed"
    assert api("get", "/api/storage").json["used_bytes"] == first["file_size_bytes"]


def test_only_a_completed_download_is_marked_watched(api, series):
    pending = start(api, "480p", content_id="s1e1")
    refused = api("post", f"/api/downloads/{pending['id']}/watched")
    assert refused.status_code == 409 and refused.json["status"] == "pending"
    assert api("post", f"/api/downloads/{'0' * 32}/watched").status_code == 404


# ---------------------------------------------------------------- what admins see


def test_admins_see_the_last_hour_and_the_licences_expiring_within_a_day(app, api, series):
    soon, later = series(start(api, "480p", content_id="s1e1")), series(start(api, "480p", content_id="s1e2"))
    with app.app_context():
        Download.update(license_expires_at=utcnow() + timedelta(hours=2)).where(Download.id == soon["id"]).execute()
        Download.update(license_expires_at=utcnow() + timedelta(days=3)).where(Download.id == later["id"]).execute()
    health = api("get", "/api/queue/health", user="root", admin=True).json
    assert health["licences_expiring_next_day"] == 1
    assert [d["id"] for d in health["expiring_licences"]] == [soon["id"]]
    assert set(health["expiring_licences"][0]) == {"id", "user_id", "content_id", "device_id", "license_expires_at"}
    minutes = api("get", "/api/queue/activity", user="root", admin=True).json["minutes"]
    assert len(minutes) == 60 and sum(m["started"] for m in minutes) == 2  # this test's starts (Redis was emptied)
    assert api("get", "/api/queue/activity").status_code == 403
