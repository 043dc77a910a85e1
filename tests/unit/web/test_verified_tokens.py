"""Verified tokens are kept per process: a repeat is not verified again, yet its expiry still holds."""

from types import SimpleNamespace

import jwt
import pytest

from downloads_app.web import auth
from support.environment import TEST_JWT_SECRET


@pytest.fixture
def storage(client):
    """storage(token) -> the answer of GET /api/storage with that bearer token."""
    auth._verified.cache_clear()
    yield lambda token: client.get("/api/storage", headers={"Authorization": f"Bearer {token}"})
    auth._verified.cache_clear()


def _exp(token):
    return jwt.decode(token, options={"verify_signature": False})["exp"]


def test_a_repeat_of_a_token_is_not_verified_again(storage, token, monkeypatch):
    verified = []
    decode = jwt.decode
    monkeypatch.setattr(auth.jwt, "decode", lambda *args, **kwargs: verified.append(1) or decode(*args, **kwargs))
    alice = token("alice")
    assert [storage(alice).status_code for _ in range(3)] == [200, 200, 200]
    assert len(verified) == 1
    assert storage(token("bob", ttl_seconds=120)).status_code == 200 and len(verified) == 2


def test_a_kept_token_is_refused_from_its_expiry_on(storage, token, monkeypatch):
    alice = token("alice", ttl_seconds=60)
    assert storage(alice).status_code == 200  # kept from now on
    # Only this module's clock moves on: PyJWT's own would still take the token.
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: _exp(alice) - 0.5))
    assert storage(alice).status_code == 200
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: _exp(alice)))
    refused = storage(alice)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    assert refused.json == {
        "success": False,
        "message": "The token has expired; sign in again.",
        "reason": "not_authenticated",
    }


def test_a_token_kept_under_one_secret_is_refused_under_another(app, storage, token):
    alice = token("alice")
    assert storage(alice).status_code == 200
    app.config["JWT_SECRET"] = "another-secret-" + "s" * 40
    refused = storage(alice)
    assert refused.status_code == 401
    assert refused.json["message"] == "Invalid token: Signature verification failed."


def test_only_valid_tokens_are_kept_and_at_most_so_many(storage, token):
    expired = jwt.encode({"sub": "alice", "exp": 1}, TEST_JWT_SECRET, algorithm="HS256")
    assert storage(expired).status_code == 401 and storage("not.a.token").status_code == 401
    assert auth._verified.cache_info().currsize == 0
    assert storage(token("alice")).status_code == 200
    assert auth._verified.cache_info().currsize == 1
    assert auth._verified.cache_info().maxsize == auth.VERIFIED_TOKENS_KEPT
