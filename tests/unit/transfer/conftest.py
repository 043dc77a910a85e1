"""Fixtures of the transfer tests: an origin directory with one file of random bytes, and nginx serving it."""

import os

import pytest

from support.origins import NGINX, Nginx, require

# A test module may set MEDIA_SIZE: the bytes of its movie.mp4.
DEFAULT_MEDIA_SIZE = 20 * 1024 * 1024 + 4321


@pytest.fixture
def media(tmp_path, request):
    """The origin's directory, with movie.mp4 of random bytes."""
    root = tmp_path / "media"
    root.mkdir()
    (root / "movie.mp4").write_bytes(os.urandom(getattr(request.module, "MEDIA_SIZE", DEFAULT_MEDIA_SIZE)))
    return root


@pytest.fixture
def nginx(media):
    require(NGINX, "nginx is not installed (Debian: apt-get install nginx-light)")
    with Nginx(media) as server:
        yield server
