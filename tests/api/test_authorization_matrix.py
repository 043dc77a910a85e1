"""Every route × every kind of credential: the expected status, and nothing leaked in the body.

Credentials: none, expired, signed with another secret, `alg: none`, another user's token,
a user's token on admin routes, and the owner's (or an admin's) token. A refused request
leaves the owner's download as it was, and no body names the owner or their download or
carries a stack trace.
"""

import base64
import hashlib
import json
from dataclasses import dataclass

import jwt
import pytest

from downloads_app.downloads import catalogue, devices, user_actions
from downloads_app.downloads.models import Content, Device, Download
from downloads_app.web.auth import issue_token

OWNER, OTHER = "alice", "bob"


@dataclass(frozen=True)
class Route:
    path: str  # {id}: the owner's download, {content}: a title, {device}: the owner's device
    status: int  # the owner's (or for admin routes, the admin's) answer
    admin: bool = False
    body: dict = None
    state: str = "pending"  # the owner's download before the request ("device": pending, and a device)
    per_download: bool = False  # another user gets 404 (their token finds no such download)


# (method, Flask rule) -> how to call it; every API route of the app is listed here.
ROUTES = {
    ("GET", "/api/downloads"): Route("/api/downloads", 200),
    ("POST", "/api/downloads/start"): Route(
        "/api/downloads/start", 202, body={"content_id": "movie", "quality": "1080p"}
    ),
    ("POST", "/api/downloads/cleanup"): Route("/api/downloads/cleanup", 200),
    ("GET", "/api/downloads/events"): Route("/api/downloads/events", 200),
    ("GET", "/api/downloads/<download_id:download_id>"): Route("/api/downloads/{id}", 200, per_download=True),
    ("DELETE", "/api/downloads/<download_id:download_id>"): Route("/api/downloads/{id}", 200, per_download=True),
    ("DELETE", "/api/downloads/<download_id:download_id>/delete"): Route(
        "/api/downloads/{id}/delete", 200, per_download=True
    ),
    ("GET", "/api/downloads/<download_id:download_id>/progress"): Route(
        "/api/downloads/{id}/progress", 200, per_download=True
    ),
    ("GET", "/api/downloads/<download_id:download_id>/events"): Route(
        "/api/downloads/{id}/events", 200, per_download=True
    ),
    ("POST", "/api/downloads/<download_id:download_id>/pause"): Route(
        "/api/downloads/{id}/pause", 200, per_download=True
    ),
    ("POST", "/api/downloads/<download_id:download_id>/resume"): Route(
        "/api/downloads/{id}/resume", 200, state="paused", per_download=True
    ),
    ("POST", "/api/downloads/<download_id:download_id>/cancel"): Route(
        "/api/downloads/{id}/cancel", 200, per_download=True
    ),
    ("POST", "/api/downloads/<download_id:download_id>/retry"): Route(
        "/api/downloads/{id}/retry", 200, state="cancelled", per_download=True
    ),
    ("GET", "/api/downloads/<download_id:download_id>/file"): Route(
        "/api/downloads/{id}/file", 200, state="stored", per_download=True
    ),
    ("POST", "/api/downloads/<download_id:download_id>/play"): Route(
        "/api/downloads/{id}/play", 200, state="stored", per_download=True
    ),
    ("POST", "/api/downloads/<download_id:download_id>/renew"): Route(
        "/api/downloads/{id}/renew", 200, state="stored", per_download=True
    ),
    ("GET", "/api/storage"): Route("/api/storage", 200),
    ("GET", "/api/devices"): Route("/api/devices", 200),
    ("GET", "/api/me"): Route("/api/me", 200),
    ("PATCH", "/api/me"): Route("/api/me", 200, body={"smart_downloads": True}),
    ("POST", "/api/downloads/<download_id:download_id>/watched"): Route(
        "/api/downloads/{id}/watched", 200, state="stored", per_download=True
    ),
    ("POST", "/api/devices"): Route("/api/devices", 201, body={"name": "Phone", "platform": "ios"}),
    ("DELETE", "/api/devices/<device_id:device_id>"): Route(
        "/api/devices/{device}", 200, state="device", per_download=True
    ),
    ("POST", "/api/session"): Route("/api/session", 200),
    ("GET", "/api/contents"): Route("/api/contents", 200),
    ("GET", "/api/contents/<content_id:content_id>"): Route("/api/contents/{content}", 200),
    ("POST", "/api/contents"): Route(
        "/api/contents",
        201,
        admin=True,
        body={"id": "new-title", "title": "New", "duration_seconds": 60, "qualities": ["480p"]},
    ),
    ("PATCH", "/api/contents/<content_id:content_id>"): Route(
        "/api/contents/{content}", 200, admin=True, body={"title": "Renamed"}
    ),
    ("DELETE", "/api/contents/<content_id:content_id>"): Route("/api/contents/spare", 200, admin=True),
    ("PUT", "/api/contents/<content_id:content_id>/sources/<quality:quality>"): Route(
        "/api/contents/{content}/sources/480p",
        200,
        admin=True,
        body={"location": "https://origin.example/movie/480p.mp4", "size_bytes": "1000"},
    ),
    ("DELETE", "/api/contents/<content_id:content_id>/sources/<quality:quality>"): Route(
        "/api/contents/spare/sources/480p", 200, admin=True
    ),
    ("GET", "/api/queue/health"): Route("/api/queue/health", 200, admin=True),
    ("GET", "/api/queue/activity"): Route("/api/queue/activity", 200, admin=True),
    ("POST", "/api/queue/downloads/<download_id:download_id>/requeue"): Route(
        "/api/queue/downloads/{id}/requeue", 200, admin=True
    ),
}

