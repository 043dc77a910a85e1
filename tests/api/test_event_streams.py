"""Server-Sent Events: snapshot, live events from Redis pub/sub, heartbeats, cookie auth, cleanup."""

import json

import pytest

from downloads_app.infra.database import database
from downloads_app.web.api import event_streams
from downloads_app.web.auth import STREAM_COOKIE
from support import wait_until


def parse(chunk):
    """An SSE chunk as {field: value}; comments as {"comment": text}."""
    text = chunk.decode() if isinstance(chunk, bytes) else chunk
    if text.startswith(":"):
        return {"comment": text[1:].strip()}
    fields = dict(line.split(": ", 1) for line in text.strip().splitlines())
    if "data" in fields:
        fields["data"] = json.loads(fields["data"])
    return fields


class Stream:
    def __init__(self, client, path, headers):
        self.response = client.get(path, headers=headers, buffered=False)
        self.chunks = iter(self.response.response)

    def next_event(self):
        while True:
            fields = parse(next(self.chunks))
            if "event" in fields or "comment" in fields:
                return fields

    def close(self):
        self.response.close()


@pytest.fixture
def open_stream(app, client):
    streams = []

    def open_stream(path, headers):
        stream = Stream(client, path, headers)
        streams.append(stream)
        return stream

    yield open_stream
    for stream in streams:
        stream.close()


@pytest.fixture
def start(client, auth, movie):
    def start(user="alice", quality="480p"):
        return client.post(
            "/api/downloads/start", json={"content_id": "movie", "quality": quality}, headers=auth(user)
        ).json["download"]

    return start


def test_a_download_stream_starts_with_its_state_then_follows_changes(app, client, auth, start, open_stream):
    download = start()
    stream = open_stream(f"/api/downloads/{download['id']}/events", auth())
    assert stream.response.status_code == 200
    assert stream.response.mimetype == "text/event-stream"
    assert stream.response.headers["Cache-Control"] == "no-cache"
    first = stream.next_event()
    assert first["event"] == "status" and first["id"].isdigit()
    assert first["data"] == {
        "success": True,
        "id": download["id"],
        "status": "pending",
        "progress": 0,
        "downloaded_bytes": "0",
        "file_size_bytes": download["file_size_bytes"],
    }
    client.post(f"/api/downloads/{download['id']}/pause", headers=auth())
    paused = stream.next_event()
    assert (paused["event"], paused["data"]["status"]) == ("status", "paused")
    assert int(paused["id"]) >= int(first["id"])
    client.delete(f"/api/downloads/{download['id']}", headers=auth())
    assert stream.next_event()["data"]["status"] == "deleted"


def test_worker_progress_reaches_the_stream(app, client, auth, start, open_stream, worker):
    download = start()
    stream = open_stream(f"/api/downloads/{download['id']}/events", auth())
    seen = []
    while not seen or seen[-1] != ("status", "completed", 100):
        event = stream.next_event()
        seen.append((event["event"], event["data"]["status"], event["data"]["progress"]))
    progress = [p for kind, _, p in seen if kind == "progress"]
    assert progress == list(range(10, 100, 10))  # the completion brings the last step's 100
    assert ("status", "downloading", 0) in seen


def test_the_all_downloads_stream_carries_only_the_callers_downloads(app, client, auth, start, open_stream):
    mine = start()
    theirs = start("bob")
    stream = open_stream("/api/downloads/events", auth())
    assert stream.next_event()["data"]["id"] == mine["id"]  # snapshot of active downloads
    client.post(f"/api/downloads/{theirs['id']}/pause", headers=auth("bob"))
    second = start(quality="720p")
    event = stream.next_event()
    assert (event["data"]["id"], event["data"]["status"]) == (second["id"], "pending")


def test_a_change_the_snapshot_holds_is_not_sent_again(app, client, auth, start, open_stream):
    # The subscription opens before the snapshot is read, so its listener may still deliver a
    # change made before the stream opened (late on a busy machine): the client gets it once.
    download = start()
    stream = open_stream("/api/downloads/events", auth())
    first = stream.next_event()
    app.extensions["event_hub"]._dispatch("alice", {**first, "id": int(first["id"])})
    client.post(f"/api/downloads/{download['id']}/pause", headers=auth())
    event = stream.next_event()
    assert (event["data"]["id"], event["data"]["status"]) == (download["id"], "paused")


def test_heartbeat_comments_keep_idle_streams_open(app, start, auth, open_stream, configure):
    configure(SSE_HEARTBEAT_SECONDS=0.2)
    download = start()
    stream = open_stream(f"/api/downloads/{download['id']}/events", auth())
    stream.next_event()
    assert stream.next_event() == {"comment": "heartbeat"}


