"""Bearer tokens: what is accepted, what is refused, and the CLI that issues them."""

import base64
import json
import time

import jwt
import pytest

from downloads_app import create_app
from support.environment import TEST_JWT_SECRET


def _b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bad_tokens():
    now = int(time.time())
    return {
        "expired": jwt.encode({"sub": "alice", "exp": now - 10}, TEST_JWT_SECRET, algorithm="HS256"),
        "bad signature": jwt.encode({"sub": "alice", "exp": now + 60}, "another-secret-" + "y" * 40, algorithm="HS256"),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': 'alice', 'exp': now + 60})}.",
        "no exp": jwt.encode({"sub": "alice"}, TEST_JWT_SECRET, algorithm="HS256"),
        "no sub": jwt.encode({"exp": now + 60}, TEST_JWT_SECRET, algorithm="HS256"),
        "HS512": jwt.encode({"sub": "alice", "exp": now + 60}, TEST_JWT_SECRET, algorithm="HS512"),
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize("kind", sorted(_bad_tokens()))
def test_invalid_tokens_get_401_json(client, kind):
    response = client.get("/api/downloads", headers={"Authorization": f"Bearer {_bad_tokens()[kind]}"})
    assert response.status_code == 401
    assert response.is_json and response.json["success"] is False
    assert response.headers["WWW-Authenticate"] == "Bearer"
    if kind == "expired":
        assert response.json["message"] == "The token has expired; sign in again."


@pytest.mark.parametrize("sub", ["a" * 129, "ali\x00ce"], ids=["longer than the user id column", "NUL"])
def test_subjects_the_database_cannot_hold_get_401(client, movie, sub):
    bad = jwt.encode({"sub": sub, "exp": int(time.time()) + 60}, TEST_JWT_SECRET, algorithm="HS256")
    headers = {"Authorization": f"Bearer {bad}"}
    response = client.post("/api/downloads/start", json={"content_id": "movie", "quality": "720p"}, headers=headers)
    assert response.status_code == 401 and response.json["success"] is False
    assert client.get("/api/downloads", headers=headers).status_code == 401


def test_the_longest_subject_the_database_holds_is_accepted(client, movie):
    sub = "a" * 128
    ok = jwt.encode({"sub": sub, "exp": int(time.time()) + 60}, TEST_JWT_SECRET, algorithm="HS256")
    response = client.post(
        "/api/downloads/start",
        json={"content_id": "movie", "quality": "720p"},
        headers={"Authorization": f"Bearer {ok}"},
    )
    assert response.status_code == 202


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_missing_or_malformed_authorization_gets_401(client, header):
    headers = {} if header is None else {"Authorization": header}
    response = client.post("/api/downloads/start", json={"content_id": "x", "quality": "720p"}, headers=headers)
    assert response.status_code == 401 and response.json["success"] is False


def test_admin_role_comes_only_from_a_signed_token(client, auth):
    forged = jwt.encode(
        {"sub": "mallory", "role": "admin", "exp": int(time.time()) + 60}, "guessed-" + "z" * 40, algorithm="HS256"
    )
    assert client.post("/api/contents", json={}, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert client.post("/api/contents", json={}, headers=auth("alice")).status_code == 403


def test_cli_token_is_printed_alone_and_is_accepted(app, client):
    result = app.test_cli_runner().invoke(args=["auth", "token", "carol", "--admin"])
    assert result.exit_code == 0
    token = result.stdout.strip()
    assert "\n" not in token
    claims = jwt.decode(token, TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "carol" and claims["role"] == "admin" and claims["exp"] > time.time()
    assert client.get("/api/contents", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_health_routes_need_no_token(client):
    assert client.get("/healthz").json == {"success": True, "status": "alive", "checks": {}}


def test_a_different_secret_rejects_existing_tokens(database_url, token):
    other = create_app({"TESTING": True, "DATABASE_URL": database_url, "JWT_SECRET": "rotated-" + "r" * 40})
    response = other.test_client().get("/api/storage", headers={"Authorization": f"Bearer {token('alice')}"})
    assert response.status_code == 401
