"""Bearer-token authentication: HS256 JWTs whose `sub` is the user id and `role` may be admin."""

import time
from dataclasses import dataclass
from functools import lru_cache, wraps

import jwt
from flask import current_app, g, request

from downloads_app.downloads.models import Download
from downloads_app.downloads.refusals import Refusal

ALGORITHM = "HS256"
# EventSource and links cannot send headers: browsers get their token in this cookie (event
# streams and files only: read-only GETs, and SameSite=Strict).
STREAM_COOKIE = "downloads_stream_token"
USER_ID_MAX_LENGTH = Download.user_id.max_length
# Tokens verified by this process, kept by secret and token: a token's claims never change, so
# a repeat is not verified again; its expiry still is, at every use. Only valid tokens are kept.
VERIFIED_TOKENS_KEPT = 4096
EXPIRED = "The token has expired; sign in again."


class NotAuthenticated(Refusal):
    """No valid bearer token came with the request."""

    reason = "not_authenticated"


class NotAllowed(Refusal):
    """The caller is signed in but may not do this."""

    reason = "not_allowed"


@dataclass(frozen=True)
class User:
    id: str
    is_admin: bool


def issue_token(user_id, admin=False, ttl_seconds=None):
    """A signed token for `user_id`, valid for JWT_TTL_SECONDS."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + (ttl_seconds or current_app.config["JWT_TTL_SECONDS"]),
    }
    if admin:
        claims["role"] = "admin"
    return jwt.encode(claims, current_app.config["JWT_SECRET"], algorithm=ALGORITHM)


@lru_cache(maxsize=VERIFIED_TOKENS_KEPT)
def _verified(secret, token):
    """(the user, the token's `exp`) of a token whose signature and claims hold, else NotAuthenticated."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise NotAuthenticated(EXPIRED) from exc
    except jwt.InvalidTokenError as exc:
        raise NotAuthenticated(f"Invalid token: {exc}.") from exc
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub:
        raise NotAuthenticated("Invalid token: `sub` must be a non-empty string.")
    # The user id is stored as is: PostgreSQL refuses NUL in text and longer values than the column.
    if len(sub) > USER_ID_MAX_LENGTH or "\x00" in sub:
        raise NotAuthenticated(f"Invalid token: `sub` must be at most {USER_ID_MAX_LENGTH} characters, without NUL.")
    return User(id=sub, is_admin=claims.get("role") == "admin"), int(claims["exp"])


def _decode(token):
    user, expires = _verified(current_app.config["JWT_SECRET"], token)
    if expires <= time.time():  # expired as PyJWT decides it, for a token verified before
        raise NotAuthenticated(EXPIRED)
    return user


def bearer_token():
    """The token of the Authorization header, or NotAuthenticated."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("Sign in: send `Authorization: Bearer <token>`.")
    return token.strip()


def _verified_bearer():
    """(user, None) or (None, NotAuthenticated) for the request's bearer token, decoded once."""
    if "bearer" not in g:
        try:
            g.bearer = (_decode(bearer_token()), None)
        except NotAuthenticated as exc:
            g.bearer = (None, exc)
    return g.bearer


def authenticate():
    """Set `g.user` from the Authorization header, or raise NotAuthenticated."""
    user, error = _verified_bearer()
    if error:
        raise error
    g.user = user


def request_user():
    """The user of the request's bearer token if it is valid, else None (the rate limits' key)."""
    return _verified_bearer()[0]


def authenticate_stream():
    """Like `authenticate`, but a browser's stream cookie will do too (event streams and files)."""
    if "Authorization" not in request.headers and STREAM_COOKIE in request.cookies:
        g.user = _decode(request.cookies[STREAM_COOKIE])
        return
    authenticate()


def token_lifetime(token):
    """Seconds until `token` expires (it has been verified already)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return max(int(claims["exp"] - time.time()), 0)


def current_user():
    return g.user


def admin_required(view):
    """Refuse the view to callers whose token lacks `role: admin`."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user().is_admin:
            raise NotAllowed("This action needs an admin token.")
        return view(*args, **kwargs)

    return wrapper