def test_reconnecting_with_last_event_id_gets_what_changed_at_once(app, client, auth, start, open_stream, configure):
    configure(SSE_HEARTBEAT_SECONDS=0.5)
    old, changed = start(), start(quality="720p")
    client.post(f"/api/downloads/{old['id']}/cancel", headers=auth())
    first = open_stream("/api/downloads/events", auth())
    last_id = first.next_event()["id"]
    client.post(f"/api/downloads/{changed['id']}/pause", headers=auth())
    again = open_stream("/api/downloads/events", {**auth(), "Last-Event-ID": last_id})
    # Everything changed since a second before that id, oldest first, then the heartbeat.
    snapshot = []
    while "data" in (event := again.next_event()):
        snapshot.append(event["data"])
    assert (snapshot[-1]["id"], snapshot[-1]["status"]) == (changed["id"], "paused")


def snapshot_after(open_stream, auth, last_id):
    """The data of the events a stream reconnecting with `last_id` sends before its first heartbeat."""
    again = open_stream("/api/downloads/events", {**auth(), "Last-Event-ID": last_id})
    snapshot = []
    while "data" in (event := again.next_event()):
        snapshot.append(event["data"])
    return snapshot


def test_reconnecting_learns_of_the_downloads_deleted_meanwhile(app, client, auth, start, open_stream, configure):
    configure(SSE_HEARTBEAT_SECONDS=0.5)
    gone, kept = start(), start(quality="720p")
    last_id = open_stream("/api/downloads/events", auth()).next_event()["id"]
    client.delete(f"/api/downloads/{gone['id']}", headers=auth())
    client.post(f"/api/downloads/{kept['id']}/pause", headers=auth())
    snapshot = snapshot_after(open_stream, auth, last_id)
    assert [(d["id"], d["status"]) for d in snapshot] == [(gone["id"], "deleted"), (kept["id"], "paused")]
    # Another user's deletions are not theirs to see.
    other = open_stream("/api/downloads/events", {**auth("bob"), "Last-Event-ID": last_id})
    assert "data" not in other.next_event()


def test_a_long_catch_up_keeps_the_newest_changes(app, client, auth, titles, open_stream, configure, monkeypatch):
    configure(SSE_HEARTBEAT_SECONDS=0.5)
    monkeypatch.setattr(event_streams, "SNAPSHOT_LIMIT", 2)
    ids = [
        client.post("/api/downloads/start", json={"content_id": c, "quality": "480p"}, headers=auth()).json["download"][
            "id"
        ]
        for c in titles(3)
    ]
    last_id = open_stream("/api/downloads/events", auth()).next_event()["id"]
    for download_id in ids:  # changed one after the other: the last two are the newest
        client.post(f"/api/downloads/{download_id}/pause", headers=auth())
    assert [d["id"] for d in snapshot_after(open_stream, auth, last_id)] == ids[1:]


def test_streams_release_their_subscription_and_hold_no_database_connection(app, start, auth, open_stream):
    download = start()
    hub = app.extensions["event_hub"]
    stream = open_stream(f"/api/downloads/{download['id']}/events", auth())
    stream.next_event()
    assert hub.open_count() == 1
    assert database.is_closed()
    if hasattr(database.obj, "_in_use"):
        assert len(database.obj._in_use) == 0
    stream.close()
    wait_until(lambda: hub.open_count() == 0, timeout=5, message="the subscription to close")


def test_browsers_authenticate_streams_with_an_httponly_cookie(app, client, auth, start, token):
    download = start()
    response = client.post("/api/session", headers=auth())
    assert response.status_code == 200
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{STREAM_COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/api/downloads" in cookie
    streamed = client.get(f"/api/downloads/{download['id']}/events", buffered=False)
    assert streamed.status_code == 200
    streamed.close()
    # The cookie opens event streams and files (a plain link saves a file; this download is
    # simulated and not completed, hence 409), never the rest of the API.
    assert client.get(f"/api/downloads/{download['id']}/file").status_code == 409
    assert client.get("/api/downloads").status_code == 401
    assert client.post(f"/api/downloads/{download['id']}/pause").status_code == 401
    client.delete("/api/session")
    assert client.get(f"/api/downloads/{download['id']}/events").status_code == 401
    assert client.get(f"/api/downloads/{download['id']}/file").status_code == 401


def test_streams_refuse_strangers(client, auth, start):
    download = start()
    assert client.get(f"/api/downloads/{download['id']}/events", headers=auth("bob")).status_code == 404
    assert client.get("/api/downloads/events").status_code == 401


def test_head_answers_the_stream_headers_without_holding_a_subscription(app, client, auth, start):
    download = start()
    hub = app.extensions["event_hub"]
    for path in ("/api/downloads/events", f"/api/downloads/{download['id']}/events"):
        response = client.head(path, headers=auth())
        assert response.status_code == 200
        assert response.mimetype == "text/event-stream"
        assert hub.open_count() == 0
    assert client.head(f"/api/downloads/{download['id']}/events", headers=auth("bob")).status_code == 404


@pytest.mark.parametrize("last_event_id", ["²", "99999999999999999999", "-5", "12a", " 12"])
def test_invalid_last_event_ids_are_ignored(app, auth, start, open_stream, last_event_id):
    download = start()
    stream = open_stream("/api/downloads/events", {**auth(), "Last-Event-ID": last_event_id})
    assert stream.response.status_code == 200
    # As without the header: the active downloads.
    assert stream.next_event()["data"]["id"] == download["id"]