# Pages, probes, the spec and assets: answered without any credential. Removing the
# stream cookie needs none either (it only clears a cookie of the caller's own browser).
PUBLIC = {
    ("GET", "/"): "/",
    ("GET", "/admin"): "/admin",
    ("GET", "/dashboard/<path:filename>"): "/dashboard/app.js",
    ("GET", "/static/<path:filename>"): "/static/dashboard/app.css",
    ("GET", "/docs"): "/docs",
    ("GET", "/docs/assets/<path:filename>"): "/docs/assets/swagger-ui.css",
    ("GET", "/openapi.json"): "/openapi.json",
    ("GET", "/healthz"): "/healthz",
    ("GET", "/readyz"): "/readyz",
    ("GET", "/metrics"): "/metrics",
    ("DELETE", "/api/session"): "/api/session",
}


def _alg_none_token(user_id):
    """An unsigned token (`alg: none`) claiming to be `user_id`."""

    def encode(part):
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()

    return f"{encode({'alg': 'none', 'typ': 'JWT'})}.{encode({'sub': user_id, 'exp': 4102444800, 'role': 'admin'})}."


def credentials(app):
    """kind -> Authorization header value (None: no header)."""
    with app.app_context():
        return {
            "none": None,
            "expired": f"Bearer {issue_token(OWNER, admin=True, ttl_seconds=-60)}",
            "bad signature": "Bearer "
            + jwt.encode(
                {"sub": OWNER, "exp": 4102444800, "role": "admin"}, "another-secret-" + "y" * 60, algorithm="HS256"
            ),
            "alg none": f"Bearer {_alg_none_token(OWNER)}",
            "other user": f"Bearer {issue_token(OTHER)}",
            "user on admin route": f"Bearer {issue_token(OWNER)}",
            "owner": f"Bearer {issue_token(OWNER)}",
            "admin": f"Bearer {issue_token(OWNER, admin=True)}",
        }


def expected_refusals(route):
    """kind -> status for every credential that must not get the owner's answer."""
    refusals = {"none": 401, "expired": 401, "bad signature": 401, "alg none": 401}
    if route.admin:
        refusals.update({"other user": 403, "user on admin route": 403})
    elif route.per_download:
        refusals["other user"] = 404
    else:
        refusals["other user"] = route.status  # allowed, but sees only their own
    return refusals


@pytest.fixture
def owned(app, movie):
    """The owner's download, in a given state; a spare title no download uses, with a source."""

    def make(state):
        with app.app_context():
            Content.create(id="spare", title="Spare", duration_seconds=60, qualities="480p")
            catalogue.set_source(
                app.extensions["runtime"].settings, "spare", "480p", "https://origin.example/spare.mp4", size_bytes=1000
            )
            download, _ = user_actions.start_download(app.extensions["runtime"], OWNER, "movie", "720p")
            if state == "paused":
                user_actions.pause(app.extensions["runtime"], OWNER, download.id)
            elif state == "cancelled":
                user_actions.cancel(app.extensions["runtime"], OWNER, download.id)
            elif state == "device":
                devices.register(app.extensions["runtime"], OWNER, "Phone", "ios")
            elif state == "stored":  # completed by a real transfer: a file and its SHA-256
                path = app.extensions["runtime"].files.of(download).final_path
                path.parent.mkdir(parents=True)
                path.write_bytes(b"the bytes of the film")
                Download.update(status="completed", sha256=hashlib.sha256(b"the bytes of the film").hexdigest()).where(
                    Download.id == download.id
                ).execute()
            return Download.get_by_id(download.id)

    return make


def _call(client, method, path, header, body=None):
    """The answer, read to its end and closed (file and stream answers hold resources)."""
    headers = {"Authorization": header} if header else {}
    response = client.open(path, method=method, headers=headers, json=body)
    response.get_data()
    response.close()
    return response


def _assert_nothing_leaked(response, download):
    text = response.get_data(as_text=True)
    assert download.id not in text and OWNER not in text, text
    assert "Traceback" not in text and 'File "' not in text, text
    if response.status_code >= 400:
        assert response.is_json and response.json["success"] is False and response.json["message"]


def test_every_route_is_in_the_matrix(app):
    rules = {(method, rule.rule) for rule in app.url_map.iter_rules() for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert rules == set(ROUTES) | set(PUBLIC)


@pytest.mark.parametrize("method, rule", list(ROUTES), ids=[f"{m} {r}" for m, r in ROUTES])
def test_route_answers_each_credential_as_expected(app, client, owned, redis_client, method, rule, configure):
    configure(SSE_MAX_STREAM_SECONDS=0.05)  # a stream's body is read to its end
    route = ROUTES[(method, rule)]
    download = owned(route.state)
    with app.app_context():
        device = Device.get_or_none(Device.user_id == OWNER)
    path = route.path.format(id=download.id, content="movie", device=device and device.id)
    tokens = credentials(app)
    for kind, status in expected_refusals(route).items():
        response = _call(client, method, path, tokens[kind], route.body)
        assert response.status_code == status, (kind, response.get_data(as_text=True))
        _assert_nothing_leaked(response, download)
        if status == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"
        with app.app_context():
            after = Download.get_or_none(Download.id == download.id)
        assert after is not None and after.status == download.status, kind  # nothing changed
    owner = _call(client, method, path, tokens["admin" if route.admin else "owner"], route.body)
    assert owner.status_code == route.status, owner.get_data(as_text=True)


@pytest.mark.parametrize("method, rule", list(PUBLIC), ids=[f"{m} {r}" for m, r in PUBLIC])
def test_public_routes_need_no_credential(app, client, movie, method, rule):
    for header in (None, "Bearer not-a-token"):
        response = _call(client, method, PUBLIC[(method, rule)], header)
        assert response.status_code == 200, response.get_data(as_text=True)[:200]
